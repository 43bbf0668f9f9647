"""HTTP/1.1 reverse proxying (SPEC sections 2 and 6): routing, forwarding, framing, keep-alive."""

import hashlib
import http.client
import os
import types

import pytest

import harness
from harness import (RawConn, config, curl, main_block, pattern_chunks, pattern_sha256,
                     raw_request, request, server_block, upstream_block)

API = {"a1", "a2"}


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    bk = {name: p.backend(name) for name in ("a1", "a2", "v2", "ex", "img", "st")}
    closed = harness.free_port()  # nothing listens there
    port, port2 = harness.free_port(), harness.free_port()
    ups = dict(keepalive=16, connect_timeout="1s", read_timeout="2s", retries=1)
    text = config(
        main_block(),
        upstream_block("api", [bk["a1"].port, bk["a2"].port], **ups),
        upstream_block("v2", [bk["v2"].port], **ups),
        upstream_block("exact", [bk["ex"].port], **ups),
        upstream_block("img", [bk["img"].port], **ups),
        upstream_block("strip", [bk["st"].port], **ups),
        upstream_block("retry", [closed, bk["a1"].port], **ups),
        # its own upstream: an invalid answer marks the target down for the others
        upstream_block("bad", [bk["st"].port], **ups),
        server_block([port], [
            {"path": "/api/", "upstream": "api"},
            {"path": "/api/v2/", "upstream": "v2"},  # after /api/: longest wins, not first
            {"path": "/api/exact", "match": "exact", "upstream": "exact"},
            {"path": "/strip/", "upstream": "strip", "strip_prefix": True},
            {"path": "/retry/", "upstream": "retry"},
            {"path": "/bad/", "upstream": "bad"},
            {"path": "/teapot", "match": "exact",
             "return": {"status": 418, "body": "teapot\n", "headers": {"X-A": "b"}}},
            {"path": "/", "return": {"status": 200, "body": "torii is running\n"}},
        ], client_max_body_size="64m", client_header_timeout="5s", keepalive_timeout="10s"),
        # no "/" location here: unmatched paths are 404
        server_block([port2], [
            {"path": "/api/", "upstream": "api"},
            {"path": "^/img/.*\\.png$", "match": "regex", "upstream": "img"},
        ], client_max_body_size="1m", client_header_timeout="5s", keepalive_timeout="10s"),
    )
    t = p.torii(text)
    return types.SimpleNamespace(port=port, port2=port2, b=bk, torii=t)


def echo(port, path, method="GET", **kw):
    r = request(port, method, path, **kw)
    assert r.status == 200, (path, r.status, r.body[:300])
    return r.json()


def hdr(doc, name):
    """Values of a request header as the backend received it."""
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


# -- answering and forwarding -------------------------------------------------------------

def test_return_location(gw):
    r = request(gw.port, "GET", "/")
    assert (r.status, r.body) == (200, b"torii is running\n")
    assert r.header("Content-Length") == "17"
    r = request(gw.port, "GET", "/anything/else?x=1")
    assert (r.status, r.body) == (200, b"torii is running\n")


def test_return_with_status_and_headers(gw):
    r = request(gw.port, "GET", "/teapot")
    assert (r.status, r.body, r.header("X-A")) == (418, b"teapot\n", "b")


