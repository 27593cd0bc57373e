#!/usr/bin/env bash
# Installs what Weft's build and tests need. Idempotent: safe to run again;
# it only installs what is missing. Run as root (CI) or with sudo rights
# for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# command:package. iptables (iptables-restore, ip6tables-restore) and
# iproute2 (ip netns, ss) are for `weft iptables` and the namespace tests;
# openssl (s_server, s_client) for the TLS passthrough tests; OpenBSD's
# netcat (nc.openbsd: -N half-close, -X connect) for the TCP tests.
need_apt=()
for pkg in curl:curl iptables-restore:iptables ip6tables-restore:iptables ip:iproute2 ss:iproute2 setpriv:util-linux openssl:openssl nc.openbsd:netcat-openbsd; do
  cmd=${pkg%%:*}; deb=${pkg##*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    [[ " ${need_apt[*]} " == *" $deb "* ]] || need_apt+=("$deb")
  fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: missing system packages: ${need_apt[*]} (run scripts/setup.sh as root to install them)" >&2
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true

# Python test clients (grpcio's xDS resolver is the control plane's
# acceptance test), in a venv of the project's own.
if ! .venv/bin/python -c 'import grpc' >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || { echo "setup: python3 not found" >&2; exit 1; }
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

# Istio's own sample YAML, used by the tests, lives beside the checkout.
if [ ! -d ../shared/istio-samples ]; then
  echo "setup: note: ../shared/istio-samples not found; the tests that read Istio's samples will fail" >&2
fi
