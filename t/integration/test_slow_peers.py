"""Slow peers (SPEC section 7: "slow or silent client: timeout, connection closed, worker
unaffected"; docs/reliability.md, "Slow peers and floods"), driven with Debian's slowhttptest:

  - slowloris (-H): 300 connections each sending one more header line every second: the
    head must arrive within client_header_timeout (2 s here) however it trickles, so each is
    closed at 2 s from its start;
  - slow body (-B, "R-U-Dead-Yet"): 300 POSTs whose body comes in pieces 3 s apart: each
    gets 408 at client_body_timeout (2 s between reads) and is closed;
  - slow read (-X): 100 connections asking for 8 MiB (more than any socket buffer) with a
    512-1024 byte receive window, reading 32 bytes every 5 s: each is closed at send_timeout
    (2 s without progress), and the worker holds at most its output high-water mark per
    connection meanwhile.

Throughout, a probe client sends an ordinary request on a fresh connection every 100 ms and
every one must be answered 200, fast. One worker serves attackers and probe alike.
Every process is stopped by PID (conftest); slowhttptest runs with a length (-l) and a
subprocess timeout.
"""

import csv
import os
import re
import shutil
import subprocess
import threading
import time
import types

import pytest

import harness
from harness import config, main_block, request, server_block, upstream_block

pytestmark = pytest.mark.skipif(shutil.which("slowhttptest") is None,
                                reason="slowhttptest is not installed (scripts/deps.sh)")

ASAN = harness.sanitizer_build()
# Probe latency allowed: the median, and the slowest (a loaded 2-core machine runs the
# attackers, the backend and the probe too).
PROBE_MEDIAN_S = 0.1 if ASAN else 0.05
PROBE_MAX_S = 2.0 if ASAN else 1.0


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
                     client_header_timeout="2s", client_body_timeout="2s", send_timeout="2s",
                     keepalive_timeout="5s"),
    ))
    assert harness.wait_until(lambda: len(harness.children(t.pid)) == 1, 5.0)
    return types.SimpleNamespace(port=port, torii=t, worker=harness.children(t.pid)[0][0],
                                 url="http://127.0.0.1:%d" % port)


