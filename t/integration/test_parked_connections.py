"""Parked idle connections (docs/performance.md, "Parked idle connections"; issue #16): a plain
HTTP/1.1 keep-alive connection idle for 100 ms is reduced to a small record until its next
byte, and /status counts it under connections.parked. A parked connection

  - serves its next request, and its request count survives parking (keepalive_requests = 3:
    the third response, after two parkings, says Connection: close); a new connection is
    parked too when it has sent nothing for 1 s, and served when it does;
  - is closed with a FIN at keepalive_timeout, counted from its last response;
  - is closed with a FIN, well before shutdown_timeout, when its worker drains on a reload
    (SIGHUP) and on a graceful stop (SIGQUIT), which then exits.

One torii, one worker (master_process on: reload and quit are the master's); every wait is
bounded and the process is stopped by PID (conftest).
"""

import os
import signal
import socket
import time

import pytest

import harness
from harness import RawConn, config, main_block, request, server_block

REQUEST = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
KEEPALIVE_S = 1.0


@pytest.fixture
def gw(procs):
    port, admin = harness.free_port(), harness.free_port()
    t = procs.torii(config(
        main_block(admin_port=admin, workers=1, shutdown_timeout="20s"),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                     keepalive_timeout="1s", keepalive_requests=3),
    ))
    assert harness.wait_until(lambda: len(harness.children(t.pid)) == 1, 10.0)
    t.port, t.admin = port, admin
    return t


def connections(t):
    """The worker's /status connection counts (the /status request's own included)."""
    r = request(t.admin, "GET", "/status", headers={"Connection": "close"})
    assert r.status == 200, r
    return r.json()["connections"]


def wait_parked(t, n):
    seen = []

    def parked():
        seen[:] = [connections(t)]
        return seen[0]["parked"] == n

    assert harness.wait_until(parked, 5.0, interval=0.05), "parked connections: %r" % seen


def served(c, close=False):
    c.send(REQUEST)
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    assert ((r.header("Connection") or "").lower() == "close") == close, r


def wait_fin(c, timeout):
    """Seconds until the peer closed with a FIN; fails on a reset, data or no close."""
    start = time.monotonic()
    c.sock.settimeout(timeout)
    try:
        data = c.sock.recv(4096)
    except ConnectionResetError:
        pytest.fail("reset (RST) instead of a FIN")
    except socket.timeout:
        pytest.fail("still open after %.1f s" % timeout)
    assert data == b"", "bytes instead of a close: %r" % data[:200]
    return time.monotonic() - start


def test_parked_connection_serves_its_next_requests(gw):
    with RawConn(gw.port) as c:
        wait_parked(gw, 1)  # parked before its first request (after 1 s)
        served(c)
        wait_parked(gw, 1)  # and again once idle after it (100 ms)
        served(c)
        wait_parked(gw, 1)
        served(c, close=True)  # the third request: keepalive_requests, counted across parkings
        wait_fin(c, 5.0)
    now = []

    def gone():
        now[:] = [connections(gw)]
        return now[0]["parked"] == 0 and now[0]["active"] == 1  # the /status request's own

    assert harness.wait_until(gone, 5.0, interval=0.05), now


def test_parked_connection_closed_at_keepalive_timeout(gw):
    with RawConn(gw.port) as c:
        served(c)
        answered = time.monotonic()
        wait_parked(gw, 1)
        wait_fin(c, 5.0)
        after = time.monotonic() - answered
    assert KEEPALIVE_S - 0.1 <= after <= KEEPALIVE_S + 1.0, after
    assert connections(gw)["parked"] == 0


def test_parked_connections_closed_on_reload_and_quit(gw):
    old = harness.children(gw.pid)
    with RawConn(gw.port) as c:
        served(c)
        wait_parked(gw, 1)
        os.kill(gw.pid, signal.SIGHUP)
        took = wait_fin(c, 8.0)
    assert took < 5.0, took
    assert harness.wait_until(lambda: not set(old) & set(harness.children(gw.pid)), 5.0), (
        "the old worker is still draining: %r" % harness.children(gw.pid))
    with RawConn(gw.port) as c:  # the new generation's worker
        served(c)
        wait_parked(gw, 1)
        os.kill(gw.pid, signal.SIGQUIT)
        took = wait_fin(c, 8.0)
    assert took < 5.0, took
    gw.proc.wait(timeout=5.0)  # and torii exits, long before shutdown_timeout (20 s)
