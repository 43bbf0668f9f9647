"""A crashing worker is not an outage (SPEC section 3, last paragraph; docs/reliability.md,
"Worker crashes").

The test-only plugin t/plugins/crash kills its worker on a request carrying `X-Crash`
(abort(): SIGABRT; `segv`: SIGSEGV with the default disposition, so the sanitizer build dies
of the signal too instead of printing a report; `kill`: SIGKILL). With `at = "worker_init"`
every worker aborts as it starts.

What must hold:
  - the master replaces a dead worker at once: the next request is answered within 1 s,
    with 1 worker (no other process holds the port) as with 2;
  - 20 crashes in a row do not make the master back off: a probe after each is answered
    within 1 s;
  - under a flood of crashing requests (20 a second, the attack that once silenced torii
    for 20 s) probes keep being answered;
  - the master logs each crash at error level with the signal's name and number and the
    worker's last request line;
  - a worker that cannot start at all is restarted with a short, bounded back-off.

Every request and wait is bounded; every process is stopped by PID (conftest).
"""

import os
import re
import resource
import threading
import time

import pytest

import harness
from harness import RawConn, config, main_block, plugin_block, request, server_block

CRASH_SO = os.path.join(harness.test_plugin_dir(), "crash.so")
SIGNALS = {"abort": (6, "SIGABRT"), "segv": (11, "SIGSEGV"), "kill": (9, "SIGKILL")}
# No core files from the crashes (the outcome is still logged: "no core dump").
NO_CORE = {resource.RLIMIT_CORE: (0, 0)}