class Probe:
    """GET / on a fresh connection every 100 ms in a thread; latencies and failures."""

    def __init__(self, port):
        self.port = port
        self.latencies = []
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = request(self.port, "GET", "/", timeout=5)
                if r.status == 200:
                    self.latencies.append(time.monotonic() - t0)
                else:
                    self.failures.append("status %d" % r.status)
            except Exception as e:  # any failure of a probe is recorded, not raised here
                self.failures.append(repr(e))
            self.stop.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def summary(self):
        lat = sorted(self.latencies)
        if not lat:
            return "no probe answered"
        return "%d probes answered, %d failed, median %.1f ms, max %.1f ms" % (
            len(lat), len(self.failures), 1000 * lat[len(lat) // 2], 1000 * lat[-1])


def slowhttptest(tmp_path, args, seconds):
    """Runs slowhttptest for `seconds` (its -l) with its CSV report; returns the rows as
    dicts (Seconds, Closed, Pending, Connected, Service Available) and its exit line."""
    prefix = os.path.join(str(tmp_path), "slow")
    cp = subprocess.run(["slowhttptest"] + args + ["-l", str(seconds), "-p", "2", "-g", "-o",
                                                   prefix],
                        capture_output=True, text=True, timeout=seconds + 30,
                        stdin=subprocess.DEVNULL)
    out = re.sub(r"\x1b\[[0-9;]*m", "", cp.stdout + cp.stderr)
    m = re.search(r"Exit status: (.*)", out)
    with open(prefix + ".csv") as f:
        rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return rows, (m.group(1).strip() if m else out[-300:])


def count_in_log(t, text):
    return t.log().count(text)


def run_attack(gw, tmp_path, args, seconds, log_line, expect):
    before = count_in_log(gw.torii, log_line)
    rss0 = harness.vm_rss_kib(gw.worker)
    peak = [rss0]

    def watch_rss():
        while not probe.stop.is_set():
            peak[0] = max(peak[0], harness.vm_rss_kib(gw.worker) or 0)
            probe.stop.wait(0.2)

    with Probe(gw.port) as probe:
        watcher = threading.Thread(target=watch_rss, daemon=True)
        watcher.start()
        rows, status = slowhttptest(tmp_path, args, seconds)
        # What torii closes it has closed within a timeout (2 s) past the tool's end.
        harness.wait_until(lambda: count_in_log(gw.torii, log_line) - before >= expect, 3.0,
                           interval=0.1)
    watcher.join(5)
    closed_by_torii = count_in_log(gw.torii, log_line) - before
    return types.SimpleNamespace(rows=rows, status=status, probe=probe,
                                 closed=closed_by_torii, rss_peak_kib=peak[0] - rss0)


def check_probe_and_worker(gw, res):
    assert not res.probe.failures, res.probe.failures[:5]
    assert len(res.probe.latencies) >= 10
    lat = sorted(res.probe.latencies)
    assert lat[len(lat) // 2] < PROBE_MEDIAN_S, res.probe.summary()
    assert lat[-1] < PROBE_MAX_S, res.probe.summary()
    assert gw.torii.alive()
    assert harness.children(gw.torii.pid)[0][0] == gw.worker  # never restarted


def test_slowloris_closed_at_client_header_timeout(gw, tmp_path):
    res = run_attack(gw, tmp_path, ["-H", "-c", "300", "-r", "300", "-i", "1", "-x", "10",
                                    "-u", gw.url + "/"], 4,
                     "request head not received within client_header_timeout", 300)
    print("slowloris, 300 connections, a header line a second: torii closed %d at "
          "client_header_timeout (2 s); slowhttptest: %s; most connected at once %d; %s; "
          "worker RSS peak +%d KiB" % (res.closed, res.status,
                                       max(r["Connected"] for r in res.rows),
                                       res.probe.summary(), res.rss_peak_kib))
    assert res.closed == 300, res.rows
    check_probe_and_worker(gw, res)


def test_slow_body_gets_408_at_client_body_timeout(gw, tmp_path):
    res = run_attack(gw, tmp_path, ["-B", "-c", "300", "-r", "300", "-i", "3", "-s", "8192",
                                    "-x", "10", "-u", gw.url + "/api/echo"], 6,
                     "request body not received within client_body_timeout", 300)
    print("slow body, 300 POSTs, a piece every 3 s: torii answered %d with 408 at "
          "client_body_timeout (2 s); slowhttptest: %s; %s; worker RSS peak +%d KiB"
          % (res.closed, res.status, res.probe.summary(), res.rss_peak_kib))
    assert res.closed == 300, res.rows
    check_probe_and_worker(gw, res)


def test_slow_read_closed_at_send_timeout(gw, tmp_path):
    res = run_attack(gw, tmp_path, ["-X", "-c", "100", "-r", "100", "-w", "512", "-y", "1024",
                                    "-n", "5", "-z", "32", "-k", "1",
                                    "-u", gw.url + "/api/bytes?n=8388608"], 6,
                     "send timed out", 100)
    print("slow read, 100 connections asking 8 MiB, 32 bytes read every 5 s: torii closed %d "
          "at send_timeout (2 s); slowhttptest: %s; %s; worker RSS peak +%d KiB (%.0f KiB "
          "per connection)" % (res.closed, res.status, res.probe.summary(), res.rss_peak_kib,
                               res.rss_peak_kib / 100.0))
    assert res.closed >= 95, res.rows
    # Each connection holds at most the output high-water mark (256 KiB) and a read's
    # worth from the upstream: never the whole 1 MiB response. (Release build only: under
    # ASan freed blocks stay resident in its quarantine, so RSS measures churn there.)
    if not ASAN:
        assert res.rss_peak_kib < 100 * 400, res.rss_peak_kib
    check_probe_and_worker(gw, res)
