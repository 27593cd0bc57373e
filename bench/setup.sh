#!/bin/sh
# Installs the load generators and reverse proxies `weft-bench dataplane`
# compares Weft with (Debian packages). Idempotent; run as root. Not part of
# CI. The packages' system services are not needed: the benchmark starts
# nginx and haproxy itself on loopback ports with its own configs.
set -eu
missing=""
for pair in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy; do
    tool=${pair%%:*}
    pkg=${pair#*:}
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "bench/setup.sh: wrk, h2load, nginx and haproxy are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/setup.sh: run as root to install:$missing" >&2
    exit 1
fi
apt-get update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
