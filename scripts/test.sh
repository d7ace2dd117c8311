#!/usr/bin/env bash
# The test command: installs what the tests need (when missing), starts the services, then runs
# formatting, lints and the whole test suite. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# A clean clone gains nothing from incremental builds, and they double the build's size on disk.
export CARGO_INCREMENTAL=0
df -h . | tail -n 1 | awk '{print "disk: " $4 " free before the build"}'

# action.yml and the example workflows against GitHub's schemas (vendored by check-jsonschema, offline).
check-jsonschema --builtin-schema vendor.github-actions action.yml && check-jsonschema --builtin-schema vendor.github-workflows pipelines/github/*.yml .github/workflows/*.yml
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Every test binary runs even when one fails; the totals close the output.
log=$(mktemp)
# Tests that skip for want of a service or tool (never with CI=true, where that fails) write a
# line here; they pass as far as cargo is concerned, so they are counted apart.
export UPLIFT_SKIP_LOG
UPLIFT_SKIP_LOG=$(mktemp)
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# A customized app's upgrades replayed on the shared corpus (the test build made both binaries):
# fails on a conflict, a clean-but-wrong merge or a result other than the maintainers'.
python3 benches/replay.py --synthetic || status=1
set -e
skipped=$(wc -l <"$UPLIFT_SKIP_LOG")
awk -v skipped="$skipped" '/^test result:/ {
  for (i = 2; i <= NF; i++) {
    if ($i ~ /^passed/) p += $(i - 1)
    if ($i ~ /^failed/) f += $(i - 1)
    if ($i ~ /^ignored/) s += $(i - 1)
  }
} END { printf "tests: %d passed, %d failed, %d skipped\n", p - skipped, f, s + skipped }' "$log"
sed 's/^/skipped: /' "$UPLIFT_SKIP_LOG"
rm -f "$log" "$UPLIFT_SKIP_LOG"
df -h . | tail -n 1 | awk '{print "disk: " $4 " free after the tests"}'
exit "$status"
