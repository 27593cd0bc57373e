#!/bin/bash
# Peak RSS of each sidecar under the HTTP/2 fan-out of `weft-bench
# dataplane` (2 hops, 100 more services configured): `weft control`, the
# sample app, a server and a client sidecar (`weft proxy --concurrency 1`),
# warm-up, peaks reset (`/proc/PID/clear_refs` 5), then `h2load -c64 -m10`
# of `/bytes/1024` through the client sidecar for SECS seconds; prints
# each sidecar's RSS idle, VmHWM over the load and RSS after it.
#
#   bench/h2mem.sh [WEFT_BIN] [SECS]
#
# WEFT_BIN defaults to target/release/weft; the sample is
# target/release/weft-sample, the mesh from target/release/weft-bench.
# Environment given to this script reaches the
# proxies (e.g. MIMALLOC_PURGE_DELAY=0); SERVER_WRAP / CLIENT_WRAP prefix
# a sidecar's command (e.g. CLIENT_WRAP="heaptrack -o FILE", whose RSS is
# then the wrapper's). Needs h2load, curl and python3.
set -eu
cd "$(dirname "$0")/.."
WEFT=${1:-target/release/weft}
SECS=${2:-10}
NAME=bench/h2mem.sh
. bench/lib.sh
need h2load curl python3
APP=$(port) APPG=$(port) IH=$(port) IG=$(port)
SADM=$(port) SOUT=$(port) CADM=$(port) COUT=$(port)
mkdir -p "$D/cfg"
echo_mesh "$IH" "$IG" 100 > "$D/cfg/mesh.yaml"
start_mesh "$APP" "$APPG"
WEFT_LOG=warn ${SERVER_WRAP:-} "$WEFT" proxy --xds "127.0.0.1:$XDS" --workload bench/server --concurrency 1 \
    --admin "127.0.0.1:$SADM" --outbound "127.0.0.1:$SOUT" \
    --app "$IH=127.0.0.1:$APP,$IG=127.0.0.1:$APPG" >/dev/null 2>"$D/server.log" &
SERVER=$!
PIDS+=($SERVER)
WEFT_LOG=warn ${CLIENT_WRAP:-} "$WEFT" proxy --xds "127.0.0.1:$XDS" --workload bench/client --concurrency 1 \
    --admin "127.0.0.1:$CADM" --outbound "127.0.0.1:$COUT" >/dev/null 2>"$D/client.log" &
CLIENT=$!
PIDS+=($CLIENT)
URL="http://$HOST:8080/bytes/1024"
wait_200 150 "the sidecars" --proxy "http://127.0.0.1:$COUT" "$URL"
H2LOAD=(h2load -t1 -c64 -m10 "--connect-to=127.0.0.1:$COUT")
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
"${H2LOAD[@]}" -n2000 "$URL" >/dev/null
sleep 1
for p in $SERVER $CLIENT; do echo 5 > "/proc/$p/clear_refs"; done
IDLE_S=$(kib $SERVER VmRSS) IDLE_C=$(kib $CLIENT VmRSS)
"${H2LOAD[@]}" -D "$SECS" "$URL" | grep -E '^(finished in|requests|status codes):'
HWM_S=$(kib $SERVER VmHWM) HWM_C=$(kib $CLIENT VmHWM)
RSS_S=$(kib $SERVER VmRSS) RSS_C=$(kib $CLIENT VmRSS)
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
echo "server sidecar: idle $(mib "$IDLE_S") MiB, peak $(mib "$HWM_S") MiB, after $(mib "$RSS_S") MiB"
echo "client sidecar: idle $(mib "$IDLE_C") MiB, peak $(mib "$HWM_C") MiB, after $(mib "$RSS_C") MiB"
echo "mean peak per sidecar: $(mib $(((HWM_S + HWM_C) / 2))) MiB"
