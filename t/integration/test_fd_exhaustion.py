"""File-descriptor exhaustion does not make a worker spin or flood its log, and clients are
still served (docs/reliability.md, "File-descriptor exhaustion"; [main] worker_connections).

Two attacks:
  - torii started with RLIMIT_NOFILE 256:256 and 400 clients each asking a slow backend
    (2 s): a worker holds only the clients whose upstream connections also fit in its fds
    (worker_connections capped by the limit), leaves the rest in the listen queue, and
    serves them all as the first ones finish;
  - a worker whose fd limit is cut below what it holds (prlimit on the running worker) and
    400 idle connections: accept fails with EMFILE, the worker pauses accepting (instead of
    retrying at once in a loop), logs the refusals once per interval with a count, and
    serves every client once fds free up.

Measured: the CPU time of torii's processes (/proc/PID/stat utime + stime) over the
flood, the size of its log, and how many of the 400 requests were answered 200.
Every wait is bounded; every process is stopped by PID (conftest).
"""

import errno
import os
import re
import resource
import selectors
import socket
import time

import pytest

import harness
from harness import HOST, config, main_block, request, server_block, upstream_block

CLIENTS = 400
LOW_NOFILE = 256


@pytest.fixture(scope="module", autouse=True)
def enough_fds_for_the_clients():
    """This test process holds 400 sockets (plus the backend's own process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * CLIENTS
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * CLIENTS + 64:
        pytest.skip("this process may not open %d sockets" % CLIENTS)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pids):
    """utime + stime of the live processes among pids, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(rest[11]) + int(rest[12])  # fields 14 and 15: utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def log_size(t):
    try:
        return os.path.getsize(t.stderr_path)
    except OSError:
        return 0


