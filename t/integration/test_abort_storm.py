"""Clients that send a whole request and go away at once (reset or FIN) while torii is still
connecting to the upstream, or sending the request, or relaying the answer. Each deferred
event of the proxy (connect completion, timeouts, drain notices) must find a live owner or
none: no worker dies, the sanitizer build reports nothing (conftest checks its stderr)."""

import socket
import struct
import time

import pytest

import harness
from harness import config, main_block, request, server_block, upstream_block

CLIENTS = 2000
BATCH = 100


def storm(port, clients, path):
    """`clients` connections in batches: each sends a complete request and closes at once,
    even ones with RST (SO_LINGER 0), odd ones with FIN. Returns the count sent."""
    wire = ("GET %s HTTP/1.1\r\nHost: storm\r\n\r\n" % path).encode()
    sent = 0
    deadline = time.monotonic() + 60
    while sent < clients and time.monotonic() < deadline:
        batch = []
        for _ in range(min(BATCH, clients - sent)):
            try:
                s = socket.create_connection((harness.HOST, port), timeout=2)
            except OSError:
                continue
            try:
                s.sendall(wire)
            except OSError:
                s.close()
                continue
            batch.append(s)
        for i, s in enumerate(batch):
            if (sent + i) % 2 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            s.close()
        sent += len(batch)
    return sent


@pytest.mark.parametrize("workers", [1, 2])
def test_abort_storm_kills_no_worker(procs, workers):
    live = procs.backend("live")
    slow = procs.backend("slow")
    port = harness.free_port()
    t = procs.torii(config(
        main_block(workers=workers),
        upstream_block("api", [live.port], keepalive=8, connect_timeout="1s",
                       read_timeout="5s", retries=1),
        # The slow one answers after 50 ms: clients are long gone by then.
        upstream_block("slow", [slow.port], keepalive=8, read_timeout="5s"),
        server_block([port], [
            {"path": "/api/", "upstream": "api"},
            {"path": "/slow/", "upstream": "slow"},
        ]),
    ))
    assert harness.wait_until(lambda: len(t.pids()) >= workers + 1, 5.0)
    before = sorted(t.pids())

    sent = storm(port, CLIENTS // 2, "/api/echo")
    sent += storm(port, CLIENTS // 2, "/slow/slow?ms=50")
    assert sent >= CLIENTS * 0.95, "only %d of %d clients could connect" % (sent, CLIENTS)

    # Every worker that started is still the one serving: none died and was replaced.
    time.sleep(0.5)
    assert sorted(t.pids()) == before, "a worker died:\n" + t.log()[-3000:]
    for _ in range(10):
        r = request(port, "GET", "/api/echo", timeout=5)
        assert r.status == 200
