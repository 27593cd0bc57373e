"""gRPC calls through a Weft proxy's outbound port, for the routing tests.

    grpc_call.py TARGET AUTHORITY N [K=V ...]

makes N unary /helloworld.Greeter/SayHello calls to TARGET (the proxy)
with :authority AUTHORITY (the service) and metadata K=V, and prints
{"codes": {CODE: count}, "details": {CODE: last details}} as JSON.
No generated code: an empty HelloRequest is empty bytes.
"""

import json
import sys
import time

import grpc

METHOD = "/helloworld.Greeter/SayHello"


def main():
    target, authority, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    metadata = [tuple(kv.split("=", 1)) for kv in sys.argv[4:]]
    codes, details = {}, {}
    deadline = time.time() + 60
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(target, options=options) as channel:
        say = channel.unary_unary(METHOD)
        for _ in range(n):
            if time.time() > deadline:
                break
            try:
                say(b"", timeout=10, metadata=metadata)
                code, detail = "OK", ""
            except grpc.RpcError as e:
                code, detail = e.code().name, e.details() or ""
            codes[code] = codes.get(code, 0) + 1
            details[code] = detail
    print(json.dumps({"codes": codes, "details": details}), flush=True)


if __name__ == "__main__":
    main()
