"""Bad input gets a clear answer (SPEC section 7), HTTP/1.1 rows. One torii for the file; the
last test checks it still serves and that its worker never died."""

import select
import time
import types

import pytest

import harness
from harness import RawConn, config, main_block, raw_request, request, server_block, \
    upstream_block

KEEPALIVE_S = 2.0
HEADER_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    live = p.backend("live")
    bad = {m: p.backend(m, mode=m) for m in ("garbage", "reset", "silent")}
    closed = harness.free_port()
    port = harness.free_port()
    ups = dict(keepalive=16, connect_timeout="1s", read_timeout="2s", retries=1)
    text = config(
        main_block(),
        upstream_block("api", [live.port], **ups),
        upstream_block("refused", [closed], **ups),
        upstream_block("garbage", [bad["garbage"].port], **ups),
        upstream_block("reset", [bad["reset"].port], **ups),
        upstream_block("silent", [bad["silent"].port], keepalive=16, connect_timeout="1s",
                       read_timeout="1s", retries=0),
        server_block([port], [
            {"path": "/api/", "upstream": "api"},
            {"path": "/refused/", "upstream": "refused"},
            {"path": "/garbage/", "upstream": "garbage"},
            {"path": "/reset/", "upstream": "reset"},
            {"path": "/silent/", "upstream": "silent"},
            {"path": "/", "return": {"status": 200, "body": "torii is running\n"}},
        ], client_max_body_size="1m", client_max_header_size="8k",
            client_header_timeout="%ds" % HEADER_TIMEOUT_S, keepalive_timeout="%ds" % KEEPALIVE_S),
    )
    t = p.torii(text)
    # workers = 1: a master and one worker; take the PIDs once the worker is up
    harness.wait_until(lambda: len(t.pids()) >= 2, 5.0)
    return types.SimpleNamespace(port=port, torii=t, live=live, pids=sorted(t.pids()))


def check_400_closed(gw, wire):
    res = raw_request(gw.port, wire, timeout=5)
    assert res, "no answer to %r" % wire[:80]
    r = harness.parse_response(res)
    assert r.status == 400, (wire[:80], r.status)
    # closed right away, not by the 1s client_header_timeout later
    assert res.closed and res.elapsed < 0.8, \
        "connection not closed after 400 (closed=%s after %.2fs)" % (res.closed, res.elapsed)


