"""The access log cannot be forged by a client: whatever a request carries (an HTTP/2 :path
with quotes, a User-Agent with control bytes) is escaped, so one request is one line with
the fields where a log parser expects them. Its formats (access_log_format): the default,
nginx's combined (compared with a real nginx), JSON lines, templates; $request_id and the
X-Request-Id targets receive."""
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


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


# ---- access_log_format ----------------------------------------------------------------------



def logged_lines(path, n, timeout=5.0):
    """The first n lines of the access log, once it has them (lines are flushed each second)."""
    def ready():
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", errors="strict").splitlines()
        return lines if len(lines) >= n else None
    lines = harness.wait_until(ready, timeout)
    assert lines, "fewer than %d lines in %s" % (n, path)
    return lines


def raw_get(port, head):
    """Sends one HTTP/1.1 request head (bytes, without the final CRLF CRLF) and returns the
    response."""
    with harness.RawConn(port) as c:
        c.send(head + b"\r\nConnection: close\r\n\r\n")
        return c.read_response(head=head.startswith(b"HEAD "))


def h2c_request(port, path, headers=()):
    """One GET over h2c with prior knowledge; (status, body)."""
    import h2.config
    import h2.connection
    import h2.events
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                          (":authority", "127.0.0.1")] + list(headers), end_stream=True)
    s.sendall(conn.data_to_send())
    status, body = None, b""
    try:
        for _ in range(100):
            data = s.recv(65536)
            if not data:
                break
            for e in conn.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived):
                    status = int(dict(e.headers)[b":status"])
                if isinstance(e, h2.events.DataReceived):
                    body += e.data
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, body
            s.sendall(conn.data_to_send())
    finally:
        s.close()
    return status, body


def seen_request_ids(echo_body):
    doc = json.loads(echo_body)
    return [v for k, v in doc["headers"] if k.lower() == "x-request-id"]