def test_get_post_put_delete(gw):
    d = echo(gw.port, "/api/echo")
    assert d["method"] == "GET" and d["backend"] in API and d["body_len"] == 0
    body = os.urandom(100_000)
    for method in ("POST", "PUT"):
        d = echo(gw.port, "/api/echo", method=method, body=body)
        assert d["method"] == method
        assert d["body_len"] == len(body)
        assert d["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo(gw.port, "/api/thing/1", method="DELETE")["method"] == "DELETE"


def test_head_has_headers_and_no_body(gw):
    with RawConn(gw.port) as c:
        c.send(b"HEAD /api/echo HTTP/1.1\r\nHost: h\r\n\r\n")
        h = c.read_response(head=True)
        assert h.status == 200
        assert h.header("Content-Type") == "application/json"
        assert int(h.header("Content-Length")) > 0
        # had torii sent a body after the HEAD answer, this next response would be garbage
        c.send(b"GET /api/after-head HTTP/1.1\r\nHost: h\r\n\r\n")
        g = c.read_response(timeout=5)
        assert g.status == 200 and g.json()["path"] == "/api/after-head"


def test_query_string_intact(gw):
    for target in ("/api/x?a=1&b=%20", "/api/x?c=%2F&d=a+b&e=&f=%E2%9C%93"):
        assert echo(gw.port, target)["path"] == target


def test_upstream_status_passes_through(gw):
    assert request(gw.port, "GET", "/api/status/404").status == 404
    assert request(gw.port, "GET", "/api/status/503").status == 503
    r = request(gw.port, "GET", "/api/status/204")
    assert r.status == 204 and r.body == b""


# -- routing ------------------------------------------------------------------------------

def test_longest_prefix_wins(gw):
    d = echo(gw.port, "/api/v2/users")
    assert d["backend"] == "v2" and d["path"] == "/api/v2/users"
    assert echo(gw.port, "/api/users")["backend"] in API
    assert echo(gw.port, "/api/v2")["backend"] in API  # "/api/v2/" does not match "/api/v2"


def test_exact_match(gw):
    assert echo(gw.port, "/api/exact")["backend"] == "ex"
    assert echo(gw.port, "/api/exact?q=1")["backend"] == "ex"
    assert echo(gw.port, "/api/exact/")["backend"] in API
    assert echo(gw.port, "/api/exactly")["backend"] in API


def test_regex_match(gw):
    d = echo(gw.port2, "/img/a/b.png")
    assert d["backend"] == "img" and d["path"] == "/img/a/b.png"
    assert echo(gw.port2, "/img/x.png?v=2")["backend"] == "img"
    assert request(gw.port2, "GET", "/img/a.jpg").status == 404
    assert request(gw.port2, "GET", "/img/a.png.bak").status == 404


def test_strip_prefix(gw):
    d = echo(gw.port, "/strip/users?x=1")
    assert d["backend"] == "st" and d["path"] == "/users?x=1"
    assert echo(gw.port, "/strip/a/b")["path"] == "/a/b"


def test_no_matching_location_is_404(gw):
    assert request(gw.port2, "GET", "/nothing/here").status == 404
    assert request(gw.port2, "GET", "/").status == 404


# -- headers ------------------------------------------------------------------------------

def test_forwarded_headers(gw):
    d = echo(gw.port, "/api/fwd", headers={"Host": "example.test:8443"})
    assert hdr(d, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdr(d, "X-Real-IP") == ["127.0.0.1"]
    assert hdr(d, "X-Forwarded-Proto") == ["http"]
    via = hdr(d, "Via")
    assert via and "torii" in ", ".join(via)
    assert hdr(d, "Host") == ["example.test:8443"]
    d = echo(gw.port, "/api/fwd", headers={"X-Forwarded-For": "1.2.3.4"})
    assert ", ".join(hdr(d, "X-Forwarded-For")) == "1.2.3.4, 127.0.0.1"


def test_hop_by_hop_request_headers_removed(gw):
    with RawConn(gw.port) as c:
        c.send(b"GET /api/hop-req HTTP/1.1\r\nHost: h\r\n"
               b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 300\r\n"
               b"Proxy-Connection: x\r\nX-Keep: yes\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    d = r.json()
    names = {k.lower() for k, _ in d["headers"]}
    assert "x-hop" not in names
    assert "keep-alive" not in names
    assert "proxy-connection" not in names
    for v in hdr(d, "Connection"):
        assert "x-hop" not in v.lower()
    assert hdr(d, "X-Keep") == ["yes"]


def test_hop_by_hop_response_headers_removed(gw):
    r = request(gw.port, "GET", "/api/hop")
    assert r.status == 200 and r.body == b"hop\n"
    assert r.header("X-End") == "kept"
    assert r.header("X-Hop-Resp") is None
    assert r.header("Keep-Alive") is None


# -- bodies and framing -------------------------------------------------------------------

def test_chunked_upload_raw(gw):
    sizes = [1, 4095, 65536, 3, 100_000, 17]
    data = os.urandom(sum(sizes))
    wire, off = b"", 0
    for n in sizes:
        wire += b"%x\r\n" % n + data[off:off + n] + b"\r\n"
        off += n
    with RawConn(gw.port, timeout=10) as c:
        c.send(b"POST /api/up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               + wire + b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    d = r.json()
    assert d["body_len"] == len(data)
    assert d["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_upload_curl(gw, tmp_path):
    data = os.urandom(1_000_000)
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    status, _, body = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@%s" % f,
                           "http://127.0.0.1:%d/api/up" % gw.port)
    assert status == 200
    d = harness.Response(body=body).json()
    assert d["body_len"] == len(data)
    assert d["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_expect_100_continue(gw):
    body = os.urandom(5000)
    with RawConn(gw.port) as c:
        c.send(b"POST /api/expect HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        interim = c.read_response(interim=True, timeout=2.0)
        assert interim.status == 100
        c.send(body)
        r = c.read_response(timeout=5)
    assert r.status == 200
    d = r.json()
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert d["expect"] is None, "torii answers 100 itself and does not forward Expect"


def test_expect_over_limit_is_413_without_100(gw):
    with RawConn(gw.port) as c:
        c.send(b"POST /api/expect HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % (100 * 1024 * 1024))
        r = c.read_response(interim=True, timeout=3.0)
    assert r.status == 413


def test_pipelining_in_order(gw):
    with RawConn(gw.port, timeout=10) as c:
        c.send(b"GET /api/slow?ms=300&i=1 HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET /api/echo?i=3 HTTP/1.1\r\nHost: h\r\n\r\n")
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert r1.status == 200 and r1.json()["path"] == "/api/slow?ms=300&i=1"
    assert (r2.status, r2.body) == (200, b"torii is running\n")
    assert r3.status == 200 and r3.json()["path"] == "/api/echo?i=3"


def test_download_50m(gw):
    n = 50 * 1024 * 1024
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("GET", "/api/bytes?n=%d" % n)
        r = conn.getresponse()
        assert r.status == 200
        h, got = hashlib.sha256(), 0
        for _ in range(n // 65536 + 100):
            piece = r.read(1 << 20)
            if not piece:
                break
            h.update(piece)
            got += len(piece)
    finally:
        conn.close()
    assert got == n
    assert h.hexdigest() == pattern_sha256(n)


def test_upload_20m(gw):
    n = 20 * 1024 * 1024
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", "/api/upload", body=pattern_chunks(n),
                     headers={"Content-Length": str(n)})
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    assert r.status == 200
    d = harness.Response(body=body).json()
    assert d["body_len"] == n
    assert d["body_sha256"] == pattern_sha256(n)


def test_chunked_download_with_trailer(gw):
    n = 10 * 1024 * 1024
    with RawConn(gw.port, timeout=30) as c:
        c.send(b"GET /api/bytes?n=%d&chunked=1&trailer=1 HTTP/1.1\r\nHost: h\r\n"
               b"TE: trailers\r\n\r\n" % n)
        h = hashlib.sha256()
        r = c.read_response(sink=h.update)
    assert r.status == 200
    assert r.body_len == n
    assert h.hexdigest() == pattern_sha256(n)
    assert r.chunked, "trailers need a chunked response"
    assert r.trailers.get("X-Checksum") == pattern_sha256(n)


# -- connections --------------------------------------------------------------------------

def test_keepalive_reuse_both_sides(gw):
    a1, a2 = gw.b["a1"], gw.b["a2"]
    before = {b.name: b.connections() for b in (a1, a2)}
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.connect()
        sock = conn.sock
        seen = []
        for i in range(20):
            conn.request("GET", "/api/ka?i=%d" % i)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200
            seen.append(harness.Response(body=body).json()["backend"])
            assert conn.sock is sock, "torii closed the client connection after request %d" % i
    finally:
        conn.close()
    assert set(seen) <= API
    after = {b.name: b.connections() for b in (a1, a2)}
    # each connections() query is itself one accepted connection
    new = {k: after[k] - before[k] - 1 for k in before}
    assert all(v <= 2 for v in new.values()), \
        "upstream connections not reused: new connections per backend %r for 20 requests" % new


def test_retry_on_refused_target(gw):
    for i in range(10):
        r = request(gw.port, "GET", "/retry/x?i=%d" % i)
        assert r.status == 200, "request %d: %d" % (i, r.status)
        assert r.json()["backend"] == "a1"


def test_http10_client(gw):
    res = raw_request(gw.port, b"GET /api/ten HTTP/1.0\r\n\r\n", timeout=5)
    assert res.closed, "torii kept an HTTP/1.0 connection open"
    r = harness.parse_response(res)
    assert r.status == 200 and r.version in ("HTTP/1.0", "HTTP/1.1")
    assert r.json()["path"] == "/api/ten"
    res = raw_request(gw.port, b"GET / HTTP/1.0\r\n\r\n", timeout=5)
    assert res.closed
    assert harness.parse_response(res).body == b"torii is running\n"


def test_http10_client_gets_no_chunked(gw):
    # the upstream answers chunked; an HTTP/1.0 client cannot read that framing
    n = 300_000
    res = raw_request(gw.port, b"GET /api/bytes?n=%d&chunked=1 HTTP/1.0\r\n\r\n" % n,
                      timeout=10)
    assert res.closed
    r = harness.parse_response(res)
    assert r.status == 200
    assert r.header("Transfer-Encoding") is None
    assert r.body_len == n and hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


def test_early_hints_reach_the_client_before_the_answer(gw):
    with RawConn(gw.port) as c:
        c.send(b"GET /api/early HTTP/1.1\r\nHost: h\r\n\r\n")
        hint = c.read_response(interim=True)
        final = c.read_response()
    assert hint.status == 103
    assert hint.header("link") == "</app.css>; rel=preload"
    assert hint.header("x-hint-secret") is None and hint.header("connection") is None
    assert final.status == 200 and final.json()["path"] == "/api/early"
    # HTTP/1.0 clients cannot take an interim answer: only the final one comes.
    r = harness.parse_response(harness.raw_request(gw.port, b"GET /api/early HTTP/1.0\r\n\r\n"))
    assert r.status == 200 and not r.interim


def test_101_without_upgrade_is_502_not_raw_bytes(gw):
    """A 101 without Upgrade + Connection: upgrade is no upgrade (llhttp reads its body by
    Content-Length): it is an invalid answer, 502, and its body never reaches the client
    as bytes of its own (found by t/fuzz/http1_response_fuzz.cc)."""
    data = harness.raw_request(gw.port, b"GET /bad/switch101 HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n", timeout=5)
    assert data.startswith(b"HTTP/1.1 502 "), data
    assert b"X-Injected" not in data
    # On a kept-alive connection the client's first answer is the 502, not the body.
    with RawConn(gw.port) as c:
        c.send(b"GET /bad/switch101 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = c.read_response()
        assert first.status == 502
        assert first.header("x-injected") is None


def read_until_closed(port, wire, timeout=5):
    """(bytes received, how the connection ended: "eof" or "reset")."""
    import socket as _socket
    with _socket.create_connection((harness.HOST, port), timeout=timeout) as s:
        s.sendall(wire)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return data, "reset"
            if not chunk:
                return data, "eof"
            data += chunk


def test_upstream_reset_mid_body_is_a_reset_and_a_close_is_a_truncation(gw):
    # Both send 10 of 100 promised bytes; the client learns which way the response broke.
    data, end = read_until_closed(gw.port, b"GET /api/cutbody HTTP/1.1\r\nHost: h\r\n\r\n")
    assert end == "eof" and data.startswith(b"HTTP/1.1 200") and data.endswith(b"0123456789")
    data, end = read_until_closed(gw.port, b"GET /api/resetbody HTTP/1.1\r\nHost: h\r\n\r\n")
    assert end == "reset", data
