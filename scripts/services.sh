#!/usr/bin/env bash
# Installs (when missing) and starts the services the tests use. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /bin/busybox ] && file /bin/busybox 2>/dev/null | grep -q static || need+=(busybox-static)
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v htpasswd >/dev/null || need+=(apache2-utils)
[ -d /usr/lib/postgresql ] || need+=(postgresql)
command -v file >/dev/null || need+=(file)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v flock >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Offline validation of rendered Kubernetes manifests (uplift-kube tests).
command -v kubernetes-validate >/dev/null || pip install -q kubernetes-validate >&2
# Policy checks of rendered Kubernetes manifests (uplift-kube tests, run offline).
command -v checkov >/dev/null || pip install -q checkov >&2
# Offline schema checks of action.yml and the example GitHub workflows (scripts/test.sh).
command -v check-jsonschema >/dev/null || pip install -q check-jsonschema >&2

# --- Registries for the image tests (uplift-docker): Debian's docker-registry on loopback. ---
# 127.0.0.1:5000 is open; 127.0.0.1:5001 requires htpasswd auth (user `uplift`, password
# `uplift-secret`, test-only). Config and storage live under $UPLIFT_SERVICES_DIR. A registry
# already listening is left alone.
svc_dir="${UPLIFT_SERVICES_DIR:-/tmp/uplift-services}"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_registry() { # port, extra config
  local port=$1 extra=${2:-}
  if listening "$port"; then return 0; fi
  local dir="$svc_dir/registry-$port"
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$extra
YAML
  nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  for _ in $(seq 1 50); do
    listening "$port" && return 0
    sleep 0.2
  done
  echo "registry on 127.0.0.1:$port did not start; see $dir/registry.log" >&2
  return 1
}
mkdir -p "$svc_dir"
[ -s "$svc_dir/htpasswd" ] || htpasswd -Bbn uplift uplift-secret >"$svc_dir/htpasswd"
start_registry 5000
start_registry 5001 "auth:
  htpasswd:
    realm: uplift-test
    path: $svc_dir/htpasswd"

# --- PostgreSQL for the database backup tests (deploy stage, `rollback --with-data`). ---
# Debian's cluster 15/main on 127.0.0.1:5432; the `postgres` role gets the test-only password
# `uplift-pg-test` (password auth over TCP). Started when down; the password is set each time.
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$pg_version main"; then
  pg_createcluster "$pg_version" main >/dev/null
fi
if ! pg_lsclusters -h | grep "^$pg_version main" | grep -q online; then
  pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 1 50); do
  listening 5432 && break
  sleep 0.2
done
listening 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'uplift-pg-test'\"" >/dev/null
