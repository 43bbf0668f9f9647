"""The access log cannot be forged by a client: whatever a request carries (an HTTP/2 :path
with quotes, a User-Agent with control bytes) is escaped, so one request is one line with
the fields where a log parser expects them."""
import os
import socket

import harness
from harness import config, main_block, server_block, upstream_block


def h2c_get(port, path, user_agent):
    import h2.config
    import h2.connection
    import h2.events
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                          (":authority", "127.0.0.1"), ("user-agent", user_agent)],
                      end_stream=True)
    s.sendall(conn.data_to_send())
    status = None
    try:
        for _ in range(50):
            data = s.recv(65536)
            if not data:
                break
            for e in conn.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived):
                    status = int(dict(e.headers)[b":status"])
                if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status
            s.sendall(conn.data_to_send())
    finally:
        s.close()
    return status


def test_quotes_and_control_bytes_are_escaped(procs, tmp_path):
    b = procs.backend("b")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    procs.torii(config(main_block(access_log=log_path), upstream_block("b", [b.port]),
                       server_block([port], [{"path": "/", "upstream": "b"}])))
    forged = '/x" 200 1 "-" "-" 0.000 -\n1.2.3.4 - - [x] "GET /admin'
    status = h2c_get(port, '/a"q', 'agent\t"quoted"')
    assert status is not None
    lines = harness.wait_until(
        lambda: os.path.exists(log_path) and open(log_path).read().count("\n") >= 1 and
        open(log_path).read(), 5.0)
    assert lines, "nothing logged"
    line = lines.splitlines()[0]
    assert '"GET /a\\x22q HTTP/2.0"' in line, line
    assert '"agent\\x09\\x22quoted\\x22"' in line, line
    # A :path with CR/LF is refused by HTTP/2 itself; the log stays one line per request.
    h2c_get(port, forged, "x")
    assert all(l.count('"') == 6 for l in open(log_path).read().splitlines()), \
        open(log_path).read()
