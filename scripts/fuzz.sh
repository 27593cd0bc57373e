#!/usr/bin/env bash
# Fuzzes the config loader for $1 seconds (default 60). Needs nightly Rust
# and cargo-fuzz. The corpus is seeded from examples/ and Istio's samples.
set -euo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.."
secs=${1:-60}
corpus=fuzz/corpus/load
mkdir -p "$corpus"
for f in examples/**/*.yaml ../shared/istio-samples/*/*.yaml; do
  [ -f "$f" ] && cp "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
done
exec cargo +nightly fuzz run load "$corpus" -- -max_total_time="$secs" -max_len=8192
