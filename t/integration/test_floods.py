"""Floods and the memory one connection may cost (docs/reliability.md, "Slow peers and floods").

  - 10,000 idle client connections held at once by one torii (2 workers, worker_connections
    5000), then every one sends a request and is answered; the RSS each idle connection costs
    is measured and capped, and no worker holds more than worker_connections;
  - header-count limits: 257 fields get 431 on HTTP/1.1 and on HTTP/2 (256 pass), a header
    list over client_max_header_size gets 431 on HTTP/2, and an HPACK "trailer bomb" (one
    byte on the wire per 4 KiB field from the dynamic table) resets its stream without the
    worker growing;
  - memory caps per connection: 200 clients each holding a 30 KiB request head (just under
    client_max_header_size) cost at most a few head buffers each and are closed at
    client_header_timeout; a client pipelining requests without reading any answer is
    stopped by back-pressure (torii stops reading) instead of being buffered;
  - fd exhaustion with HTTP/2 and tunnels: RLIMIT_NOFILE 256 and 4 HTTP/2 connections of 100
    streams each to a slow backend (400 upstream connections wanted, ~190 fds free); 150
    TCP stream sessions against a worker that may hold 96.

Every count, wait and client is bounded; every process is stopped by PID (conftest).
"""

import os
import re
import resource
import select
import socket
import subprocess
import time
import types

import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame

import harness
from h2_raw import INITIAL_WINDOW_SIZE, H2Raw, block, get
from harness import (Clients, HOST, RawConn, config, cpu_seconds, main_block, request,
                     server_block, upstream_block)

ASAN = harness.sanitizer_build()
# Under ASan freed blocks stay resident in its quarantine (256 MiB by default), so a worker's
# RSS there grows with what it allocated and freed, not with what it holds: the RSS caps of
# tests that make a worker churn through memory are checked in the release build only.
RSS_CAPS = not ASAN


def workers_of(t, n):
    assert harness.wait_until(lambda: len(harness.children(t.pid)) == n, 10.0)
    return [p for p, _ in harness.children(t.pid)]


