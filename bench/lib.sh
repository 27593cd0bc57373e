# Shared by bench/callgrind.sh and bench/h2mem.sh (sourced, after `set -eu`
# and `cd` to the repository): the echo mesh of `weft-bench dataplane`
# (crates/weft-bench/src/procs.rs), a temp dir cleaned up on exit with the
# processes started, and waiting for them. The sourcing script sets NAME
# (for messages) and WEFT; SAMPLE and BENCH have defaults.
SAMPLE=${SAMPLE:-target/release/weft-sample}
BENCH=${BENCH:-target/release/weft-bench}
HOST=echo.bench.svc.cluster.local

# need TOOL...: exits naming the first one missing.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$NAME: $tool is missing" >&2; exit 1; }
    done
}

D=$(mktemp -d)
PIDS=()
cleanup() {
    # Children first: a wrapper's (SERVER_WRAP, CLIENT_WRAP) proxy.
    for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT

# port: a free loopback port.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# echo_mesh IH IG [EXTRA]: the echo service, its server workload (whose
# sidecar listens on IH for http and IG for grpc) and client workload, and
# EXTRA more services: `weft-bench echo-mesh`, the dataplane benchmark's own.
echo_mesh() {
    [ -x "$BENCH" ] || { echo "$NAME: $BENCH is missing: cargo build --release -p weft-bench" >&2; exit 1; }
    "$BENCH" echo-mesh --inbound-http "$1" --inbound-grpc "$2" --extra "${3:-0}"
}

# start_mesh APP APPG: the sample on APP (HTTP) and APPG (gRPC), and
# `weft control` serving $D/cfg; sets XDS to its port.
start_mesh() {
    WEFT_LOG=warn "$SAMPLE" --name echo --http "127.0.0.1:$1" --grpc "127.0.0.1:$2" >/dev/null 2>&1 &
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
    [ -n "$XDS" ] || { echo "$NAME: weft control did not start" >&2; exit 1; }
}

# wait_200 TRIES WHAT CURL_ARGS...: until curl gets a 200 (TRIES × 0.2 s
# at most), else exits saying WHAT did not answer.
wait_200() {
    local tries=$1 what=$2 code=""
    shift 2
    for _ in $(seq "$tries"); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.2
    done
    echo "$NAME: $what did not answer 200" >&2
    exit 1
}
