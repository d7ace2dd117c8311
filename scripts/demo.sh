#!/usr/bin/env bash
# The main job on the bundled defaults: starts the local registry (and the other test services),
# builds Uplift, and runs pipelines/demo.yml (upgrade -> test -> image -> push -> deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo run --release --locked -- run -p pipelines/demo.yml "$@"