class Gw:
    def __init__(self, procs, workers, at="request"):
        self.port = harness.free_port()
        text = config(
            main_block(workers=workers, log_level="info"),
            plugin_block("crash", path=CRASH_SO),
            server_block([self.port],
                         [{"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                         plugins={"crash": {"at": at}}),
        )
        self.t = procs.torii(text, rlimits=NO_CORE)

    def workers(self):
        return sorted(p for p, _ in harness.children(self.t.pid))

    def wait_workers(self, n, timeout=5.0):
        assert harness.wait_until(lambda: len(self.workers()) == n, timeout), (
            "expected %d workers, master %d has %r" % (n, self.t.pid, self.workers()))

    def crash(self, path, how="abort"):
        """Sends a crashing request; returns once the connection closed, with no answer."""
        with RawConn(self.port, timeout=5.0) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: gw\r\nX-Crash: %s\r\n\r\n" % (path, how))
                   .encode())
            closed, data, _ = c.wait_closed(5.0)
        assert closed and data == b"", "a crashing request got %r (closed=%s)" % (data, closed)

    def probe(self, limit=5.0):
        """Seconds until GET / is answered 200, retrying on a fresh connection when one is
        lost with a dying worker; None if not within `limit`."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            left = limit - (time.monotonic() - start)
            try:
                r = request(self.port, "GET", "/", timeout=max(0.1, left))
                if r.status == 200:
                    return time.monotonic() - start
            except OSError:
                time.sleep(0.01)
        return None

    def crash_lines(self):
        return [l for l in self.t.log().splitlines() if "killed by signal" in l]


@pytest.mark.parametrize("workers,how", [(1, "abort"), (1, "segv"), (2, "abort"), (2, "kill")])
def test_crash_is_replaced_at_once_and_logged(procs, workers, how):
    g = Gw(procs, workers)
    g.wait_workers(workers)
    assert g.probe() is not None
    before = g.workers()
    path = "/crash/%s-%d?marker=%d" % (how, workers, os.getpid())
    g.crash(path, how)
    elapsed = g.probe(limit=3.0)
    print("workers=%d %s: next request answered %.3f s after the crash" % (workers, how,
                                                                             elapsed or -1))
    assert elapsed is not None and elapsed < 1.0, elapsed
    g.wait_workers(workers)
    assert g.workers() != before
    num, name = SIGNALS[how]
    want = re.compile(r"\[error\].*worker (\d+) killed by signal %d \(%s\), (core dumped|no "
                      r"core dump); its last request: \"GET %s\"; starting a new one$"
                      % (num, name, re.escape(path)))
    line = harness.wait_until(
        lambda: next((l for l in g.crash_lines() if want.search(l)), None), 3.0)
    assert line, "no crash report matching %r in:\n%s" % (want.pattern, g.t.log()[-3000:])
    assert int(want.search(line).group(1)) in before
    assert g.t.alive()


@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_crashes_in_a_row_no_backoff(procs, workers):
    g = Gw(procs, workers)
    g.wait_workers(workers)
    latencies = []
    for i in range(20):
        g.crash("/crash/%d" % i)
        latencies.append(g.probe(limit=3.0))
    print("workers=%d: probe after each of 20 crashes: max %.3f s, mean %.3f s" % (
        workers, max(x or 99 for x in latencies),
        sum(x or 99 for x in latencies) / len(latencies)))
    assert all(x is not None and x < 1.0 for x in latencies), latencies
    # Every crash was reported with its own request line, and none delayed the restart.
    lines = harness.wait_until(lambda: len(g.crash_lines()) >= 20 and g.crash_lines(), 3.0)
    assert lines, g.t.log()[-3000:]
    for i in range(20):
        assert any('its last request: "GET /crash/%d"' % i in l for l in lines), i
    assert not [l for l in lines if "starting a new one in" in l], lines
    g.wait_workers(workers)
    assert harness.zombie_children(g.t.pid) == []


def test_crash_flood_keeps_answering(procs):
    """20 crashing requests a second for 5 s against one worker, probes every 100 ms."""
    g = Gw(procs, 1)
    g.wait_workers(1)
    stop = threading.Event()
    crashes = [0]

    def flood():
        n = 0
        while not stop.is_set() and n < 200:
            n += 1
            try:
                with RawConn(g.port, timeout=2.0) as c:
                    c.send(b"GET /flood/%d HTTP/1.1\r\nHost: gw\r\nX-Crash: abort\r\n\r\n" % n)
            except OSError:
                pass
            crashes[0] = n
            stop.wait(0.05)

    th = threading.Thread(target=flood, daemon=True)
    th.start()
    answered, sent, gaps = 0, 0, []
    last_ok = start = time.monotonic()
    try:
        while time.monotonic() - start < 5.0:
            sent += 1
            t0 = time.monotonic()
            try:
                if request(g.port, "GET", "/", timeout=2.0).status == 200:
                    answered += 1
                    gaps.append(time.monotonic() - last_ok)
                    last_ok = time.monotonic()
            except OSError:
                pass
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    finally:
        stop.set()
        th.join(timeout=5)
    gaps.append(time.monotonic() - last_ok)
    print("crash flood: %d crashing requests in 5 s, %d of %d probes answered, longest gap "
          "between answers %.3f s, %d crash reports" % (crashes[0], answered, sent, max(gaps),
                                                        len(g.crash_lines())))
    assert len(g.crash_lines()) >= 20, "the flood crashed too few workers to mean anything"
    assert answered >= sent * 0.5, (answered, sent)
    assert max(gaps) < 1.5, gaps
    assert g.probe(limit=2.0) is not None
    assert g.t.alive()


def test_worker_that_cannot_start_is_retried_with_short_backoff(procs):
    """Every worker aborts in worker_init: the master keeps retrying, a few times a second
    (bounded, not a fork loop), and keeps running."""
    g = Gw(procs, 1, at="worker_init")
    time.sleep(3.0)
    lines = g.crash_lines()
    delays = [int(m.group(1)) for m in
              (re.search(r"starting a new one in (\d+)ms", l) for l in lines) if m]
    print("worker_init crash loop: %d restarts in 3 s, back-offs %r ms" % (len(lines),
                                                                          sorted(set(delays))))
    assert all('its last request: none' in l for l in lines), lines[:3]
    assert 4 <= len(lines) <= 40, len(lines)
    assert delays and max(delays) <= 250, delays
    assert g.t.alive()
