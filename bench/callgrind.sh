#!/bin/bash
# Instructions per proxied request of one Weft sidecar, under callgrind
# (valgrind): load-independent, so before/after pairs compare on a busy
# machine. The server sidecar of `weft-bench dataplane`'s 1-hop setup
# (`weft control` + `weft proxy --concurrency 1` with the sample as its app,
# the sidecar alone under callgrind), 2 000 warm-up requests, counters
# zeroed, then `h2load -c64 -n5000` of `/bytes/1024` (HTTP/1.1 with `h1`,
# the default; prior-knowledge HTTP/2 with `h2`); the whole process's
# instructions divided by 5 000.
#
#   bench/callgrind.sh [WEFT_BIN] [h1|h2] [KEEP_AS]
#
# WEFT_BIN defaults to target/release/weft; the sample is
# target/release/weft-sample. The callgrind output is deleted unless KEEP_AS
# (a path prefix) is given, e.g. to read it with `callgrind_annotate
# --inclusive=yes KEEP_AS.1`. Needs valgrind and h2load (bench/setup.sh).
set -eu
cd "$(dirname "$0")/.."
WEFT=${1:-target/release/weft}
PROTO=${2:-h1}
KEEP=${3:-}
SAMPLE=target/release/weft-sample
HOST=echo.bench.svc.cluster.local
for tool in valgrind callgrind_control h2load curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/callgrind.sh: $tool is missing" >&2; exit 1; }
done
D=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
APP=$(port) APPG=$(port) IH=$(port) IG=$(port) ADM=$(port) OUTB=$(port)
mkdir -p "$D/cfg"
cat > "$D/cfg/mesh.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: bench}
spec:
  hosts: [$HOST]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server, namespace: bench}
spec: {address: 127.0.0.1, ports: {http: $IH, grpc: $IG}, labels: {app: echo}}
YAML
WEFT_LOG=warn "$SAMPLE" --name echo --http "127.0.0.1:$APP" --grpc "127.0.0.1:$APPG" >/dev/null 2>&1 &
PIDS+=($!)
WEFT_LOG=warn,weft::control=info "$WEFT" control --config "$D/cfg" --xds-addr 127.0.0.1:0 \
    --debug-addr 127.0.0.1:0 --debounce-after 100ms </dev/null >/dev/null 2>"$D/control.log" &
PIDS+=($!)
XDS=""
for _ in $(seq 100); do
    XDS=$(grep -o 'xds=127.0.0.1:[0-9]*' "$D/control.log" | head -1 | cut -d: -f2 || true)
    [ -n "$XDS" ] && break
    sleep 0.1
done
[ -n "$XDS" ] || { echo "bench/callgrind.sh: weft control did not start" >&2; exit 1; }
WEFT_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/cg" "$WEFT" proxy \
    --xds "127.0.0.1:$XDS" --workload bench/server --concurrency 1 --admin "127.0.0.1:$ADM" \
    --outbound "127.0.0.1:$OUTB" --app "$IH=127.0.0.1:$APP,$IG=127.0.0.1:$APPG" >/dev/null 2>"$D/proxy.log" &
PROXY=$!
PIDS+=($PROXY)
code=""
for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" --max-time 2 \
        "http://127.0.0.1:$IH/bytes/1024" || true)
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] || { echo "bench/callgrind.sh: the sidecar did not answer 200" >&2; exit 1; }
H2LOAD=(h2load -t1 -c64 "--connect-to=127.0.0.1:$IH")
[ "$PROTO" = h1 ] && H2LOAD+=(--h1)
URL="http://$HOST:8080/bytes/1024"
"${H2LOAD[@]}" -n2000 "$URL" >/dev/null
callgrind_control -z "$PROXY" >/dev/null 2>&1
"${H2LOAD[@]}" -n5000 "$URL" | grep -E '^(requests|status codes):'
callgrind_control -d "$PROXY" >/dev/null 2>&1
DUMP=$(ls "$D"/cg.* | head -1)
TOTAL=$(grep -E '^summary:' "$DUMP" | awk '{print $2}')
echo "instructions per request ($PROTO): $((TOTAL / 5000)) (total $TOTAL)"
if [ -n "$KEEP" ]; then
    cp "$DUMP" "$KEEP.1"
    echo "callgrind output: $KEEP.1"
fi
