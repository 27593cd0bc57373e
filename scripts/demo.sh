#!/usr/bin/env bash
# Weft's main job on one machine, no root, no Kubernetes: a control plane
# serving a small mesh from a directory of Istio YAML, two versions of a
# `reviews` service and a client, each behind its own `weft proxy`
# (explicit mode), traffic split 80/20 by a VirtualService, then moved to
# v2 by editing the YAML while traffic flows. It prints what it does and
# what it sees, and stops everything it started. (`weft demo` will be this,
# with the dashboard.)
#
#   scripts/demo.sh            # the demo
#   scripts/demo.sh --analyze  # only `weft analyze examples/` (the Bookinfo config)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --release -p weft -p weft-sample
bin=target/release
if [ "${1:-}" = "--analyze" ]; then
  exec "$bin/weft" analyze examples/
fi

# A port block of our own (override with WEFT_DEMO_PORT_BASE).
base=${WEFT_DEMO_PORT_BASE:-25000}
xds=127.0.0.1:$((base + 10)); debug=127.0.0.1:$((base + 14))
dir=$(mktemp -d)
pids=()
cleanup() {
  # Newest first: the proxies and apps, then the control plane.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

split() { # $1: v1 weight
  cat > "$dir/reviews-route.yaml.tmp" <<YAML
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: $1}
    - {destination: {host: reviews, subset: v2}, weight: $((100 - $1))}
YAML
  mv "$dir/reviews-route.yaml.tmp" "$dir/reviews-route.yaml"
}

cat > "$dir/mesh.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: $((base + 81))}, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: $((base + 82))}, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: shop}
spec: {address: 127.0.0.1, labels: {app: client}, serviceAccount: client}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
YAML
split 80

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_ready() { # $1: URL
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "demo: $1 never became ready" >&2
  exit 1
}

say "weft control --config $dir (xDS $xds, debug $debug)"
WEFT_LOG=warn "$bin/weft" control --config "$dir" --xds-addr "$xds" --debug-addr "$debug" &
pids+=($!)
wait_ready "http://$debug/debug/configz"

for v in 1 2; do
  WEFT_LOG=warn "$bin/weft-sample" --name reviews --version "v$v" --http "127.0.0.1:$((base + 90 + v))" >/dev/null &
  pids+=($!)
  WEFT_LOG=warn "$bin/weft" proxy --xds "$xds" --workload "shop/reviews-v$v" \
    --app "127.0.0.1:$((base + 90 + v))" --outbound "127.0.0.1:$((base + 40 + v))" \
    --admin "127.0.0.1:$((base + 50 + v))" --concurrency 1 &
  pids+=($!)
done
client_proxy=127.0.0.1:$((base + 1))
WEFT_LOG=warn "$bin/weft" proxy --xds "$xds" --workload shop/client \
  --outbound "$client_proxy" --admin "127.0.0.1:$((base + 50))" --concurrency 1 &
pids+=($!)
for a in $((base + 50)) $((base + 51)) $((base + 52)); do
  wait_ready "http://127.0.0.1:$a/healthz/ready"
done
echo "three sidecars ready: client (HTTP proxy $client_proxy), reviews-v1, reviews-v2"

say "weft proxy-status"
"$bin/weft" proxy-status --debug-addr "$debug"

count() { # $1: requests, $2...: extra curl args; prints "v1 N  v2 M"
  local n=$1; shift
  for _ in $(seq 1 "$n"); do
    curl -s -x "http://$client_proxy" "$@" http://reviews.shop.svc.cluster.local:9080/ | head -n1
  done | awk '{c[$2]++} END {printf "v1 %d  v2 %d\n", c["v1"], c["v2"]}'
}

say "100 requests from the client through its sidecar (VirtualService: 80/20)"
count 100
say "one request as jason (header match: end-user=jason -> v2)"
curl -s -x "http://$client_proxy" -H 'end-user: jason' http://reviews.shop.svc.cluster.local:9080/ | head -n3

say "editing the VirtualService to 0/100 while the proxies run"
split 0
for _ in $(seq 1 50); do
  out=$(count 10)
  [ "$out" = "v1 0  v2 10" ] && break
  sleep 0.1
done
count 100

say "a host the mesh doesn't know: passed through to itself (outboundTrafficPolicy ALLOW_ANY), which doesn't resolve: 503"
curl -s -o /dev/null -w 'status %{http_code}\n' -x "http://$client_proxy" http://nowhere.shop.svc.cluster.local:9080/

say "weft proxy-config routes client.shop --name 9080"
"$bin/weft" proxy-config routes client.shop --name 9080 --debug-addr "$debug"

say "done: stopping the control plane, the proxies and the apps"
