"""Upstreams that break (docs/reliability.md, "Upstream faults"): each fault gets its answer
(502/504 before a head, or a truncated response and a closed connection after it), a normal
request right after it is served, and no upstream connection is leaked: torii's sockets to
each backend return to what its keep-alive pool may hold.

What test_bad_input.py asserts already is not repeated here (refused connect, garbage and
reset instead of a response: 502; a silent upstream: 504 after read_timeout), nor
test_http1_proxy.py's reset/close after 10 of 100 body bytes (reset vs truncation)."""

import socket
import time
import types

import pytest

import harness
from harness import RawConn, config, main_block, request, server_block, upstream_block

READ_TIMEOUT_S = 0.5
CONNECT_TIMEOUT_S = 0.5
KEEPALIVE = 4


def tcp_sockets_to(port):
    """torii's side of the TCP connections to a backend port that are not closed yet
    (ESTABLISHED or CLOSE_WAIT: a CLOSE_WAIT one is a socket torii never closed)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote, state = parts[2], parts[3]
            if int(remote.rsplit(":", 1)[1], 16) == port and state in ("01", "08"):
                n += 1
    return n


class Unaccepting:
    """A listener whose accept queue is full and never drained: a connect to it is never
    completed (the SYN is dropped), which is how a stuck or overloaded host looks."""

    def __init__(self):
        self.port = harness.free_port()
        self.sock = socket.socket()
        self.sock.bind((harness.HOST, self.port))
        self.sock.listen(0)
        self.fillers = []
        for _ in range(2):  # backlog 0 holds one; the next connects complete in the queue
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((harness.HOST, self.port))
            self.fillers.append(s)
        time.sleep(0.05)

    def close(self):
        for s in self.fillers + [self.sock]:
            s.close()


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    live = p.backend("live")
    reset = p.backend("reset", mode="reset")
    stuck = Unaccepting()
    port = harness.free_port()
    ups = dict(keepalive=KEEPALIVE, connect_timeout="%dms" % (CONNECT_TIMEOUT_S * 1000),
               read_timeout="%dms" % (READ_TIMEOUT_S * 1000), retries=1)
    t = p.torii(config(
        main_block(),
        upstream_block("live", [live.port], **ups),
        upstream_block("reset", [reset.port], **ups),
        upstream_block("stuck", [stuck.port], **ups),
        server_block([port], [
            {"path": "/live/", "upstream": "live"},
            {"path": "/reset/", "upstream": "reset"},
            {"path": "/stuck/", "upstream": "stuck"},
        ], client_max_body_size="4m"),
    ))
    harness.wait_until(lambda: len(t.pids()) >= 2, 5.0)
    worker = [pid for pid in t.pids() if pid != t.pid][0]
    assert request(port, "GET", "/live/warm").status == 200
    yield types.SimpleNamespace(port=port, torii=t, live=live, reset=reset, stuck=stuck,
                                worker=worker, fds=harness.open_fds(worker))
    stuck.close()


def recovered(gw):
    """A normal request is served, and torii holds no more sockets to the backends than the
    pool may keep."""
    r = request(gw.port, "GET", "/live/after")
    assert r.status == 200 and r.json()["path"] == "/live/after", r
    ok = harness.wait_until(lambda: tcp_sockets_to(gw.live.port) <= KEEPALIVE and
                            tcp_sockets_to(gw.reset.port) == 0, 2.0)
    assert ok, "upstream sockets left: live %d, reset %d" % (
        tcp_sockets_to(gw.live.port), tcp_sockets_to(gw.reset.port))


def test_reset_while_the_request_body_goes_out_is_502_not_retried(gw):
    t0 = time.monotonic()
    r = request(gw.port, "POST", "/reset/upload", body=b"x" * (1024 * 1024), timeout=10)
    assert r.status == 502
    assert time.monotonic() - t0 < 2.0
    recovered(gw)


def test_reset_in_the_middle_of_the_body_cuts_the_response(gw):
    with RawConn(gw.port, timeout=5) as c:
        c.send(b"GET /live/resetbody HTTP/1.1\r\nHost: h\r\n\r\n")
        closed, data, elapsed = c.wait_closed(3.0)
    assert closed and elapsed < 1.0
    assert data.startswith(b"HTTP/1.1 200") and b"Content-Length: 100" in data, data
    assert data.endswith(b"0123456789"), data  # 10 of 100 bytes: visibly short
    recovered(gw)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_response_without_length_is_forwarded_until_close(gw, version):
    # The upstream's body ends with its connection, which says nothing about whether it is
    # complete: torii passes it on the same way (no length, no chunked, then a close)
    # rather than sealing it with a length or a last chunk it cannot vouch for.
    n = 300_000
    with RawConn(gw.port, timeout=5) as c:
        c.send(b"GET /live/nolength?n=%d %s\r\nHost: h\r\n\r\n" % (n, version.encode()))
        r = c.read_response()
        closed, rest, _ = c.wait_closed(1.0)
    assert r.status == 200
    assert r.header("content-length") is None and r.header("transfer-encoding") is None, r
    assert r.header("connection") == "close"
    assert r.body_len == n and r.body == b"".join(harness.pattern_chunks(n))
    assert closed and rest == b""
    recovered(gw)


def test_slow_trickle_within_read_timeout_is_served_whole(gw):
    # read_timeout bounds each wait for the upstream, not the whole response: a byte every
    # 200 ms (read_timeout 500 ms) takes 1.2 s in all and is passed on complete.
    t0 = time.monotonic()
    r = request(gw.port, "GET", "/live/trickle?n=6&ms=200", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.body == b"".join(harness.pattern_chunks(6))
    assert elapsed > 1.1, elapsed
    recovered(gw)


def test_trickle_pausing_past_read_timeout_is_cut(gw):
    # The head is out at once; the first byte would come after 900 ms: torii gives up after
    # read_timeout and closes the client connection (a truncated response).
    with RawConn(gw.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"GET /live/trickle?n=3&ms=900 HTTP/1.1\r\nHost: h\r\n\r\n")
        closed, data, _ = c.wait_closed(3.0)
        elapsed = time.monotonic() - t0
    assert closed
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n"), data
    assert READ_TIMEOUT_S - 0.1 <= elapsed <= READ_TIMEOUT_S + 1.0, elapsed
    recovered(gw)


def test_connect_that_never_completes_is_504_after_connect_timeout(gw):
    # retries = 1, one target: no other target to try, so one connect_timeout, then 504.
    t0 = time.monotonic()
    r = request(gw.port, "GET", "/stuck/x", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 504
    assert CONNECT_TIMEOUT_S - 0.1 <= elapsed <= CONNECT_TIMEOUT_S + 1.0, elapsed
    recovered(gw)


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_idle_pooled_connection_closed_by_the_upstream_is_dropped(gw, rst):
    # The upstream closes a keep-alive connection 100 ms after its answer, while it idles in
    # torii's pool: torii notices (a readable idle socket) and drops it, so the next request
    # goes out on a fresh connection and is answered.
    q = "?ms=100" + ("&rst=1" if rst else "")
    first = request(gw.port, "GET", "/live/closeidle" + q)
    assert first.status == 200
    time.sleep(0.3)
    log_before = gw.torii.log()
    r = request(gw.port, "GET", "/live/next")
    assert r.status == 200 and r.json()["conn_id"] != first.json()["conn_id"]
    assert gw.torii.log()[len(log_before):].count("[warn]") == 0, "the dead connection was used"
    recovered(gw)


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_pooled_connection_closing_on_the_next_request_retries_a_get(gw, rst):
    # The race a pool cannot see: the upstream closes just as torii reuses the connection.
    # A GET (idempotent, no body sent) is sent again on a fresh connection and answered.
    first = request(gw.port, "GET", "/live/dropnext" + ("?rst=1" if rst else ""))
    assert first.status == 200
    log_before = gw.torii.log()
    r = request(gw.port, "GET", "/live/retried")
    assert r.status == 200 and r.json()["path"] == "/live/retried"
    assert r.json()["conn_id"] != first.json()["conn_id"]
    # the pooled connection was tried first (last in, first out) and failed
    assert "upstream closed the connection before responding" in \
        gw.torii.log()[len(log_before):] or "reset" in gw.torii.log()[len(log_before):]
    recovered(gw)


def test_pooled_connection_closing_on_a_post_is_502_not_resent(gw):
    # A POST whose body went out may have been acted on: like nginx, torii does not send it
    # again (non-idempotent), it answers 502.
    first = request(gw.port, "GET", "/live/dropnext")
    assert first.status == 200
    r = request(gw.port, "POST", "/live/once", body=b"payload")
    assert r.status == 502
    # the backend never answered that POST, and no second copy reached it
    r = request(gw.port, "POST", "/live/twice", body=b"payload")
    assert r.status == 200 and r.json()["path"] == "/live/twice"
    recovered(gw)


def test_no_fd_leaked_and_worker_unharmed(gw):
    assert gw.torii.alive()
    ok = harness.wait_until(lambda: harness.open_fds(gw.worker) <= gw.fds + KEEPALIVE, 3.0)
    assert ok, "worker fds %d, %d after warm-up" % (harness.open_fds(gw.worker), gw.fds)
