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
# target/release/weft-sample, the mesh from target/release/weft-bench. The
# callgrind output is deleted unless KEEP_AS
# (a path prefix) is given, e.g. to read it with `callgrind_annotate
# --inclusive=yes KEEP_AS.1`. Needs valgrind and h2load (bench/setup.sh).
set -eu
cd "$(dirname "$0")/.."
WEFT=${1:-target/release/weft}
PROTO=${2:-h1}
KEEP=${3:-}
NAME=bench/callgrind.sh
. bench/lib.sh
need valgrind callgrind_control h2load curl python3
APP=$(port) APPG=$(port) IH=$(port) IG=$(port) ADM=$(port) OUTB=$(port)
mkdir -p "$D/cfg"
echo_mesh "$IH" "$IG" > "$D/cfg/mesh.yaml"
start_mesh "$APP" "$APPG"
WEFT_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/cg" "$WEFT" proxy \
    --xds "127.0.0.1:$XDS" --workload bench/server --concurrency 1 --admin "127.0.0.1:$ADM" \
    --outbound "127.0.0.1:$OUTB" --app "$IH=127.0.0.1:$APP,$IG=127.0.0.1:$APPG" >/dev/null 2>"$D/proxy.log" &
PROXY=$!
PIDS+=($PROXY)
wait_200 300 "the sidecar" -H "Host: $HOST" "http://127.0.0.1:$IH/bytes/1024"
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