def rss_kib(pids):
    return sum(harness.vm_rss_kib(p) or 0 for p in pids)


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to `want` (within the hard limit); skips the
    test when the hard limit is lower. Returns the limits to restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d: this test holds that many sockets"
                    % (hard, want))
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return soft, hard


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    b = p.backend("b")
    port = harness.free_port()
    t = p.torii(config(
        main_block(workers=1, log_level="info"),
        upstream_block("b", [b.port], keepalive=16),
        server_block([port], [{"path": "/api/", "upstream": "b"},
                              {"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                     client_header_timeout="2s", client_body_timeout="5s",
                     keepalive_requests=1000000),
    ))
    return types.SimpleNamespace(port=port, torii=t, worker=workers_of(t, 1)[0])


# ---------------------------------------------------------------------------------------------
# 10,000 connections

N = 10000
# RSS (KiB) one idle accepted connection may cost a worker. Measured: see docs/reliability.md.
KIB_PER_IDLE_CONNECTION = 48 if ASAN else 16
WAVE = 250  # connects in flight at once: under the listen backlog of 511


def test_10000_idle_connections_then_every_one_served(procs):
    saved = raise_nofile(N + 1000)
    clients = None
    try:
        port = harness.free_port()
        t = procs.torii(config(
            main_block(workers=2, worker_connections=5000),
            server_block([port], [{"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                         client_header_timeout="120s"),
        ))
        workers = workers_of(t, 2)
        for _ in range(20):  # warm both workers' pools
            assert request(port, "GET", "/").status == 200

        def fds():
            return {w: harness.open_fds(w) for w in workers}

        # the baseline once the warm-up connections are closed on torii's side too
        seen = [None]

        def settled():
            now, seen[0] = seen[0], fds()
            return now == seen[0]

        harness.wait_until(settled, 5.0, interval=0.2)
        fds0 = seen[0]
        rss0 = rss_kib(workers)
        t0 = time.monotonic()
        clients = Clients(port, "/", 0, hold=True)
        last = [0.0, 0]

        def held():  # connections the workers accepted (their fds past the idle count)
            if time.monotonic() - last[0] > 0.05:
                last[0] = time.monotonic()
                last[1] = sum(harness.open_fds(w) - fds0[w] for w in workers)
            return last[1]

        # Waves of WAVE connects, each accepted before the next: one burst of 10,000 would
        # overflow the accept queue (backlog 511), and the kernel's SYN cookies would leave
        # clients connected that the workers only see once they send (see Clients.add).
        # (a few fds of the workers' own may come and go meanwhile: a tolerance of 10)
        deadline = time.monotonic() + 60.0
        while clients.started < N and time.monotonic() < deadline:
            clients.add(min(WAVE, N - clients.started))
            want = clients.started
            clients.run(deadline - time.monotonic(),
                        until=lambda: len(clients.held) == want and held() >= want - 10)
        connected_in = time.monotonic() - t0
        per_worker = {w: harness.open_fds(w) - fds0[w] for w in workers}
        time.sleep(0.5)  # let the workers finish their accept batches
        grown = rss_kib(workers) - rss0
        per_conn = grown / float(N)
        print("%d connections held in %.1f s: per worker %r; worker RSS +%d KiB = %.1f KiB per "
              "idle connection" % (N, connected_in, sorted(per_worker.values()), grown,
                                   per_conn))
        assert len(clients.held) == N, clients.status and list(clients.status.items())[:5]
        assert sum(per_worker.values()) >= N - 10, per_worker
        # worker_connections: no worker holds more than 5000 clients.
        assert max(per_worker.values()) <= 5000, per_worker
        assert per_conn <= KIB_PER_IDLE_CONNECTION, per_conn

        t1 = time.monotonic()
        clients.go()
        clients.run(120.0)
        errors = sorted(set(str(v) for v in clients.status.values() if v != 200))
        print("then %d of %d answered 200 in %.1f s; other outcomes %r"
              % (clients.ok(), N, time.monotonic() - t1, errors[:5]))
        assert clients.ok() == N, errors[:5]
        assert t.alive() and harness.children(t.pid) == harness.children(t.pid)
        assert request(port, "GET", "/").status == 200
    finally:
        if clients:
            clients.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


# ---------------------------------------------------------------------------------------------
# Header counts and sizes

def http1_head(n_fields):
    """A request head with exactly n_fields fields (Host and Connection included)."""
    extra = "".join("X-F%d: v\r\n" % i for i in range(n_fields - 2))
    return ("GET / HTTP/1.1\r\nHost: h\r\n%sConnection: close\r\n\r\n" % extra).encode()


def test_http1_header_field_count_limit(gw):
    ok = harness.raw_request(gw.port, http1_head(256))
    assert harness.parse_response(ok).status == 200
    over = harness.raw_request(gw.port, http1_head(257))
    assert harness.parse_response(over).status == 431
    assert over.closed


def test_http2_header_field_count_limit(gw):
    c = H2Raw(gw.port)
    try:
        c.send(c.headers(1, get("/", extra=[("x-f%d" % i, "v") for i in range(256)])))
        assert c.response(1)[0] == 200
        c.send(c.headers(3, get("/", extra=[("x-f%d" % i, "v") for i in range(257)])))
        r = c.response(3)
        assert r is not None and r[0] == 431, c.frames[-5:]
        assert c.request(5) == 200  # the connection lives on
    finally:
        c.close()


def header_frames(sid, payload, end_stream=True, piece=16384):
    """HEADERS plus CONTINUATION frames carrying `payload` (a header block)."""
    parts = [payload[i:i + piece] for i in range(0, len(payload), piece)] or [b""]
    frames = [HeadersFrame(sid, parts[0], flags=(["END_STREAM"] if end_stream else []) +
                           (["END_HEADERS"] if len(parts) == 1 else []))]
    for i, p in enumerate(parts[1:], 1):
        frames.append(ContinuationFrame(sid, p, flags=["END_HEADERS"] if i == len(parts) - 1
                                        else []))
    return frames


def test_http2_header_list_over_client_max_header_size_gets_431(gw):
    c = H2Raw(gw.port)
    try:
        c.send(*header_frames(1, block(get("/", extra=[("x-big", "v" * 40000)]))))
        r = c.response(1)
        assert r is not None and r[0] == 431, c.frames[-5:]
        assert c.request(3) == 200
    finally:
        c.close()


def hpack_indexed_bomb(fields, value_len=4000):
    """One literal with incremental indexing (dynamic table entry 62: x-a, a value of
    value_len bytes), then `fields` one-byte references to it: each byte decodes to the
    whole field."""
    entry = b"\x40" + bytes([3]) + b"x-a" + b"\x7f" + bytes(_hpack_int_tail(value_len - 127)) + \
        b"A" * value_len
    return entry + b"\xbe" * fields


def _hpack_int_tail(value):
    out = []
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return out


def test_http2_trailer_bomb_resets_the_stream_and_memory_stays_flat(gw):
    """1 + 8 frames of 16 KiB (the CONTINUATION limit) of one-byte references to a 4 KB
    field: ~147,000 trailer fields, ~590 MB once decoded."""
    rss0 = harness.vm_rss_kib(gw.worker)
    c = H2Raw(gw.port, timeout=20)
    try:
        c.send(c.headers(1, get("/api/echo", method="POST"), end_stream=False))
        c.send(DataFrame(1, b"x"))
        c.send(*header_frames(1, hpack_indexed_bomb(9 * 16384 - 4100)))
        f = c.rst(1, timeout=15)
        grown = harness.vm_rss_kib(gw.worker) - rss0
        print("trailer bomb: stream reset %s; worker RSS %+d KiB" % (f is not None, grown))
        assert f is not None, c.frames[-5:]
        assert c.request(3) == 200
    finally:
        c.close()
    assert grown < (64 if ASAN else 16) * 1024, grown  # before: +1 GiB


# ---------------------------------------------------------------------------------------------
# Memory per connection

def test_slow_30k_heads_cost_bounded_memory_and_time_out(gw):
    n = 200
    line = "X-Pad: %s\r\n" % ("p" * 290)  # 300 bytes
    head = ("GET / HTTP/1.1\r\nHost: h\r\n" + line * 100).encode()  # ~30 KB, 102 fields
    rss0 = harness.vm_rss_kib(gw.worker)
    conns = []
    try:
        for _ in range(n):
            c = RawConn(gw.port, timeout=10)
            c.send(head)
            conns.append(c)
        time.sleep(0.5)
        grown = harness.vm_rss_kib(gw.worker) - rss0
        print("%d clients each holding a %d-byte head: worker RSS +%d KiB (%.1f KiB each)"
              % (n, len(head), grown, grown / float(n)))
        # The head (<= client_max_header_size, 32 KiB) plus the connection: a few head-sized
        # buffers at most, never the whole input again and again.
        if RSS_CAPS:
            assert grown / float(n) <= 96, grown
        # One more byte per second does not extend client_header_timeout (2 s).
        t0 = time.monotonic()
        closed = 0
        for c in conns:
            try:
                c.send(b"X")
            except OSError:
                pass
        for c in conns:
            ok, data, _ = c.wait_closed(max(0.1, t0 + 4.0 - time.monotonic()))
            closed += ok
        print("%d of %d closed by client_header_timeout within %.1f s"
              % (closed, n, time.monotonic() - t0))
        assert closed == n
    finally:
        for c in conns:
            c.close()
    assert request(gw.port, "GET", "/").status == 200


def test_pipelining_without_reading_is_stopped_by_back_pressure(gw):
    """The client writes pipelined GETs for 2 s and never reads: torii must stop reading
    once its answers back up, so what it accepted stays near the socket buffers' size."""
    one = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    batch = one * 2048  # 54 KiB
    rss0 = harness.vm_rss_kib(gw.worker)
    cpu0 = cpu_seconds([gw.worker])
    s = socket.create_connection((HOST, gw.port), timeout=5)
    sent = 0
    try:
        s.setblocking(False)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                sent += s.send(batch)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pytest.fail("torii closed the connection after %d bytes" % sent)
        grown = harness.vm_rss_kib(gw.worker) - rss0
        cpu = cpu_seconds([gw.worker]) - cpu0
        print("pipelining without reading: %d KiB sent (%d requests) in 2 s before the "
              "client blocked; worker RSS %+d KiB, CPU %.2f s"
              % (sent // 1024, sent // len(one), grown, cpu))
        assert sent < 64 * 1024 * 1024, sent
        if RSS_CAPS:
            assert grown < 16 * 1024, grown
    finally:
        s.close()
    assert request(gw.port, "GET", "/").status == 200


def test_http2_streams_not_read_hold_a_bounded_budget(gw):
    """100 streams asking 1 MiB each on a connection whose client advertises a window of 0
    and never reads: the answers queued for it stay near the connection's budget (2 MiB)
    instead of 100 x the per-stream high-water mark (256 KiB)."""
    rss0 = harness.vm_rss_kib(gw.worker)
    c = H2Raw(gw.port, settings={INITIAL_WINDOW_SIZE: 0}, auto_window=False, timeout=10)
    try:
        for i in range(100):
            c.send(c.headers(1 + 2 * i, get("/api/bytes?n=1048576")))
        c.wait(lambda f: False, 2.0)  # the upstreams answer; the client reads nothing
        grown = harness.vm_rss_kib(gw.worker) - rss0
        print("HTTP/2, 100 unread streams of 1 MiB on one connection: worker RSS %+d KiB"
              % grown)
        if RSS_CAPS:
            assert grown < 12 * 1024, grown
    finally:
        c.close()
    assert request(gw.port, "GET", "/").status == 200


# ---------------------------------------------------------------------------------------------
# fd exhaustion with HTTP/2 and tunnels

LOW_NOFILE = 256


def low_fd_gateway(procs, *blocks):
    return procs.torii(config(main_block(workers=1, log_level="info"), *blocks),
                       rlimits={resource.RLIMIT_NOFILE: (LOW_NOFILE, LOW_NOFILE)})


@pytest.mark.skipif(ASAN, reason="the worker runs out of fds on purpose, and UBSan's vptr check "
                    "then reports a false 'invalid vptr' (its memory probe needs a pipe), "
                    "which ends the worker: release build only")
def test_http2_streams_with_256_fds(procs):
    """400 streams need 400 upstream connections; the worker has ~190 fds for them. The
    streams whose upstream connect fails for want of an fd get 502 at once (logged); none
    hangs, nothing spins, and the worker serves on."""
    b = procs.backend("slow")
    port = harness.free_port()
    t = low_fd_gateway(
        procs,
        upstream_block("b", [b.port], keepalive=16, connect_timeout="2s", read_timeout="20s"),
        server_block([port], [{"path": "/api/", "upstream": "b"}],
                     http2_max_concurrent_streams=100))
    worker = workers_of(t, 1)[0]
    log0 = os.path.getsize(t.stderr_path)
    cpu0 = cpu_seconds([worker])
    t0 = time.monotonic()
    cp = subprocess.run(["h2load", "-n", "400", "-c", "4", "-m", "100", "-T", "30",
                         "http://%s:%d/api/slow?ms=1000" % (HOST, port)],
                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    cpu = cpu_seconds([worker]) - cpu0
    logged = os.path.getsize(t.stderr_path) - log0
    summary = [l for l in cp.stdout.splitlines() if l.startswith(("requests:", "status codes:"))]
    print("HTTP/2, nofile %d, 4 connections x 100 streams to a 1 s backend: %s in %.1f s; "
          "worker CPU %.2f s; log +%d bytes" % (LOW_NOFILE, "; ".join(summary), wall, cpu,
                                                logged))
    m = re.search(r"requests: 400 total, 400 started, 400 done, (\d+) succeeded, (\d+) failed, "
                  r"0 errored, 0 timeout", cp.stdout)
    assert m, cp.stdout[-2000:]
    codes = re.search(r"status codes: (\d+) 2xx, 0 3xx, 0 4xx, (\d+) 5xx", cp.stdout)
    assert codes and int(codes.group(1)) + int(codes.group(2)) == 400, cp.stdout[-2000:]
    assert int(codes.group(1)) >= 96  # at least what the fd budget promises
    assert cpu < 0.5 * wall, (cpu, wall)
    assert logged < 100 * 1024
    assert harness.children(t.pid)[0][0] == worker
    assert request(port, "GET", "/api/echo").status == 200


def test_tcp_sessions_beyond_the_fd_limit_wait_their_turn(procs):
    echo = procs.backend("echo", mode="echo", script="tcp_echo_backend.py")
    port = harness.free_port()
    t = low_fd_gateway(procs,
                       upstream_block("echo", [echo.port], protocol="tcp"),
                       server_block([port], [], protocol="tcp", upstream="echo"))
    worker = workers_of(t, 1)[0]
    log0 = os.path.getsize(t.stderr_path)
    cpu0 = cpu_seconds([worker])
    sessions = []
    try:
        for i in range(150):
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(b"ping %03d\n" % i)
            sessions.append(s)

        def answered(s, i, timeout):
            s.settimeout(timeout)
            try:
                return s.recv(64) == b"ping %03d\n" % i
            except OSError:
                return False

        time.sleep(1.0)  # the worker takes and echoes what it can hold
        ready = set(select.select(sessions, [], [], 0)[0])
        first = [i for i, s in enumerate(sessions) if s in ready and answered(s, i, 1.0)]
        print("150 TCP sessions against nofile %d: %d echoed at once" % (LOW_NOFILE,
                                                                       len(first)))
        # The worker holds (256 - 64) / 2 = 96 clients; the others wait in the listen queue.
        assert len(first) == 96, first
        for i in first[:60]:
            sessions[i].close()
        rest = [i for i in range(150) if i not in first]
        harness.wait_until(lambda: len(select.select([sessions[i] for i in rest], [], [], 0)[0])
                           == len(rest), 5.0)
        late = [i for i in rest if answered(sessions[i], i, 1.0)]
        cpu = cpu_seconds([worker]) - cpu0
        logged = os.path.getsize(t.stderr_path) - log0
        print("after 60 closed: %d of %d waiting sessions echoed; worker CPU %.2f s; log +%d "
              "bytes" % (len(late), len(rest), cpu, logged))
        # Every waiting session is served, or (rarely, see docs/reliability.md "Slow peers and
        # floods", not covered) closed at once when its upstream connect meets EMFILE just
        # as the closed ones free their fds; none is left hanging.
        assert len(late) >= len(rest) - 3, (late, rest)
        assert len(select.select([sessions[i] for i in rest], [], [], 0)[0]) == len(rest) - len(late)
        assert cpu < 1.0
        assert logged < 20 * 1024
    finally:
        for s in sessions:
            s.close()
    assert harness.children(t.pid)[0][0] == worker
