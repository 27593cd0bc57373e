#!/usr/bin/env bash
# Weft's most complete job so far: validate and analyze the example mesh
# (Bookinfo and Istio's traffic-management tasks) like `istioctl analyze`.
# This becomes `weft demo` once the control plane and proxies exist.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --release -p weft
exec target/release/weft analyze examples/ "$@"
