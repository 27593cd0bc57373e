"""Streaming gRPC calls through a Weft proxy, for the routing tests.

    grpc_stream.py TARGET AUTHORITY stream NAME COUNT FAIL_WITH
    grpc_stream.py TARGET AUTHORITY chat NAME...

`stream` calls /helloworld.Greeter/SayHelloStream (server streaming) with
HelloRequest{name, count, fail_with}; `chat` calls SayHelloChat
(bidirectional) and sends each NAME only once the reply to the one before
has arrived, so a proxy that held back either direction stalls it. Both
go to TARGET (the proxy) with :authority AUTHORITY and print
{"messages": [...], "code": CODE, "details": TEXT,
 "initial": {KEY: VALUE}, "trailing": {KEY: VALUE}} as JSON.
No generated code: the messages are a few bytes of protobuf, encoded and
decoded here (HelloRequest: 1 name, 2 count, 3 fail_with; HelloReply:
1 message).
"""

import json
import queue
import sys

import grpc

TIMEOUT = 20


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def hello_request(name, count=0, fail_with=0):
    data = name.encode()
    out = varint(1 << 3 | 2) + varint(len(data)) + data
    if count:
        out += varint(2 << 3) + varint(count)
    if fail_with:
        out += varint(3 << 3) + varint(fail_with)
    return out


def reply_message(data):
    """Field 1 (a string) of a HelloReply."""
    i, message = 0, ""

    def read_varint():
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(data):
        key = read_varint()
        if key & 7 == 0:
            read_varint()
        elif key & 7 == 2:
            n = read_varint()
            if key >> 3 == 1:
                message = data[i : i + n].decode()
            i += n
        else:
            raise ValueError(f"unexpected wire type in {data!r}")
    return message


def collect(call, on_reply=lambda: None):
    out = {"messages": []}
    try:
        for reply in call:
            out["messages"].append(reply_message(reply))
            on_reply()
    except grpc.RpcError:
        pass
    out["code"] = call.code().name
    out["details"] = call.details() or ""
    out["initial"] = {k: v for k, v in call.initial_metadata() or ()}
    out["trailing"] = {k: v for k, v in call.trailing_metadata() or ()}
    return out


def main():
    target, authority, mode, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(target, options=options) as channel:
        if mode == "stream":
            name, count, fail_with = args[0], int(args[1]), int(args[2])
            method = channel.unary_stream("/helloworld.Greeter/SayHelloStream")
            out = collect(method(hello_request(name, count, fail_with), timeout=TIMEOUT))
        else:
            replied = queue.Queue()

            def requests():
                for name in args:
                    yield hello_request(name)
                    # The next one only after this one's reply (bounded).
                    replied.get(timeout=TIMEOUT)

            method = channel.stream_stream("/helloworld.Greeter/SayHelloChat")
            call = method(requests(), timeout=TIMEOUT)
            out = collect(call, lambda: replied.put(None))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
