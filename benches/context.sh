#!/usr/bin/env bash
# Benchmark: creating and sending the build context of 20,000 small files, Uplift
# (uplift-docker) and the `docker build` CLI side by side. Prints medians and the ratio
# Uplift / CLI (below 1.00: Uplift is faster; the aim is at most 1.00).
#
# 1. context: both clients against a stand-in engine (benches/fake_engine.py) that reads the
#    whole context and answers at once, so the time is the client's own walk, tar and send.
# 2. build: both on this machine's engine, classic builder, `FROM scratch` + `COPY . /ctx/`
#    (the engine's unpacking and copying is the same work for both).
#
#   bash benches/context.sh [runs] [files]          (default 5 runs, 20000 files)
#   PROFILE=dev bash benches/context.sh              (skip the release build, for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
files=${2:-20000}
profile=${PROFILE:-release}

cargo build -q --profile "$profile" -p uplift-docker --example build_image
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
uplift_build=$PWD/target/$dir/examples/build_image

work=$(mktemp -d)
sock="$work/fake.sock"
python3 benches/fake_engine.py "$sock" &
fake=$!
trap 'kill $fake 2>/dev/null || true; rm -rf "$work"; docker rmi -f bench-ctx:cli bench-ctx:uplift >/dev/null 2>&1 || true' EXIT

ctx="$work/ctx"
mkdir -p "$ctx"
printf 'FROM scratch\nCOPY . /ctx/\nCMD ["/x"]\n' >"$ctx/Dockerfile"
printf 'node_modules\n**/*.log\n!keep.log\n' >"$ctx/.dockerignore"
# An app-like tree: 100 folders of small source files, some ignored.
python3 - "$ctx" "$files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "src", f"m{i % 100}")
    os.makedirs(d, exist_ok=True)
    name = f"f{i}.log" if i % 50 == 0 else f"f{i}.ts"
    with open(os.path.join(d, name), "w") as f:
        f.write(f"export const v{i} = {i};\n" * (1 + i % 7))
EOF
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done

now_ms() { date +%s%3N; }
timed() { local t0 t1; t0=$(now_ms); "$@" >/dev/null 2>&1; t1=$(now_ms); echo $((t1 - t0)); }
cli_fake() { DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=0 docker build -q "$ctx"; }
uplift_fake() { DOCKER_HOST="unix://$sock" "$uplift_build" "$ctx" bench-ctx:fake classic; }
cli_real() { DOCKER_BUILDKIT=0 docker build -q -t bench-ctx:cli "$ctx"; }
uplift_real() { "$uplift_build" "$ctx" bench-ctx:uplift classic; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v u="$1" -v c="$2" 'BEGIN{printf "%.2f", u/c}'; }

# Warm the page cache and check that both sides work before timing.
cli_fake >/dev/null 2>&1 && uplift_fake >/dev/null

printf '%-8s %10s %12s %7s\n' case "cli (ms)" "uplift (ms)" ratio
for case in context build; do
  cli=() upl=()
  for i in $(seq 1 "$runs"); do
    # Alternate the order so neither side always runs first.
    if [ "$case" = context ]; then a=cli_fake b=uplift_fake; else a=cli_real b=uplift_real; fi
    if [ $((i % 2)) -eq 1 ]; then cli+=("$(timed $a)"); upl+=("$(timed $b)");
    else upl+=("$(timed $b)"); cli+=("$(timed $a)"); fi
  done
  echo "$case: cli ${cli[*]} | uplift ${upl[*]} (ms)" >&2
  c=$(printf '%s\n' "${cli[@]}" | median) u=$(printf '%s\n' "${upl[@]}" | median)
  printf '%-8s %10d %12d %7s\n' "$case" "$c" "$u" "$(ratio "$u" "$c")"
done
