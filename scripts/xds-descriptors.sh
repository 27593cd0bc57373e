#!/usr/bin/env bash
# Regenerates crates/weft-xds/descriptors/envoy.bin, the protobuf
# descriptors weft-xds renders Envoy messages to JSON with (config_dump,
# `weft proxy-config`): the FileDescriptorSet that the locked envoy-types
# crate ships, pruned to weft_xds::json::descriptors::ROOTS and their
# imports. Run it after bumping envoy-types or adding a root; `--check`
# only says whether the checked-in file is current (a unit test does too).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked --quiet -p weft-xds --example xds-descriptors -- "$@"