class Clients:
    """CLIENTS non-blocking connections driven by one selector: each connects, optionally
    waits for go(), sends one `Connection: close` request and reads the answer to EOF."""

    def __init__(self, port, path, n=CLIENTS, hold=False):
        self.sel = selectors.DefaultSelector()
        self.request = ("GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
                        % path).encode()
        self.status = {}  # client index -> HTTP status, or an error string
        self.hold = hold
        self.held = []
        self.open = 0
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((HOST, port))
            if rc not in (0, errno.EINPROGRESS):
                self.status[i] = "connect: %s" % os.strerror(rc)
                s.close()
                continue
            self.open += 1
            self.sel.register(s, selectors.EVENT_WRITE, [i, bytearray()])

    def _finish(self, s, i, value):
        self.sel.unregister(s)
        s.close()
        self.open -= 1
        self.status[i] = value

    def _send(self, s, state):
        try:
            s.sendall(self.request)  # small: fits the socket buffer at once
        except OSError as e:
            self._finish(s, state[0], "send: %s" % e)
            return
        self.sel.modify(s, selectors.EVENT_READ, state)

    def run(self, seconds):
        """Drives the connections for up to `seconds`, or until every one finished."""
        deadline = time.monotonic() + seconds
        while self.open and time.monotonic() < deadline:
            for key, ev in self.sel.select(timeout=0.1):
                s, state = key.fileobj, key.data
                i, buf = state
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._finish(s, i, "connect: %s" % os.strerror(err))
                    elif self.hold:
                        self.sel.modify(s, selectors.EVENT_READ, state)
                        self.held.append((s, state))
                    else:
                        self._send(s, state)
                    continue
                try:
                    data = s.recv(65536)
                except OSError as e:
                    data, err = None, e
                if data:
                    buf += data
                    continue
                if buf.startswith(b"HTTP/1.1 "):
                    self._finish(s, i, int(buf[9:12]))
                else:
                    self._finish(s, i, "closed after %d bytes: %r" % (
                        len(buf), bytes(buf[:60])) if data is not None else "recv: %s" % err)

    def connected(self, seconds):
        """Waits until every connect completed (in the kernel's queue or accepted)."""
        self.run(seconds)
        return len(self.held)

    def go(self):
        """Held connections send their request now."""
        self.hold = False
        for s, state in self.held:
            if state[0] not in self.status:
                self._send(s, state)
        self.held = []

    def ok(self):
        return sum(1 for v in self.status.values() if v == 200)

    def close(self):
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def gateway(procs, backend, workers, rlimits=None, **main):
    port = harness.free_port()
    text = config(
        main_block(workers=workers, log_level="info", **main),
        upstream_block("api", [backend.port], keepalive=16, connect_timeout="2s",
                       read_timeout="20s"),
        server_block([port], [{"path": "/api/", "upstream": "api"},
                              {"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                     client_header_timeout="30s", keepalive_timeout="30s"),
    )
    t = procs.torii(text, rlimits=rlimits)
    assert harness.wait_until(lambda: len(harness.children(t.pid)) == workers, 5.0)
    return t, port


@pytest.mark.parametrize("workers", [1, 2])
def test_400_clients_with_256_fds_are_all_served(procs, workers):
    backend = procs.backend("slow")
    t, port = gateway(procs, backend, workers,
                      rlimits={resource.RLIMIT_NOFILE: (LOW_NOFILE, LOW_NOFILE)})
    assert request(port, "GET", "/api/echo").status == 200
    pids = t.pids()
    cpu0, log0, t0 = cpu_seconds(pids), log_size(t), time.monotonic()
    clients = Clients(port, "/api/slow?ms=2000")
    try:
        clients.run(40.0)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pids) - cpu0
        logged = log_size(t) - log0
        errors = sorted(set(str(v) for v in clients.status.values() if v != 200))
        print("workers=%d, nofile %d, %d clients x 2 s backend: %d answered 200 in %.1f s; "
              "torii CPU %.2f s (%.0f%% of wall); log +%d bytes; other outcomes %r"
              % (workers, LOW_NOFILE, CLIENTS, clients.ok(), wall, cpu, 100 * cpu / wall,
                 logged, errors[:5]))
    finally:
        clients.close()
    assert clients.ok() == CLIENTS, errors[:5]
    assert cpu < 0.2 * wall, (cpu, wall)
    assert logged < 100 * 1024, logged
    log = t.log()
    # The master said why a worker holds fewer than worker_connections clients, and the
    # workers that filled up said so (rate-limited).
    assert "worker_connections 1024 needs 2112 open files, the limit is %d" % LOW_NOFILE in log
    assert "worker_connections: this worker holds 96 client connections, its limit" in log
    assert "Too many open files" not in log  # the cap kept every accept within the fds
    assert request(port, "GET", "/api/echo").status == 200
    assert t.alive()


def test_emfile_pauses_accepting_instead_of_spinning(procs):
    backend = procs.backend("b")
    t, port = gateway(procs, backend, 1)
    worker = harness.children(t.pid)[0][0]
    assert request(port, "GET", "/").status == 200
    # Cut the running worker's fd limit below what 400 clients need: accept hits EMFILE.
    held_fds = harness.open_fds(worker)
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (held_fds + 50, held_fds + 50))
    pids = t.pids()
    cpu0, log0, t0 = cpu_seconds(pids), log_size(t), time.monotonic()
    clients = Clients(port, "/", hold=True)
    try:
        clients.connected(6.0)  # 400 connects complete; the worker can take only ~50
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pids) - cpu0
        logged = log_size(t) - log0
        worker_fds = harness.open_fds(worker)
        print("EMFILE: %d idle clients for %.1f s against a worker limited to %d fds (holding "
              "%s): torii CPU %.2f s (%.0f%% of wall), log +%d bytes"
              % (CLIENTS, wall, held_fds + 50, worker_fds, cpu, 100 * cpu / wall, logged))
        assert cpu < 0.2 * wall, (cpu, wall)
        assert logged < 100 * 1024, logged
        # Then every client asks; answered ones close, which frees fds for the queue.
        t1 = time.monotonic()
        clients.go()
        clients.run(30.0)
        served_in = time.monotonic() - t1
        errors = sorted(set(str(v) for v in clients.status.values() if v != 200))
        print("EMFILE: then %d of %d answered 200 in %.2f s; log +%d bytes in all; other "
              "outcomes %r" % (clients.ok(), CLIENTS, served_in, log_size(t) - log0,
                               errors[:5]))
    finally:
        clients.close()
    assert clients.ok() == CLIENTS, errors[:5]
    log = t.log()
    assert "accept: Too many open files; not accepting until a connection closes" in log, \
        log[-3000:]
    # Refusals after the first are counted into one line per 5 s.
    assert harness.wait_until(
        lambda: re.search(r"accept: Too many open files; \d+ times in the last 5 s", t.log()),
        3.0), t.log()[-3000:]
    assert log_size(t) - log0 < 100 * 1024
    assert request(port, "GET", "/").status == 200
    assert harness.children(t.pid)[0][0] == worker  # the same worker, never restarted