def test_json_lines_parse_and_escape_what_clients_send(procs, tmp_path):
    b = procs.backend("b")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.json")
    procs.torii(config(main_block(access_log=log_path, access_log_format="json"),
                       upstream_block("b", [b.port]),
                       server_block([port], [{"path": "/", "upstream": "b"}])))
    # HTTP/1.1: a quote, a backslash and a tab in a header, a byte that is not UTF-8 (obs-text),
    # a credential in the query.
    r1 = raw_get(port, b'GET /one?token=s3cret&page=2 HTTP/1.1\r\nHost: h1\r\n'
                       b'User-Agent: a\t"q"\\z \xff!\r\nReferer: http://r/')
    assert r1.status == 200
    # HTTP/2: a quote in :path (HTTP/1.1 would refuse it). Of the control bytes only the tab
    # gets this far (HTTP/1.1 and HTTP/2 refuse the others: 400, stream reset); the unit tests
    # cover the rest of the escaper.
    status, body2 = h2c_request(port, '/two"x', [("user-agent", 'h2\t"ua"')])
    assert status == 200
    lines = logged_lines(log_path, 2)
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(line.startswith("{") and line.endswith("}") for line in lines)
    one = next(d for d in docs if d["request_uri"].startswith("/one"))
    two = next(d for d in docs if d["request_uri"].startswith("/two"))

    assert one["request_uri"] == "/one?token=***&page=2"
    assert one["http_user_agent"] == 'a\t"q"\\z \ufffd!'
    assert one["http_referer"] == "http://r/"
    assert one["request_method"] == "GET" and one["host"] == "h1"
    assert one["server_protocol"] == "HTTP/1.1"
    assert one["status"] == 200 and type(one["status"]) is int
    assert one["body_bytes_sent"] == len(r1.body)
    assert isinstance(one["request_time"], (int, float)) and one["request_time"] >= 0
    assert isinstance(one["upstream_response_time"], (int, float))
    assert one["upstream_addr"] == b.address
    assert one["ssl_protocol"] is None and one["grpc_status"] is None
    assert re.fullmatch(r"[0-9a-f]{32}", one["request_id"]), one
    assert seen_request_ids(r1.body) == [one["request_id"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", one["time_iso8601"])

    assert two["request_uri"] == '/two"x'
    assert two["http_user_agent"] == 'h2\t"ua"'
    assert two["http_referer"] is None
    assert two["server_protocol"] == "HTTP/2.0"
    assert seen_request_ids(body2) == [two["request_id"]]
    assert two["request_id"] != one["request_id"]
    # The raw text escapes them: no control byte or lone quote survives into the file.
    raw = open(log_path, "rb").read()
    assert b"\t" not in raw and b"\xff" not in raw
    assert b'\\t\\"q\\"\\\\z \\ufffd!' in raw and b'h2\\t\\"ua\\"' in raw


def start_nginx(tmp_path, port, log_path):
    d = os.path.join(str(tmp_path), "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections 64; }
http {
    access_log %(log)s combined;
    server {
        listen 127.0.0.1:%(p)d;
        location / { return 200 "hello\\n"; }
    }
}
""" % {"d": d, "p": port, "log": log_path})
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    if not harness.wait_until(lambda: harness.port_accepts(port), 10.0):
        harness.stop_process(proc)
        raise harness.HarnessError("nginx did not start")
    return proc


COMBINED_HEADS = [
    b"GET /x/y?page=2&q=a%20b HTTP/1.1\r\nHost: a",
    b'GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: say "hi"\t\\ now\r\n'
    b"Referer: http://example.com/p?q=1",
    b"HEAD /h HTTP/1.0\r\nHost: a"]


def combined_lines(procs, tmp_path):
    """torii with access_log_format = "combined" answering "hello\n" itself: its lines for
    COMBINED_HEADS."""
    port = harness.free_port()
    log = os.path.join(str(tmp_path), "torii.log")
    procs.torii(config(main_block(access_log=log, access_log_format="combined"),
                       server_block([port], [{"path": "/", "return": {
                           "status": 200, "body": "hello\n"}}])))
    for head in COMBINED_HEADS:
        assert raw_get(port, head).status == 200
    return logged_lines(log, len(COMBINED_HEADS))


def test_combined_layout(procs, tmp_path):
    lines = combined_lines(procs, tmp_path)
    time = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET /x/y\?page=2&q=a%%20b HTTP/1\.1" 200 6 '
                        r'"-" "-"' % time, lines[0]), lines[0]
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET / HTTP/1\.1" 200 6 '
                        r'"http://example\.com/p\?q=1" "say \\x22hi\\x22\\x09\\x5C now"' % time,
                        lines[1]), lines[1]
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "HEAD /h HTTP/1\.0" 200 0 "-" "-"' % time,
                        lines[2]), lines[2]


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (make deps)")
def test_combined_is_nginx_combined(procs, tmp_path):
    # The same requests to nginx (access_log combined) and to torii (access_log_format =
    # "combined"), both answering "hello\n" themselves: the lines match but for the time.
    nginx_port = harness.free_port()
    nginx_log = os.path.join(str(tmp_path), "nginx.log")
    nginx = start_nginx(tmp_path, nginx_port, nginx_log)
    try:
        for head in COMBINED_HEADS:
            assert raw_get(nginx_port, head).status == 200
        nginx_lines = harness.wait_until(
            lambda: os.path.exists(nginx_log) and
            len(open(nginx_log).read().splitlines()) >= len(COMBINED_HEADS) and
            open(nginx_log).read().splitlines(), 5.0)
    finally:
        harness.stop_process(nginx)
    assert nginx_lines, "nginx logged nothing"
    torii_lines = combined_lines(procs, tmp_path)
    no_time = lambda line: re.sub(r"\[[^\]]+\]", "[T]", line)
    assert [no_time(l) for l in torii_lines] == [no_time(l) for l in nginx_lines]


def test_default_format_is_combined_plus_time_and_upstream(procs, tmp_path):
    b = procs.backend("b")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    procs.torii(config(main_block(access_log=log_path), upstream_block("b", [b.port]),
                       server_block([port], [{"path": "/", "upstream": "b"}])))
    r = harness.request(port, "GET", "/d?apikey=k1", headers={"User-Agent": "ua/1"})
    line = logged_lines(log_path, 1)[0]
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /d\?apikey=\*\*\* HTTP/1\.1" 200 %d '
                        r'"-" "ua/1" \d+\.\d{3} %s' % (len(r.body), re.escape(b.address)),
                        line), line


def test_template_with_request_id_matches_what_the_upstream_saw(procs, tmp_path):
    b = procs.backend("b")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    procs.torii(config(
        main_block(access_log=log_path,
                   access_log_format='id=$request_id s=$status up=$upstream_addr "$request"'),
        upstream_block("b", [b.port]),
        server_block([port], [{"path": "/", "upstream": "b"}])))
    fresh = harness.request(port, "GET", "/fresh")
    kept = harness.request(port, "GET", "/kept", headers={"X-Request-Id": "client-id-42"})
    _, h2_body = h2c_request(port, "/h2")
    generated = seen_request_ids(fresh.body)
    assert len(generated) == 1 and re.fullmatch(r"[0-9a-f]{32}", generated[0]), fresh.body
    assert seen_request_ids(kept.body) == ["client-id-42"]  # the client's, once
    h2_ids = seen_request_ids(h2_body)
    assert len(h2_ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", h2_ids[0])
    assert h2_ids[0] != generated[0]
    lines = logged_lines(log_path, 3)
    assert 'id=%s s=200 up=%s "GET /fresh HTTP/1.1"' % (generated[0], b.address) in lines
    assert 'id=client-id-42 s=200 up=%s "GET /kept HTTP/1.1"' % b.address in lines
    assert 'id=%s s=200 up=%s "GET /h2 HTTP/2.0"' % (h2_ids[0], b.address) in lines


def test_request_id_reaches_grpc_targets(procs, tmp_path):
    import grpc
    g = procs.backend("g", script="grpc_backend.py")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    procs.torii(config(
        main_block(access_log=log_path, access_log_format="$request_id $grpc_status $uri"),
        upstream_block("grpc", [g.port], protocol="h2c"),
        server_block([port], [{"path": "/test.Echo/", "upstream": "grpc"}])))
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
        call = channel.unary_unary("/test.Echo/Metadata")
        seen = json.loads(call(b"", timeout=10))
        kept = json.loads(call(b"", timeout=10, metadata=(("x-request-id", "rpc-7"),)))
    finally:
        channel.close()
    assert re.fullmatch(r"[0-9a-f]{32}", seen.get("x-request-id", "")), seen
    assert kept.get("x-request-id") == "rpc-7", kept
    lines = logged_lines(log_path, 2)
    assert "%s 0 /test.Echo/Metadata" % seen["x-request-id"] in lines, lines
    assert "rpc-7 0 /test.Echo/Metadata" in lines, lines


def test_header_rewrite_can_drop_client_ids_and_hand_the_id_back(procs, tmp_path):
    # The documented recipe: ignore the ids clients send, return the id in the response.
    b = procs.backend("b")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    procs.torii(config(
        main_block(access_log=log_path, access_log_format="$request_id"),
        plugin_block("header_rewrite"),
        upstream_block("b", [b.port]),
        server_block([port], [{"path": "/", "upstream": "b", "plugins": {"header_rewrite": {
            "request_remove": ["X-Request-Id"],
            "response_set": {"X-Request-Id": "$request_id"}}}}])))
    r = harness.request(port, "GET", "/x", headers={"X-Request-Id": "forged"})
    ids = seen_request_ids(r.body)
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0]), ids
    assert r.header("x-request-id") == ids[0]
    assert logged_lines(log_path, 1) == [ids[0]]
