"""Self-test of the test tooling (backend.py, harness.py), no torii needed:

    /usr/bin/python3 -m pytest -q t/integration/selftest_backend.py

Not named test_*.py so ctest does not list it as a torii test.
"""

import hashlib
import http.client
import socket
import time
import tomllib

import pytest

import harness
from harness import RawConn, pattern_sha256, raw_request, request


@pytest.fixture(scope="module")
def b(module_procs):
    return module_procs.backend("one")


def test_echo_get_query_headers(b):
    r = request(b.port, "GET", "/x/echo?a=1&b=%20", headers={"X-Test": "v"})
    assert r.status == 200
    d = r.json()
    assert d["backend"] == "one" and d["method"] == "GET"
    assert d["path"] == "/x/echo?a=1&b=%20"
    assert ["X-Test", "v"] in d["headers"]
    assert d["body_len"] == 0 and d["http_version"] == "HTTP/1.1"
    assert r.header("Content-Length") == str(len(r.body))


def test_post_body_and_head(b):
    body = b"x" * 100000
    d = request(b.port, "POST", "/p", body=body).json()
    assert d["body_len"] == 100000
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()
    with RawConn(b.port) as c:
        c.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head=True)
        assert h.status == 200 and h.body == b"" and int(h.header("content-length")) > 0
        g = c.read_response()
        assert g.json()["path"] == "/g"


def test_chunked_upload_with_trailers_and_pipelining(b):
    with RawConn(b.port) as c:
        c.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
               b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        r1, r2 = c.read_response(), c.read_response()
    d = r1.json()
    assert d["chunked"] is True and d["body_len"] == 11
    assert d["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert d["trailers"] == [["X-T", "1"]]
    assert r2.json()["path"] == "/second"
    assert r2.json()["conn_id"] == d["conn_id"]


def test_expect_continue(b):
    with RawConn(b.port) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        i = c.read_response(interim=True, timeout=2)
        assert i.status == 100
        c.send(b"abc")
        d = c.read_response().json()
        assert d["expect"] == "100-continue" and d["body_len"] == 3


def test_bytes_pattern(b):
    n = 1000003
    r = request(b.port, "GET", "/api/bytes?n=%d" % n)
    assert r.status == 200 and len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)
    with RawConn(b.port) as c:
        c.send(b"GET /bytes?n=300000&chunked=1&trailer=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    assert r.chunked and r.body_len == 300000
    assert r.trailers.get("X-Checksum") == pattern_sha256(300000)
    assert r.header("Trailer") == "X-Checksum"
    # the pattern is not periodic in 64 KiB: a dropped block changes the bytes
    assert hashlib.sha256(r.body[:65536] + r.body[131072:196608]).hexdigest() != \
        hashlib.sha256(r.body[:131072]).hexdigest()


def test_status_slow_close_hop_connections(b):
    assert request(b.port, "GET", "/a/status/503").status == 503
    r = request(b.port, "GET", "/status/204")
    assert r.status == 204 and r.body == b""
    t0 = time.monotonic()
    assert request(b.port, "GET", "/slow?ms=300").status == 200
    assert time.monotonic() - t0 >= 0.3
    with RawConn(b.port) as c:
        c.send(b"GET /slowbody?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        assert r.body == b"0123456789" and time.monotonic() - t0 >= 0.3
    res = raw_request(b.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert res.closed and harness.parse_response(res).header("Connection") == "close"
    res = raw_request(b.port, b"GET /api/hop HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    r = harness.parse_response(res)
    assert res.closed and r.header("X-Hop-Resp") == "secret" and r.header("X-End") == "kept"
    before = b.connections()
    for _ in range(3):
        request(b.port, "GET", "/")
    assert b.connections() == before + 4


def test_http10_closes(b):
    res = raw_request(b.port, b"GET /ten HTTP/1.0\r\n\r\n", timeout=3)
    assert res.closed and harness.parse_response(res).json()["http_version"] == "HTTP/1.0"


def test_keepalive_http_client(b):
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=5)
    ids = set()
    for i in range(5):
        conn.request("GET", "/k%d" % i)
        ids.add(harness.Response(body=conn.getresponse().read()).json()["conn_id"])
    conn.close()
    assert len(ids) == 1


@pytest.mark.parametrize("mode", ["garbage", "reset", "silent"])
def test_bad_modes(procs, mode):
    bb = procs.backend("bad", mode=mode)
    res = raw_request(bb.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.5)
    if mode == "garbage":
        assert res.closed and b"NOT HTTP" in res
    elif mode == "reset":
        with RawConn(bb.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                for _ in range(10):
                    if not c.sock.recv(10):
                        break
                    pass
    else:
        assert not res.closed and res == b""


def test_curl_wrapper(b):
    status, headers, body = harness.curl("http://127.0.0.1:%d/cu?x=1" % b.port)
    assert status == 200 and headers.get("content-type") == "application/json"
    assert b'"/cu?x=1"' in body
    r = harness.curl("-H", "Transfer-Encoding: chunked", "--data-binary", "hello",
                     "http://127.0.0.1:%d/up" % b.port)
    assert r.status == 200 and b'"chunked": true' in r.body and b'"body_len": 5' in r.body
    r = harness.curl("http://127.0.0.1:%d/" % harness.free_port(), check=False)
    assert r.status == 0 and r.rc != 0


def test_config_builders_parse():
    text = harness.config(
        harness.main_block(admin_port=20001),
        harness.upstream_block("api", [20002, "127.0.0.1:20003"], keepalive=16, retries=1),
        harness.server_block([20004], [{"path": "^/img/.*\\.png$", "match": "regex",
                                        "upstream": "api"},
                                       {"path": "/", "return": {"status": 200, "body": "x\n",
                                                                "headers": {"X-A": "b"}}}],
                             client_max_body_size="1m"))
    d = tomllib.loads(text)
    assert d["upstream"]["api"]["targets"][1]["address"] == "127.0.0.1:20003"
    assert d["server"][0]["location"][0]["path"] == r"^/img/.*\.png$"
    assert d["server"][0]["location"][1]["return"]["headers"] == {"X-A": "b"}
    assert sorted(harness.listen_ports(text)) == [20001, 20004]


def test_free_port_and_process_stop(procs):
    p = harness.free_port()
    assert 20000 <= p < 32768
    s = socket.socket()
    s.bind(("127.0.0.1", p))
    s.close()
    bb = procs.backend("stopme")
    pid = bb.proc.pid
    bb.stop()
    assert bb.proc.poll() is not None
    assert harness._proc_stat(pid) is None
