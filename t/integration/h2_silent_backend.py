#!/usr/bin/python3
"""An h2c origin on python3-h2 for the upstream keep-alive tests.

    /usr/bin/python3 h2_silent_backend.py --port N [--mode silent|normal]   prints "ready"

Every request is answered 200 with the body "conn N pings P": N numbers the TCP connection
(1, 2, ...) and P counts the PINGs the server received on connections that had gone silent.
Mode "silent": each connection answers its first request, then goes on reading but never
writes again (no PING ACK, no response): a peer that died without closing its connection.
Mode "normal": a healthy server (PINGs acknowledged, every request answered).
"""

import argparse
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

lock = threading.Lock()
state = {"conns": 0, "silent_pings": 0}


def serve(c, number, silent):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    c.sendall(conn.data_to_send())
    mute = False
    c.settimeout(120)
    try:
        while True:
            data = c.recv(65536)
            if not data:
                return
            try:
                events = conn.receive_data(data)
            except Exception:
                return
            for e in events:
                if isinstance(e, h2.events.PingReceived) and mute:
                    with lock:
                        state["silent_pings"] += 1
                if isinstance(e, h2.events.RequestReceived) and not mute:
                    with lock:
                        body = ("conn %d pings %d\n" % (number, state["silent_pings"])).encode()
                    conn.send_headers(e.stream_id, [(":status", "200"),
                                                    ("content-length", str(len(body)))])
                    conn.send_data(e.stream_id, body, end_stream=True)
                    if silent:
                        c.sendall(conn.data_to_send())
                        mute = True
            out = conn.data_to_send()
            if not mute and out:
                c.sendall(out)
    except OSError:
        return
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="h2")
    ap.add_argument("--mode", default="silent")
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
    while True:
        c, _ = s.accept()
        with lock:
            state["conns"] += 1
            n = state["conns"]
        threading.Thread(target=serve, args=(c, n, args.mode == "silent"), daemon=True).start()


if __name__ == "__main__":
    main()
