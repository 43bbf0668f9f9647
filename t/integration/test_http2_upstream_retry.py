"""Streams an HTTP/2 upstream declined without processing them (RFC 9113 8.7: REFUSED_STREAM,
or above the last stream id of its GOAWAY) go to another target, POSTs included: nothing of
them was processed (issue #11 item 3, docs/protocols.md). A stream the target reset with any
other code, or answered, is never sent twice. The origins are h2_refusing_backend.py
(python3-h2)."""

import os
import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    refuse = p.backend("refuse", mode="refuse", script="h2_refusing_backend.py")
    goaway = p.backend("goaway", mode="goaway", script="h2_refusing_backend.py")
    reset = p.backend("reset", mode="reset", script="h2_refusing_backend.py")
    good = p.backend("good", mode="normal", script="h2_refusing_backend.py")
    port = harness.free_port()
    # max_fails high: a declining target stays in the rotation, so each test meets it again.
    ups = dict(protocol="h2c", read_timeout="5s", connect_timeout="1s",
               health={"enabled": False, "max_fails": 1000})
    t = p.torii(config(
        main_block(),
        plugin_block("round_robin"),
        # The declining target first in the list: round robin starts with it.
        upstream_block("refused", [refuse.port, good.port], retries=1, **ups),
        upstream_block("goaway", [goaway.port, good.port], retries=1, **ups),
        upstream_block("alone", [refuse.port], retries=1, **ups),
        upstream_block("reset", [reset.port, good.port], retries=1, **ups),
        server_block([port], [{"path": "/refused/", "upstream": "refused"},
                              {"path": "/goaway/", "upstream": "goaway"},
                              {"path": "/alone/", "upstream": "alone"},
                              {"path": "/reset/", "upstream": "reset"}]),
    ))
    return types.SimpleNamespace(port=port, torii=t, refuse=refuse, goaway=goaway, reset=reset,
                                 good=good)


def streams_seen(backend, path_prefix):
    """The request streams an origin printed for paths under path_prefix."""
    out = os.path.join(backend.workdir, "backend-%s-%d.out" % (backend.name, backend.port))
    with open(out) as f:
        return [line.split()[1:] for line in f
                if line.startswith("stream ") and line.split()[2].startswith(path_prefix)]




@pytest.mark.parametrize("prefix", ["/refused/", "/goaway/"])
@pytest.mark.parametrize("method,body", [("GET", None), ("POST", b"one-time payload")])
def test_declined_stream_goes_to_the_next_target(gw, prefix, method, body):
    # Several requests, so that round robin hands some of them to the declining target
    # first: every one must end at the good origin, with its body whole.
    for i in range(4):
        r = harness.request(gw.port, method, prefix + "x%d" % i, body=body, timeout=10)
        assert r.status == 200, (r.status, r.body)
        want = "good %s %s" % (method, (body or b"").decode())
        assert r.body.decode() == want, r.body
    # The declining origin did see some of them first (else nothing was retried here).
    declining = gw.refuse if prefix == "/refused/" else gw.goaway
    time.sleep(0.1)
    tried = [s for s in streams_seen(declining, prefix) if s[0] == method]
    assert len(tried) >= 2, tried


def test_a_post_the_target_reset_otherwise_is_not_sent_again(gw):
    # INTERNAL_ERROR: the target may have processed it; a POST is not replayed elsewhere.
    statuses = [harness.request(gw.port, "POST", "/reset/p%d" % i, body=b"x", timeout=10).status
                for i in range(4)]
    time.sleep(0.1)
    on_reset = [p for m, p in streams_seen(gw.reset, "/reset/p") if m == "POST"]
    on_good = [p for m, p in streams_seen(gw.good, "/reset/p") if m == "POST"]
    assert on_reset, "round robin never picked the resetting target"
    assert not set(on_reset) & set(on_good), (on_reset, on_good)  # never both
    assert statuses.count(502) == len(on_reset), (statuses, on_reset)


def test_no_other_target_is_a_502(gw):
    r = harness.request(gw.port, "POST", "/alone/x", body=b"payload", timeout=10)
    assert r.status == 502, (r.status, r.body)


def test_torii_still_serves(gw):
    assert gw.torii.alive()
    r = harness.request(gw.port, "GET", "/refused/last", timeout=10)
    assert r.status == 200
