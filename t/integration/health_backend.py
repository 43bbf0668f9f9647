#!/usr/bin/python3
"""An HTTP/1.1 origin for the active health check tests, whose health can be switched.

Run as a subprocess:  /usr/bin/python3 health_backend.py --port N [--name NAME]
                      [--tls-cert FILE --tls-key FILE]
Prints "ready" on stdout once listening.

  GET /health                  the current health status (200 at start) with body "ok ready",
                               each one counted (the probes of torii's fleet)
  GET /__health?status=CODE    sets what /health answers from now on
  GET /__hits                  {"health": probes so far, "served": other requests so far}
  anything else                200 {"backend": NAME, "path": PATH}, counted as served
"""

import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.health_status = 200
        self.health = 0
        self.served = 0


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body, ctype="application/json"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/health":
                with state.lock:
                    state.health += 1
                    status = state.health_status
                self.reply(status, "ok ready", "text/plain")
            elif url.path == "/__health":
                code = int(parse_qs(url.query).get("status", ["200"])[0])
                with state.lock:
                    state.health_status = code
                self.reply(200, json.dumps({"health_status": code}))
            elif url.path == "/__hits":
                with state.lock:
                    doc = {"health": state.health, "served": state.served}
                self.reply(200, json.dumps(doc))
            else:
                with state.lock:
                    state.served += 1
                self.reply(200, json.dumps({"backend": state.name, "path": self.path}))

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="backend")
    ap.add_argument("--mode", default="normal")  # the harness passes it; unused
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    try:
        srv = Server(("127.0.0.1", args.port), make_handler(State(args.name)))
    except OSError as e:
        print("cannot listen: %s" % e, file=sys.stderr)
        sys.exit(3)  # the harness picks another port
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
