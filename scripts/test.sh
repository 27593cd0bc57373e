#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, integration and property
# tests. Ends with one line counting every test run: "N passed, M failed".
# Tests that need root or a tool this machine lacks skip (and say so) —
# unless CI is set (.ci/run sets it), where they fail instead; the skips
# are repeated at the end.
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
if grep -q '^SKIPPED (did not run):' "$log"; then
  echo "== SKIPPED: these tests did not run on this machine (CI runs them all):"
  grep '^SKIPPED (did not run):' "$log" | sort -u | sed 's/^/   /'
fi
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
