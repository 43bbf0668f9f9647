"""torii_loadgen (bench/loadgen/), the open-loop load generator of make bench's latency-p99
row, against torii and a real backend: counts, status classes, headers, a slow backend path
in the tail, latency timed from each request's due time (no coordinated omission), and
several targets served in turn, each with its own report."""

import json
import os
import socket
import subprocess

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


def loadgen_bin():
    return os.path.join(harness.build_dir(), "torii_loadgen")


def loadgen_targets(ports, paths, rate, seconds, connections, *extra):
    """One run against one or more targets: each target's JSON, in order."""
    cmd = [loadgen_bin(), "-r", str(rate), "-d", str(seconds), "-c", str(connections),
           "--drain", "5"] + list(extra) + [",".join("127.0.0.1:%d" % p for p in ports)]
    r = subprocess.run(cmd + list(paths), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["target"] for o in outs] == ["127.0.0.1:%d" % p for p in ports]
    for out in outs:
        assert out["sent"] <= out["due"]
        assert out["completed"] + out["errors"] == out["due"], out
    return outs


def loadgen(port, paths, rate, seconds, connections, *extra):
    return loadgen_targets([port], paths, rate, seconds, connections, *extra)[0]


@pytest.fixture(scope="module")
def gw(module_procs):
    if not os.access(loadgen_bin(), os.X_OK):
        pytest.fail("torii_loadgen not built at %s (make build)" % loadgen_bin())
    b = module_procs.backend("lg")
    port = harness.free_port()
    text = config(
        main_block(),
        plugin_block("auth"),
        upstream_block("b", [b.port], keepalive=16),
        server_block([port], [
            {"path": "/auth/", "upstream": "b",
             "plugins": {"auth": {"type": "key", "keys": [{"key": "k1", "consumer": "c"}]}}},
            {"path": "/", "upstream": "b"},
        ]),
    )
    module_procs.torii(text)
    return port


@pytest.fixture(scope="module")
def open_and_guarded(module_procs):
    """Two servers on one backend: every request passes the first; the second wants a key."""
    b = module_procs.backend("lg2")
    open_port, guarded_port = harness.free_port(), harness.free_port()
    text = config(
        main_block(),
        plugin_block("auth"),
        upstream_block("b", [b.port], keepalive=16),
        server_block([open_port], [{"path": "/", "upstream": "b"}]),
        server_block([guarded_port], [
            {"path": "/", "upstream": "b",
             "plugins": {"auth": {"type": "key", "keys": [{"key": "k1", "consumer": "c"}]}}},
        ]),
    )
    module_procs.torii(text)
    return open_port, guarded_port


def test_counts_statuses_and_headers(gw):
    # 200 req/s for 1 s after a 0.2 s warm-up, cycling over four paths: one in four is a 503,
    # and the auth location answers 200 only because -H sends its key with every request.
    out = loadgen(gw, ["/echo", "/status/503", "/auth/echo", "/x/echo"], 200, 1, 4,
                  "-w", "0.2", "-H", "X-API-Key: k1")
    assert out["due"] == 200
    assert out["sent"] == 200 and out["completed"] == 200, out
    assert out["non_2xx"] == 50, out
    assert out["errors"] == 0 and out["connection_errors"] == 0, out
    # Never faster than the schedule; slower only by a late last answer (a loaded CI machine).
    assert 150 <= out["achieved_rate"] <= 205, out
    assert 0 < out["p50_us"] <= out["p90_us"] <= out["p99_us"] <= out["p99_9_us"] <= out["max_us"]
    # Without the key every auth request is refused: the statuses are really counted.
    out = loadgen(gw, ["/auth/echo"], 100, 0.2, 2)
    assert out["completed"] == 20 and out["non_2xx"] == 20, out


def test_slow_backend_path_shows_in_p99(gw):
    # One request in 20 takes 300 ms at the backend: the median stays fast, p99 shows them.
    paths = ["/slow?ms=300"] + ["/echo"] * 19
    out = loadgen(gw, paths, 100, 1, 8)
    assert out["completed"] == 100 and out["errors"] == 0, out
    assert out["p50_us"] < 100_000, out
    assert out["p99_us"] >= 300_000, out


