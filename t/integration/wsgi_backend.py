#!/usr/bin/python3
"""A WSGI application under Python's wsgiref server, as many Python services run: it
decodes the path (PATH_INFO is percent-decoded) and maps header names to HTTP_* keys with
'-' and '_' alike, so it reads `X_User` and `X-User` as one variable. Answers every request
with JSON: {"path_info", "raw_uri", "headers": {HTTP_*: value}}.

    /usr/bin/python3 wsgi_backend.py --port N      prints "ready" once listening
"""

import argparse
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def app(environ, start_response):
    doc = {
        "path_info": environ.get("PATH_INFO", ""),
        "raw_uri": environ.get("RAW_URI", ""),
        "query": environ.get("QUERY_STRING", ""),
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }
    body = (json.dumps(doc) + "\n").encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        env["RAW_URI"] = self.path  # the request target as received, before decoding
        return env

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="wsgi")  # the harness passes these to every origin
    ap.add_argument("--mode", default="normal")
    args = ap.parse_args()
    try:
        httpd = make_server("127.0.0.1", args.port, app, server_class=WSGIServer,
                            handler_class=Handler)
    except OSError as e:
        print("bind: %s" % e, file=sys.stderr)
        sys.exit(3)
    print("ready", flush=True)
    httpd.timeout = 1
    httpd.serve_forever()


if __name__ == "__main__":
    main()
