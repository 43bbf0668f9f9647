#!/usr/bin/python3
"""An h2c origin on python3-h2 that declines streams without processing them, for the
retry rules of HTTP/2 upstreams (a stream the target refused was not processed, so it may
go to another target even for a POST).

    /usr/bin/python3 h2_refusing_backend.py --port N --name NAME --mode MODE   prints "ready"

Modes:
- "refuse": every request stream is reset with REFUSED_STREAM as soon as its HEADERS come;
- "goaway": the first HEADERS on a connection is answered with GOAWAY (last stream id 0:
  nothing processed) and the connection is closed;
- "reset": every request stream is reset with INTERNAL_ERROR (it may have been processed);
- "normal": every request is answered 200 with "NAME METHOD BODY" once its body ended.
Every mode prints "stream METHOD PATH" on stdout for each request stream it saw.
"""

import threading

import h2.errors
import h2.events

import h2_origin

lock = threading.Lock()


def serve(c, name, mode):
    bodies, methods, paths = {}, {}, {}
    try:
        for conn, events in h2_origin.h2_reads(c, 60):
            for e in events:
                if isinstance(e, h2.events.RequestReceived):
                    fields = {k.decode() if isinstance(k, bytes) else k:
                              v.decode() if isinstance(v, bytes) else v for k, v in e.headers}
                    with lock:
                        print("stream %s %s" % (fields.get(":method"), fields.get(":path")),
                              flush=True)
                    if mode in ("refuse", "reset"):
                        code = h2.errors.ErrorCodes.REFUSED_STREAM if mode == "refuse" \
                            else h2.errors.ErrorCodes.INTERNAL_ERROR
                        conn.reset_stream(e.stream_id, code)
                        continue
                    if mode == "goaway":
                        conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
                        c.sendall(conn.data_to_send())
                        return
                    methods[e.stream_id] = fields.get(":method", "?")
                    paths[e.stream_id] = fields.get(":path", "?")
                    bodies[e.stream_id] = b""
                    if e.stream_ended:
                        respond(conn, e.stream_id, name, methods, paths, bodies)
                elif isinstance(e, h2.events.DataReceived):
                    if e.stream_id in bodies:
                        bodies[e.stream_id] += e.data
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    if e.stream_ended and e.stream_id in bodies:
                        respond(conn, e.stream_id, name, methods, paths, bodies)
                elif isinstance(e, h2.events.StreamEnded) and e.stream_id in bodies:
                    respond(conn, e.stream_id, name, methods, paths, bodies)
            out = conn.data_to_send()
            if out:
                c.sendall(out)
    except OSError:
        return
    finally:
        c.close()


def respond(conn, sid, name, methods, paths, bodies):
    if sid not in bodies:
        return
    text = "%s %s %s" % (name, methods[sid], bodies[sid].decode(errors="replace"))
    del bodies[sid]
    body = text.encode()
    conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
    conn.send_data(sid, body, end_stream=True)


def main():
    h2_origin.serve_forever(lambda c, number, args: serve(c, args.name, args.mode))


if __name__ == "__main__":
    main()
