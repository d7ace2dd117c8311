#!/usr/bin/env bash
# Benchmark: the same image built by Uplift (uplift-docker over the engine API) and by the
# `docker build` CLI, side by side, on a cold and on a warm cache. Prints medians and ratios
# (Uplift / CLI: below 1.00 is faster than the CLI; the aim is at most 1.10).
#
# Both use the classic builder: the Docker CLI on this machine has no buildx, so it cannot use
# BuildKit; Uplift's BuildKit build is printed too, for information (vs the CLI's classic).
#
#   bash benches/image.sh [runs]      (default 5 runs per case)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

cargo build -q --release -p uplift-docker --example build_image
uplift_build=target/release/examples/build_image

work=$(mktemp -d)
trap 'rm -rf "$work"; docker rmi -f bench-uplift:cli bench-uplift:uplift bench-uplift:bk >/dev/null 2>&1 || true' EXIT
ctx="$work/ctx"
cp -r fixtures/images/busybox "$ctx"
cp /bin/busybox "$ctx/"
# A context of app-like size: 2,000 small source files and a few larger assets.
mkdir -p "$ctx/app/src"
for i in $(seq 1 2000); do printf 'export const v%d = %d;\n' "$i" "$i" >"$ctx/app/src/f$i.ts"; done
for i in 1 2 3 4; do head -c 4000000 /dev/urandom >"$ctx/app/asset$i.bin"; done

now_ms() { date +%s%3N; }
cli_build() { # prints ms
  local t0 t1
  t0=$(now_ms)
  DOCKER_BUILDKIT=0 docker build -q -t bench-uplift:cli "$ctx" >/dev/null 2>&1
  t1=$(now_ms)
  echo $((t1 - t0))
}
uplift_build() { # builder tag; prints ms (process start to finish, like the CLI's)
  local t0 t1
  t0=$(now_ms)
  "$uplift_build" "$ctx" "bench-uplift:$2" "$1" >/dev/null
  t1=$(now_ms)
  echo $((t1 - t0))
}
cold() {
  docker rmi -f bench-uplift:cli bench-uplift:uplift bench-uplift:bk >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null 2>&1 || true
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
minimum() { sort -n | head -1; }

declare -A times
for case in cold warm; do
  cli=() upl=() bk=()
  [ "$case" = warm ] && { cli_build >/dev/null; uplift_build classic uplift >/dev/null; uplift_build buildkit bk >/dev/null; }
  for i in $(seq 1 "$runs"); do
    # Alternate the order so neither side always runs first.
    if [ $((i % 2)) -eq 1 ]; then
      [ "$case" = cold ] && cold; cli+=("$(cli_build)")
      [ "$case" = cold ] && cold; upl+=("$(uplift_build classic uplift)")
    else
      [ "$case" = cold ] && cold; upl+=("$(uplift_build classic uplift)")
      [ "$case" = cold ] && cold; cli+=("$(cli_build)")
    fi
    [ "$case" = cold ] && cold; bk+=("$(uplift_build buildkit bk)")
  done
  times[$case-cli]=$(printf '%s\n' "${cli[@]}" | median)
  times[$case-uplift]=$(printf '%s\n' "${upl[@]}" | median)
  times[$case-bk]=$(printf '%s\n' "${bk[@]}" | median)
  times[$case-cli-min]=$(printf '%s\n' "${cli[@]}" | minimum)
  times[$case-uplift-min]=$(printf '%s\n' "${upl[@]}" | minimum)
  echo "$case: cli ${cli[*]} | uplift ${upl[*]} | uplift-buildkit ${bk[*]} (ms)" >&2
done

# Medians, and the ratio of the minimums too: on a loaded machine the minimum is the steadier
# estimate of what each side costs.
ratio() { awk -v u="$1" -v c="$2" 'BEGIN{printf "%.2f", u/c}'; }
printf '%-6s %10s %12s %8s %10s %18s %8s\n' cache "cli (ms)" "uplift (ms)" ratio "min ratio" "uplift-bk (ms)" ratio
for case in cold warm; do
  c=${times[$case-cli]} u=${times[$case-uplift]} b=${times[$case-bk]}
  printf '%-6s %10d %12d %8s %10s %18d %8s\n' "$case" "$c" "$u" "$(ratio "$u" "$c")" \
    "$(ratio "${times[$case-uplift-min]}" "${times[$case-cli-min]}")" "$b" "$(ratio "$b" "$c")"
done
