#!/usr/bin/env bash
# Benchmark of the pipeline runner: 50 `run` stages in a DAG 5 wide (10 layers of 5, each stage
# needing the whole layer before it) against a shell script running the same 50 commands one
# after another. Prints the timings side by side and their ratios.
#
#   bash benches/pipeline.sh            # builds the release binary first
#   UPLIFT_BIN=target/debug/uplift bash benches/pipeline.sh
#   ROUNDS=7 SLEEP=0.1 bash benches/pipeline.sh
#
# Two workloads:
#   work:     each stage runs `sleep $SLEEP`: the DAG (--jobs 5) must beat the serial script.
#   overhead: each stage runs `true`: (uplift - script) / 50 is Uplift's own cost per stage
#             (scheduling, process group, output capture, run folder, events), aim < 5 ms.
# Then the large cases (LARGE=0 skips them), each once, to show the costs grow linearly:
#   validate a chain of $CHAIN stages (about 1 MB), and of $CHAIN/2 (twice as long must take
#   about twice as long, not four times); validate a cycle through $CYCLE stages; run a chain of
#   $RUN_CHAIN `true` stages (--jobs 1) and report the cost per stage.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
SLEEP=${SLEEP:-0.05}
LARGE=${LARGE:-1}
CHAIN=${CHAIN:-20000}
CYCLE=${CYCLE:-10000}
RUN_CHAIN=${RUN_CHAIN:-5000}
WIDTH=5
LAYERS=10
if [[ -z "${UPLIFT_BIN:-}" ]]; then
  cargo build --release --quiet --bin uplift
  UPLIFT_BIN=target/release/uplift
fi
UPLIFT_BIN=$(realpath "$UPLIFT_BIN")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# gen_pipeline COMMAND > file
gen_pipeline() {
  echo "name: bench"
  echo "stages:"
  for ((l = 0; l < LAYERS; l++)); do
    for ((w = 0; w < WIDTH; w++)); do
      echo "  s${l}-${w}:"
      echo "    uses: run"
      if ((l > 0)); then
        needs=""
        for ((p = 0; p < WIDTH; p++)); do needs+="s$((l - 1))-${p}, "; done
        echo "    needs: [${needs%, }]"
      fi
      echo "    with: { run: \"$1\" }"
    done
  done
}

# gen_script COMMAND > file: the same commands, one after another, each through `sh -e -c`
# exactly as the run stage starts them.
gen_script() {
  echo "#!/bin/sh"
  echo "set -e"
  for ((i = 0; i < LAYERS * WIDTH; i++)); do echo "sh -e -c '$1'"; done
}

now() { date +%s%N; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_ms COMMAND...: median wall time in ms over ROUNDS runs
time_ms() {
  local samples=()
  for ((r = 0; r < ROUNDS; r++)); do
    rm -rf "$work/.uplift"
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>&1
    t1=$(now)
    samples+=($(((t1 - t0) / 1000)))
  done
  awk -v us="$(median "${samples[@]}")" 'BEGIN { printf "%.1f", us / 1000 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '%-9s %-28s %12s %12s %s\n' workload runner "uplift ms" "script ms" "ratio"
for workload in work overhead; do
  if [[ $workload == work ]]; then cmd="sleep $SLEEP"; else cmd="true"; fi
  gen_pipeline "$cmd" >"$work/p.yml"
  gen_script "$cmd" >"$work/serial.sh"
  script=$(cd "$work" && time_ms sh serial.sh)
  for jobs in 5 1; do
    up=$(cd "$work" && time_ms "$UPLIFT_BIN" run -q -p p.yml --jobs "$jobs")
    if [[ $workload == work ]]; then
      printf '%-9s %-28s %12s %12s %s\n' "$workload" "uplift --jobs $jobs (DAG)" "$up" "$script" \
        "script/uplift = $(ratio "$script" "$up")x"
    else
      per=$(awk -v u="$up" -v s="$script" -v n=$((LAYERS * WIDTH)) 'BEGIN { printf "%.2f", (u - s) / n }')
      printf '%-9s %-28s %12s %12s %s\n' "$workload" "uplift --jobs $jobs" "$up" "$script" \
        "overhead per stage = ${per} ms"
    fi
  done
done

if [[ $LARGE == 0 ]]; then exit 0; fi

# gen_chain N COMMAND [cycle] > file: stage sI needs s(I-1), one stage per line (so 20,000 stages
# stay under the 1 MiB cap); with `cycle`, s0 needs the last one. The validation cases use the
# command `x`, which they never run.
gen_chain() {
  awk -v n="$1" -v cmd="$2" -v cycle="${3:-}" 'BEGIN {
    print "name: chain"; print "stages:"
    for (i = 0; i < n; i++) {
      need = i > 0 ? "s" (i - 1) : (cycle != "" ? "s" (n - 1) : "")
      if (need != "") printf "  s%d: {uses: run, needs: %s, with: {run: %s}}\n", i, need, cmd
      else printf "  s%d: {uses: run, with: {run: %s}}\n", i, cmd
    }
  }'
}

# once_ms COMMAND...: wall time of one run in ms (exit code ignored: a cycle is exit 2)
once_ms() {
  local t0 t1
  rm -rf "$work/.uplift"
  t0=$(now)
  "$@" >/dev/null 2>&1 || true
  t1=$(now)
  echo $(((t1 - t0) / 1000000))
}

echo
printf '%-44s %10s\n' "large case" "ms"
for n in $((CHAIN / 2)) "$CHAIN"; do
  gen_chain "$n" x >"$work/chain.yml"
  printf '%-44s %10s\n' "validate chain of $n ($(wc -c <"$work/chain.yml") bytes)" \
    "$(cd "$work" && once_ms "$UPLIFT_BIN" validate -p chain.yml)"
done
gen_chain "$CYCLE" x cycle >"$work/cycle.yml"
printf '%-44s %10s\n' "validate cycle through $CYCLE" "$(cd "$work" && once_ms "$UPLIFT_BIN" validate -p cycle.yml)"
gen_chain "$RUN_CHAIN" '"true"' >"$work/run.yml"
ms=$(cd "$work" && once_ms "$UPLIFT_BIN" run -q -p run.yml --jobs 1)
printf '%-44s %10s   (%s ms per stage)\n' "run chain of $RUN_CHAIN true stages" "$ms" \
  "$(awk -v ms="$ms" -v n="$RUN_CHAIN" 'BEGIN { printf "%.2f", ms / n }')"
