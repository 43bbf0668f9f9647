"""PING keep-alive of pooled HTTP/2 upstream sessions (modules/http2/http2_upstream): a
session quiet for http2_ping_interval gets a PING; without its ACK within
http2_ping_timeout the session is closed, so the next request opens a new connection
instead of waiting for read_timeout on a dead one. The origin is h2_silent_backend.py
(python3-h2), whose connections go silent after their first answer."""

import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    silent = p.backend("silent", mode="silent", script="h2_silent_backend.py")
    healthy = p.backend("healthy", mode="normal", script="h2_silent_backend.py")
    port = harness.free_port()
    ping = dict(protocol="h2c", read_timeout="10s", retries=0,
                http2_ping_interval="400ms", http2_ping_timeout="400ms")
    t = p.torii(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("silent", [silent.port], **ping),
        upstream_block("healthy", [healthy.port], **ping),
        upstream_block("noping", [silent.port], protocol="h2c", read_timeout="1s", retries=0,
                       http2_ping_interval="0s"),
        server_block([port], [{"path": "/silent/", "upstream": "silent"},
                              {"path": "/healthy/", "upstream": "healthy"},
                              {"path": "/noping/", "upstream": "noping"}]),
    ))
    return types.SimpleNamespace(port=port, torii=t)


def get(gw, path):
    t0 = time.monotonic()
    r = harness.request(gw.port, "GET", path, timeout=15)
    return r.status, r.body.decode(errors="replace"), time.monotonic() - t0


def test_dead_session_is_closed_before_the_next_request(gw):
    status, body, _ = get(gw, "/silent/a")
    assert status == 200 and body.startswith("conn "), body
    first = int(body.split()[1])
    time.sleep(2.0)  # PING after 400 ms of quiet, no ACK within 400 ms: closed
    status, body, took = get(gw, "/silent/b")
    assert status == 200, (status, body)
    words = body.split()
    assert int(words[1]) == first + 1, body  # a new connection, not the dead session
    assert int(words[3]) >= 1, body          # the silent one did receive a PING
    assert took < 2.0, took                  # not a read_timeout on the dead session
    assert harness.wait_until(lambda: "no PING ACK" in gw.torii.log(), 2.0)


def test_healthy_idle_session_is_kept(gw):
    status, body, _ = get(gw, "/healthy/a")
    assert status == 200
    first = body.split()[1]
    time.sleep(2.0)  # several PINGs, each answered
    status, body, _ = get(gw, "/healthy/b")
    assert status == 200 and body.split()[1] == first, body  # the same session


def test_without_ping_the_dead_session_takes_the_request(gw):
    # The control: with http2_ping_interval = "0s" the silent session stays in the pool and
    # the next request is lost on it (read_timeout, 504).
    status, body, _ = get(gw, "/noping/a")
    assert status == 200, body
    time.sleep(1.0)
    status, body, _ = get(gw, "/noping/b")
    assert status == 504, (status, body)


def test_config_refuses_a_zero_ping_timeout(tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("u", [harness.free_port()], protocol="h2c", http2_ping_timeout="0s"),
        server_block([harness.free_port()], [{"path": "/", "upstream": "u"}]),
    ))
    r = harness.run_torii(["-t", "-c", str(conf)])
    assert r.returncode == 1 and "http2_ping_timeout must be above 0" in r.stdout + r.stderr, r
