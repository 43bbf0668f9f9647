#!/usr/bin/python3
"""An h2c origin on python3-h2 for the upstream keep-alive tests.

    /usr/bin/python3 h2_silent_backend.py --port N [--mode silent|normal]   prints "ready"

Every request is answered 200 with the body "conn N pings P": N numbers the TCP connection
(1, 2, ...) and P counts the PINGs the server received on connections that had gone silent.
Mode "silent": each connection answers its first request, then goes on reading but never
writes again (no PING ACK, no response): a peer that died without closing its connection.
Mode "normal": a healthy server (PINGs acknowledged, every request answered).
"""

import threading

import h2.events

import h2_origin

lock = threading.Lock()
state = {"conns": 0, "silent_pings": 0}


def serve(c, number, silent):
    mute = False
    try:
        for conn, events in h2_origin.h2_reads(c, 120):
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
    def handle(c, number, args):
        with lock:
            state["conns"] += 1
        serve(c, number, args.mode == "silent")

    h2_origin.serve_forever(handle, default_mode="silent")


if __name__ == "__main__":
    main()
