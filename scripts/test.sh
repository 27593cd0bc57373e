#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, integration and property
# tests. Ends with one line counting every test run: "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== cargo fetch"
cargo fetch --locked
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --all-targets 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