BAD_REQUESTS = {
    "request_line": b"GARBAGE\r\n\r\n",
    "header_no_colon": b"GET / HTTP/1.1\r\nHost: h\r\nThisIsNotAHeader\r\n\r\n",
    "cl_and_te": b"POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "cl_not_a_number": b"POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\nhello",
    "cl_two_values": b"POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                     b"Content-Length: 6\r\n\r\nhello!",
    "bad_chunk_size": b"POST /api/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_400_and_closed(gw, name):
    check_400_closed(gw, BAD_REQUESTS[name])


def test_header_section_over_limit_431(gw):
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    r = harness.parse_response(raw_request(gw.port, big, timeout=5))
    assert r.status == 431
    many = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(
        b"X-H%03d: %s\r\n" % (i, b"v" * 90) for i in range(120)) + b"\r\n"
    r = harness.parse_response(raw_request(gw.port, many, timeout=5))
    assert r.status == 431
    # just under the limit is fine
    ok = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n"
    assert harness.parse_response(raw_request(gw.port, ok, timeout=5)).status == 200


def test_body_over_limit_by_content_length_413(gw):
    # only the head is sent: the limit is known from Content-Length alone
    with RawConn(gw.port) as c:
        c.send(b"POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
               % (2 * 1024 * 1024))
        r = c.read_response(timeout=3)
    assert r.status == 413


def test_body_over_limit_by_chunked_data_413(gw):
    piece = b"x" * 16384
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    with RawConn(gw.port, timeout=5) as c:
        c.send(b"POST /api/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        for i in range(160):  # up to 2.5 MiB, slower once past the 1 MiB limit
            if select.select([c.sock], [], [], 0.01 if sent > 1024 * 1024 else 0)[0]:
                break  # torii answered
            try:
                c.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        r = c.read_response(timeout=5)
    assert r.status == 413


def test_slow_client_times_out_and_others_are_served(gw):
    with RawConn(gw.port, timeout=5) as slow:
        t0 = time.monotonic()
        slow.send(b"GET /api/echo HTTP/1.1\r\nHost: h\r\nX-Half: ")
        time.sleep(0.3)
        t1 = time.monotonic()
        r = request(gw.port, "GET", "/api/other", timeout=3)
        assert r.status == 200 and r.json()["path"] == "/api/other"
        assert time.monotonic() - t1 < 0.8, "the stalled client held up the worker"
        closed, data, _ = slow.wait_closed(5.0)
        elapsed = time.monotonic() - t0
    assert closed, "torii never closed a client that stalled inside its request head"
    assert 0.8 <= elapsed <= 3.0, "closed after %.2fs, client_header_timeout is 1s" % elapsed
    if data:  # an answer is optional; if there is one it is an error, not a 200
        assert harness.parse_response(data).status >= 400


def test_idle_keepalive_connection_closed(gw):
    with RawConn(gw.port, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        closed, _, elapsed = c.wait_closed(KEEPALIVE_S + 4)
    assert closed, "idle keep-alive connection not closed after keepalive_timeout"
    assert KEEPALIVE_S - 0.5 <= elapsed <= KEEPALIVE_S + 2.5, \
        "idle connection closed after %.2fs, keepalive_timeout is %ss" % (elapsed, KEEPALIVE_S)


def test_upstream_refused_502(gw):
    assert request(gw.port, "GET", "/refused/x").status == 502


def test_upstream_garbage_502(gw):
    assert request(gw.port, "GET", "/garbage/x").status == 502


def test_upstream_reset_502(gw):
    assert request(gw.port, "GET", "/reset/x").status == 502


def test_upstream_silent_504(gw):
    t0 = time.monotonic()
    r = request(gw.port, "GET", "/silent/x", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 504
    assert 0.8 <= elapsed <= 3.0, "504 after %.2fs, read_timeout is 1s" % elapsed


def test_still_serving_and_worker_unharmed(gw):
    assert gw.torii.alive(), "torii exited: %s" % gw.torii.log()[-2000:]
    r = request(gw.port, "GET", "/")
    assert (r.status, r.body) == (200, b"torii is running\n")
    r = request(gw.port, "POST", "/api/echo", body=b"abc")
    assert r.status == 200 and r.json()["body_len"] == 3
    assert sorted(gw.torii.pids()) == gw.pids, "a torii process died or was restarted"


def test_upstream_breaking_after_its_head_cuts_the_response_at_once(procs):
    # The upstream sends a valid chunked head, then an invalid chunk size. The head has
    # already gone to the client, so torii cannot answer 502 any more: the client must see
    # the head and then a prompt close (a truncated chunked body), not a stalled connection.
    import socket
    import threading
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((harness.HOST, harness.free_port()))
    srv.listen(8)
    bport = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n")
            time.sleep(3)  # stays open: only torii's own handling can end the client's wait
            c.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        port = harness.free_port()
        t = procs.torii(config(main_block(), upstream_block("bad", [bport], retries=0),
                               server_block([port], [{"path": "/", "upstream": "bad"}])))
        t0 = time.monotonic()
        data = raw_request(port, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n", timeout=10)
        elapsed = time.monotonic() - t0
        assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
        assert not data.endswith(b"0\r\n\r\n"), data  # no terminating chunk: visibly truncated
        assert elapsed < 2.0, "the client waited %.1f s for the broken response to end" % elapsed
        assert "Invalid character in chunk size" in t.log()
    finally:
        stop.set()
        th.join(timeout=5)
        srv.close()
