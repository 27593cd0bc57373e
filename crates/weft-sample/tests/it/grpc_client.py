"""Calls weft-sample's gRPC services with grpcio. No generated code: the
helloworld and grpc.health.v1 messages are a few bytes of protobuf, encoded
and decoded here by hand, so only grpcio is needed.

    grpc_client.py TARGET NAME COUNT

prints one JSON object:
    {"hello": MESSAGE, "metadata": {KEY: VALUE}, "stream": [MESSAGE, ...],
     "too_many": CODE, "failed": {"replies": N, "code": CODE, "details": TEXT,
     "trailers": {KEY: VALUE}}, "chat": [MESSAGE, ...],
     "health": {SERVICE: STATUS or CODE}}
"""

import json
import sys

import grpc


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


def string_field(number, text):
    data = text.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def uint_field(number, value):
    return varint(number << 3) + varint(value)


def fields(data):
    """Decodes a message into {field number: value} (varints and bytes)."""
    out, i = {}, 0

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
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number] = read_varint()
        elif wire == 2:
            n = read_varint()
            out[number] = data[i : i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out


def hello_request(name, count=0, fail_with=0):
    return (
        string_field(1, name)
        + (uint_field(2, count) if count else b"")
        + (uint_field(3, fail_with) if fail_with else b"")
    )


def reply_message(data):
    return fields(data).get(1, b"").decode()


def main(target, name, count):
    result = {}
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        say = channel.unary_unary("/helloworld.Greeter/SayHello")
        reply, call = say.with_call(hello_request(name), timeout=5)
        result["hello"] = reply_message(reply)
        result["metadata"] = {k: v for k, v in call.initial_metadata()}

        stream = channel.unary_stream("/helloworld.Greeter/SayHelloStream")
        result["stream"] = [reply_message(r) for r in stream(hello_request(name, count), timeout=5)]
        try:
            list(stream(hello_request(name, 100000), timeout=5))
            result["too_many"] = "OK"
        except grpc.RpcError as e:
            result["too_many"] = e.code().name
        # A stream that ends with a status other than OK, after its replies.
        call = stream(hello_request(name, 2, fail_with=9), timeout=5)
        replies = 0
        try:
            for _ in call:
                replies += 1
        except grpc.RpcError:
            pass
        result["failed"] = {
            "replies": replies,
            "code": call.code().name,
            "details": call.details(),
            "trailers": {k: v for k, v in call.trailing_metadata()},
        }

        chat = channel.stream_stream("/helloworld.Greeter/SayHelloChat")
        result["chat"] = [reply_message(r) for r in chat(iter([hello_request("a"), hello_request("b")]), timeout=5)]

        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        health = {}
        for service in ["", "helloworld.Greeter", "no.such.Service"]:
            try:
                resp = check(string_field(1, service) if service else b"", timeout=5)
                health[service] = fields(resp).get(1, 0)
            except grpc.RpcError as e:
                health[service] = e.code().name
        result["health"] = health
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
