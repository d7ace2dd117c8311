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
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
