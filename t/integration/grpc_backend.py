#!/usr/bin/python3
"""A gRPC server (Debian's python3-grpcio, generic handlers: no protoc) for the tests.
Messages are raw bytes (identity serialisers).

    /usr/bin/python3 grpc_backend.py --port N     prints "ready" once listening

Methods of service "test.Echo":
  Unary          echoes the request; b"fail" -> status INVALID_ARGUMENT, message "told to
                 fail", trailing metadata ("why-bin", b"\\x00\\x01")
  ServerStream   request b"N": N responses b"0".."N-1"
  ClientStream   the concatenation of every request
  Bidi           echoes each request as it comes
  Slow           sleeps 2 s, then echoes (deadlines)
  Deadline       the time left of the call's deadline as the server sees it, in seconds
  Wait           holds the call until the client cancels it (at most 10 s)
  Cancels        how many Wait calls this server saw cancelled
  Metadata       the call's request metadata as a JSON object (what torii sent upstream)
  SetHealth      request b"SERVICE=STATUS" (STATUS: SERVING, NOT_SERVING, ...): what the
                 health service answers about SERVICE from now on

and grpc.health.v1.Health/Check (the gRPC health checking protocol, its two one-field
messages encoded here by hand), which answers from --health "SERVICE=STATUS,..." (default
"=SERVING": the server as a whole is serving) and NOT_FOUND for a service it does not know,
as grpc's own health servicer does; --health none leaves the service out (UNIMPLEMENTED).
"""

import argparse
import json
import sys
import time
from concurrent import futures

import grpc


def unary(request, context):
    context.set_trailing_metadata((("served-by", "grpc-backend"),))
    if request == b"fail":
        context.set_trailing_metadata((("why-bin", b"\x00\x01"),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "told to fail")
    return request


def server_stream(request, context):
    for i in range(int(request)):
        yield str(i).encode()


def client_stream(request_iterator, context):
    return b"".join(request_iterator)


def bidi(request_iterator, context):
    for r in request_iterator:
        yield r


cancelled = {"count": 0}


def wait(request, context):
    # Holds the call open until the client goes away (at most 10 s), then notes it.
    for _ in range(200):
        if not context.is_active():
            cancelled["count"] += 1
            return b""
        time.sleep(0.05)
    return b"timeout"


def cancels(request, context):
    return str(cancelled["count"]).encode()


def deadline(request, context):
    return ("%.3f" % (context.time_remaining() or -1)).encode()


def metadata(request, context):
    return json.dumps(dict(context.invocation_metadata())).encode()


STATUSES = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3}
health = {}


def parse_health(text):
    for item in filter(None, text.split(",")):
        service, status = item.rsplit("=", 1)
        health[service] = STATUSES[status]


def health_check(request, context):
    # HealthCheckRequest: field 1 (service) as a length-delimited string, or nothing.
    service = ""
    if request:
        length, shift, i = 0, 0, 1
        while i < len(request) and request[i] & 0x80:
            length |= (request[i] & 0x7F) << shift
            shift, i = shift + 7, i + 1
        if request[0] != 0x0A or i >= len(request):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a HealthCheckRequest")
        length |= request[i] << shift
        if length != len(request) - i - 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a HealthCheckRequest")
        service = request[i + 1:].decode()
    if service not in health:
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    status = health[service]
    return bytes([0x08, status]) if status else b""  # proto3 leaves UNKNOWN (0) out


def set_health(request, context):
    parse_health(request.decode())
    return b"ok"


def slow(request, context):
    time.sleep(2)
    return request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="grpc")
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--health", default="=SERVING")
    args = ap.parse_args()
    ident = dict(request_deserializer=None, response_serializer=None)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **ident),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, **ident),
        "Deadline": grpc.unary_unary_rpc_method_handler(deadline, **ident),
        "Wait": grpc.unary_unary_rpc_method_handler(wait, **ident),
        "Cancels": grpc.unary_unary_rpc_method_handler(cancels, **ident),
        "Metadata": grpc.unary_unary_rpc_method_handler(metadata, **ident),
        "SetHealth": grpc.unary_unary_rpc_method_handler(set_health, **ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    generic = [grpc.method_handlers_generic_handler("test.Echo", handlers)]
    if args.health != "none":
        parse_health(args.health)
        generic.append(grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {"Check": grpc.unary_unary_rpc_method_handler(health_check, **ident)}))
    server.add_generic_rpc_handlers(tuple(generic))
    if server.add_insecure_port("127.0.0.1:%d" % args.port) == 0:
        print("bind failed", file=sys.stderr)
        sys.exit(3)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
