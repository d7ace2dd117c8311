#!/usr/bin/env bash
# Upgrade of a 3-replica service under load: `docker-compose up -d` (Debian's docker-compose)
# against Uplift's rolling deploy, on the same fixture service (fixtures/deploy, FROM scratch).
# The load loop (fixtures/deploy/load.sh) runs in a container on the service's own network and
# reaches it by its name; it is bounded in count and time. Prints failed requests side by side.
#
#   bash benches/deploy_compose.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
project="upcompose$$"
work=$(mktemp -d)
cleanup() {
  (cd "$work" && docker-compose -p "$project" down -t 1 >/dev/null 2>&1) || true
  docker rm -f "$project-load" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for tag in v1 v2; do
  ctx="$work/ctx-$tag"
  mkdir -p "$ctx/www"
  cp /bin/busybox "$ctx/busybox"
  echo ok >"$ctx/www/health"
  echo "$tag" >"$ctx/www/version"
  DOCKER_BUILDKIT=0 docker build -q -t "uplift-deploy-fixture:$tag" -f fixtures/deploy/Dockerfile "$ctx" >/dev/null
done

cat >"$work/docker-compose.yml" <<'YAML'
version: "2.4"
services:
  svc:
    image: uplift-deploy-fixture:${TAG}
YAML

echo "== docker-compose: up -d v1 (3 replicas), then up -d v2 under load" >&2
cd "$work"
TAG=v1 docker-compose -p "$project" up -d --scale svc=3 >/dev/null 2>&1
for _ in $(seq 1 40); do
  healthy=$(docker ps --filter "label=com.docker.compose.project=$project" --filter health=healthy -q | wc -l)
  [ "$healthy" -ge 3 ] && break
  sleep 0.5
done
docker run -d --name "$project-load" --network "${project}_default" --entrypoint /bin/sh \
  uplift-deploy-fixture:v1 -c "$(cat "$root/fixtures/deploy/load.sh")" load http://svc:8080/version 4000 90 >/dev/null
sleep 2
start=$(date +%s)
TAG=v2 docker-compose -p "$project" up -d --scale svc=3 >/dev/null 2>&1
sleep 3
docker exec "$project-load" /bin/busybox touch /tmp/stop
docker wait "$project-load" >/dev/null
compose=$(docker logs "$project-load" 2>/dev/null | tail -n 1)
echo "compose upgrade took $(( $(date +%s) - start ))s: $compose" >&2
cd "$root"

echo "== uplift: rolling deploy v1 -> v2 (3 replicas) under load (cargo test, real Docker)" >&2
uplift=$(cargo test -q -p uplift-docker --test deploy_docker rolling_upgrade -- --nocapture 2>/dev/null \
  | grep '^uplift rolling upgrade' | sed 's/.*(\(ok=.*\))$/\1/')

field() { echo "$1" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2; }
printf '\n%-26s %10s %10s\n' "upgrade of 3 replicas" "ok" "failed"
printf '%-26s %10s %10s\n' "docker-compose up -d" "$(field "$compose" ok)" "$(field "$compose" fail)"
printf '%-26s %10s %10s\n' "uplift deploy (rolling)" "$(field "$uplift" ok)" "$(field "$uplift" fail)"
