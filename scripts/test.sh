#!/usr/bin/env bash
# The test command: installs what the tests need (when missing), starts the services, then runs
# formatting, lints and the whole test suite. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# action.yml and the example workflows against GitHub's schemas (vendored by check-jsonschema, offline).
check-jsonschema --builtin-schema vendor.github-actions action.yml && check-jsonschema --builtin-schema vendor.github-workflows pipelines/github/*.yml
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
