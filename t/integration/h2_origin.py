"""What the python3-h2 test origins share: the harness's flags (--port, --name, --mode),
the listening socket on loopback (exit code 3 when the port is taken, so the harness picks
another), "ready" on stdout, and a thread per accepted connection."""

import argparse
import socket
import sys
import threading

import h2.config
import h2.connection


def serve_forever(handle, default_mode="normal"):
    """Runs handle(conn_socket, number, args) on a thread for every connection; number
    counts connections from 1."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="h2")
    ap.add_argument("--mode", default=default_mode)
    args = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", args.port))
    except OSError as e:
        print("bind: %s" % e, file=sys.stderr)
        sys.exit(3)
    s.listen(64)
    print("ready", flush=True)
    number = 0
    while True:
        c, _ = s.accept()
        number += 1
        threading.Thread(target=handle, args=(c, number, args), daemon=True).start()


def h2_reads(c, timeout):
    """The server side of an HTTP/2 connection on socket c, its preface sent: yields
    (conn, events) for each read until the peer closes or breaks the protocol. The caller
    sends conn.data_to_send() and closes c."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    c.sendall(conn.data_to_send())
    c.settimeout(timeout)
    while True:
        data = c.recv(65536)
        if not data:
            return
        try:
            events = conn.receive_data(data)
        except Exception:
            return
        yield conn, events