def test_latency_runs_from_the_due_time(gw):
    # One connection, 50 ms per answer, 40 requests/s due: the connection serves 20/s, so
    # requests queue and the i-th waits about 25 ms * i on top of its 50 ms. A closed-loop
    # client would report 50 ms for every request; here the tail reaches ~0.5 s.
    out = loadgen(gw, ["/slow?ms=50"], 40, 0.5, 1)
    assert out["completed"] == 20 and out["errors"] == 0, out
    assert out["max_queue"] >= 5, out
    assert out["p50_us"] >= 200_000, out
    assert out["p99_us"] >= 400_000, out
    assert out["achieved_rate"] <= 25, out


def test_targets_take_the_schedule_in_turn(open_and_guarded):
    # 400 req/s for 1 s per target in 50 ms slices: each target gets its own 400 requests
    # (the schedule runs 2 s), its own connections and its own report. Only the guarded
    # server refuses (no key is sent), so a report holding the other's answers would show.
    open_port, guarded_port = open_and_guarded
    outs = loadgen_targets([open_port, guarded_port], ["/echo"], 400, 1, 4, "--slice", "0.05")
    for out in outs:
        assert out["due"] == 400 and out["completed"] == 400 and out["errors"] == 0, out
        assert out["connections"] == 4 and out["slice_s"] == 0.05, out
        # Its rate is over its own share of the schedule: 400 requests in 1 s each.
        assert 300 <= out["achieved_rate"] <= 410, out
    assert outs[0]["non_2xx"] == 0, outs[0]
    assert outs[1]["non_2xx"] == 400, outs[1]
    # The other way round: the order of the targets is the order of the reports.
    outs = loadgen_targets([guarded_port, open_port], ["/echo"], 200, 0.5, 2)
    assert [o["non_2xx"] for o in outs] == [100, 0], outs


def test_a_stuck_target_does_not_hold_up_the_others(open_and_guarded):
    # The first target takes connections and never answers (a listener nobody accepts
    # from): its requests queue behind its two busy connections. The second target's slices
    # still go out on time, on its own connections, and are answered at once.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)
    try:
        outs = loadgen_targets([stuck.getsockname()[1], open_and_guarded[0]], ["/echo"], 100, 1,
                               2, "--drain", "1")
    finally:
        stuck.close()
    assert outs[0]["completed"] == 0 and outs[0]["unfinished"] == 100, outs[0]
    assert outs[0]["max_queue"] >= 90, outs[0]  # its due requests waited, counted as such
    assert outs[1]["due"] == 100 and outs[1]["completed"] == 100, outs[1]
    assert outs[1]["errors"] == 0 and outs[1]["non_2xx"] == 0, outs[1]
    # Sent when due, not when the stuck target's slice ended (100 ms later at the most).
    assert outs[1]["p90_us"] < 50_000, outs[1]


def test_several_targets_take_whole_slices():
    # -d and -w would give the targets different shares if they were not whole slices.
    r = subprocess.run([loadgen_bin(), "-r", "1000", "-d", "0.25", "--slice", "0.1",
                        "127.0.0.1:1,127.0.0.1:2", "/"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "whole multiples of --slice" in r.stderr, r.stderr


def test_unreachable_target_is_an_error(open_and_guarded):
    port = harness.free_port()  # nothing listens there
    r = subprocess.run([loadgen_bin(), "-r", "10", "-d", "1", "127.0.0.1:%d" % port, "/"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "cannot connect" in r.stderr
    # One target of several that cannot be reached fails the run as well, and is named.
    r = subprocess.run([loadgen_bin(), "-r", "10", "-d", "1",
                        "127.0.0.1:%d,127.0.0.1:%d" % (open_and_guarded[0], port), "/"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "cannot connect to 127.0.0.1:%d" % port in r.stderr
