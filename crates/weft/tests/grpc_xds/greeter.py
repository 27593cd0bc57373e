"""A tiny gRPC greeter and an xDS client for Weft's control-plane tests.

No generated code: the method is served and called with raw bytes.

    greeter.py serve PORT NAME          answer /helloworld.Greeter/SayHello with NAME
                                        (PORT 0: any free port); prints "serving PORT"
    greeter.py call TARGET N [K=V ...]  make N calls (with metadata K=V), print
                                        {"replies": {NAME: count}, "errors": n} as JSON
    greeter.py follow TARGET SECONDS    call without pause for SECONDS on one channel,
                                        printing "EPOCH_MS REPLY" per call (REPLY is
                                        "error" for a failed call)
"""

import json
import sys
import time
from concurrent import futures

import grpc

METHOD = "/helloworld.Greeter/SayHello"


def serve(port, name):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter",
        {"SayHello": grpc.unary_unary_rpc_method_handler(lambda req, ctx: name.encode())},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"serving {port}", flush=True)
    server.wait_for_termination(timeout=600)


def call(target, n, metadata):
    replies, errors, last_error = {}, 0, ""
    deadline = time.time() + 120
    with grpc.insecure_channel(target) as channel:
        say = channel.unary_unary(METHOD)
        for _ in range(n):
            if time.time() > deadline:
                break
            try:
                reply = say(b"", timeout=10, metadata=metadata).decode()
                replies[reply] = replies.get(reply, 0) + 1
            except grpc.RpcError as e:
                errors += 1
                last_error = f"{e.code()}: {e.details()}"
    print(json.dumps({"replies": replies, "errors": errors, "last_error": last_error}), flush=True)


def follow(target, seconds):
    end = time.time() + seconds
    with grpc.insecure_channel(target) as channel:
        say = channel.unary_unary(METHOD)
        while time.time() < end:
            try:
                reply = say(b"", timeout=5).decode()
            except grpc.RpcError:
                reply = "error"
            print(f"{int(time.time() * 1000)} {reply}", flush=True)
            time.sleep(0.005)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "follow":
        follow(sys.argv[2], float(sys.argv[3]))
    else:
        md = [tuple(kv.split("=", 1)) for kv in sys.argv[4:]]
        call(sys.argv[2], int(sys.argv[3]), md)
