"""circuit_breaker (SPEC section 5): per route, opens on the error ratio over a rolling
window or on consecutive failures; while open answers with the fallback (or 503) without
touching the backend; half-opens after cool_down with a limited number of probes, which
close it or open it again. Per-target breakers (scope "target"/"both") keep an open
target out of the balancer's choice, probe it after cool_down, and count every attempt,
retries included.

The backend here is a small HTTP/1.1 server in this process (Flaky) whose behaviour the
test switches between answering 200, failing with a status, and holding requests until the
test releases them; it counts the requests it got, so "no backend hit" is checked exactly.
The breaker's state is read from the admin endpoint GET /circuit_breakers.
"""

import http.server
import os
import re
import socket
import struct
import threading
import time
import types

import pytest

import harness
from harness import RawConn, config, main_block, plugin_block, request, run_torii, server_block, \
    upstream_block

UPS = dict(keepalive=16, connect_timeout="1s", read_timeout="3s", retries=0)


# -- a backend the test controls ------------------------------------------------------------

class Flaky:
    """Modes: "ok" answers 200; "fail" answers `fail_status`; "hold" keeps each request
    until release() (then 200), for at most 10 s."""

    def __init__(self):
        self.mode = "ok"
        self.fail_status = 500
        self.hits = 0
        self.holding = 0
        self.lock = threading.Lock()
        self.gate = threading.Semaphore(0)
        self.server = None
        for _ in range(5):
            self.port = harness.free_port()
            try:
                self.server = http.server.ThreadingHTTPServer((harness.HOST, self.port),
                                                              _FlakyHandler)
                break
            except OSError:
                continue
        if self.server is None:
            raise harness.HarnessError("flaky backend: no free port")
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.server.flaky = self
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set(self, mode, status=500):
        with self.lock:
            self.mode = mode
            self.fail_status = status

    def count(self):
        with self.lock:
            return self.hits

    def held(self):
        with self.lock:
            return self.holding

    def release(self, n=1):
        for _ in range(n):
            self.gate.release()

    def stop(self):
        self.release(100)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        b = self.server.flaky
        with b.lock:
            b.hits += 1
            mode, status = b.mode, b.fail_status
            if mode == "hold":
                b.holding += 1
        if mode == "hold":
            b.gate.acquire(timeout=10)
            with b.lock:
                b.holding -= 1
            status = 200
        elif mode == "ok":
            status = 200
        body = ("%d from flaky\n" % status).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # torii gave up on this request (read_timeout, client gone)
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    started = []

    def make():
        f = Flaky()
        started.append(f)
        return f

    yield make
    for f in started:
        f.stop()


# -- helpers ----------------------------------------------------------------------------------

def gateway(procs, locations, upstreams, server_plugins=None):
    """torii with an admin listener, the circuit_breaker plugin, `upstreams` ({name: [targets]}
    or {name: ([targets], {upstream options})}) and one server with `locations`."""
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(admin_port=admin),
        plugin_block("circuit_breaker"),
        *[_upstream(name, spec) for name, spec in upstreams.items()],
        server_block([port], locations, plugins=server_plugins or {}),
    )
    t = procs.torii(text)
    return types.SimpleNamespace(port=port, admin=admin, torii=t, route="127.0.0.1:%d|" % port)


def _upstream(name, spec):
    targets, opts = spec if isinstance(spec, tuple) else (spec, {})
    return upstream_block(name, targets, **dict(UPS, **opts))


def one_route(procs, backend_port, cb, path="/api/"):
    return gateway(procs, [{"path": path, "upstream": "api",
                            "plugins": {"circuit_breaker": cb}}], {"api": [backend_port]})


def get(gw, path="/api/x"):
    return request(gw.port, "GET", path, timeout=10)


def breakers(gw):
    r = request(gw.admin, "GET", "/circuit_breakers")
    assert r.status == 200 and r.header("Content-Type") == "application/json", r
    return {b["name"]: b for b in r.json()["breakers"]}


def breaker(gw, location="/api/", target=None):
    name = gw.route + location + ("@" + target if target else "")
    return breakers(gw).get(name)


def statuses(gw, n, path="/api/x"):
    return [get(gw, path).status for _ in range(n)]


def wait_log(t, needle, timeout=3.0):
    assert harness.wait_until(lambda: needle in t.log(), timeout), \
        "%r not in torii's log:\n%s" % (needle, t.log()[-3000:])


def is_fallback_503(r):
    return (r.status == 503 and b"circuit breaker open" in r.body
            and r.header("Retry-After") is not None)


# -- opening ----------------------------------------------------------------------------------

def test_opens_on_consecutive_failures_with_default_503(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"consecutive_failures": 3, "error_ratio": 0,
                                   "cool_down": "30s"})
    # a success in between resets the run: fail, fail, ok, fail, fail stays closed
    for mode in ("fail", "fail", "ok", "fail", "fail"):
        b.set(mode)
        assert get(gw).status == (500 if mode == "fail" else 200)
    assert breaker(gw)["state"] == "closed"
    assert breaker(gw)["consecutive_failures"] == 2
    assert b.count() == 5
    r = get(gw)  # the third failure in a row: still the backend's answer, then open
    assert (r.status, r.body) == (500, b"500 from flaky\n")
    assert b.count() == 6
    wait_log(gw.torii, 'breaker "%s/api/" opened: 3 consecutive failures' % gw.route)
    # open: torii's 503 at once, the backend sees nothing
    b.set("ok")
    for _ in range(5):
        r = get(gw)
        assert r.status == 503, r
        assert r.body == b"503 Service Unavailable: circuit breaker open\n"
        assert r.header("Content-Type") == "text/plain"
        assert 28 <= int(r.header("Retry-After")) <= 30, r.headers  # the cool_down's rest
    assert b.count() == 6
    st = breaker(gw)
    assert (st["state"], st["scope"], st["opened"], st["rejected"]) == ("open", "route", 1, 5)
    assert st["half_opened"] == 0 and st["closed"] == 0


def test_opens_on_error_ratio_after_min_requests(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"window": "10s", "min_requests": 10, "error_ratio": 0.5,
                                   "consecutive_failures": 0, "cool_down": "30s"})
    # 4 errors in 10: a ratio of 0.4 stays closed
    for mode in ["fail", "ok", "fail", "ok", "ok", "fail", "ok", "fail", "ok", "ok"]:
        b.set(mode)
        get(gw)
    st = breaker(gw)
    assert (st["state"], st["window_requests"], st["window_errors"]) == ("closed", 10, 4)
    b.set("fail")
    assert get(gw).status == 500  # 5 / 11: still below 0.5
    assert breaker(gw)["state"] == "closed"
    assert get(gw).status == 500  # 6 / 12 = 0.5: opens
    assert breaker(gw)["state"] == "open"
    wait_log(gw.torii, "opened: 6 of 12 requests failed in the last 10s (error_ratio 0.50)")
    hits = b.count()
    assert get(gw).status == 503 and b.count() == hits == 12


def test_min_requests_holds_the_ratio_back(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"min_requests": 6, "error_ratio": 0.5,
                                   "consecutive_failures": 0})
    b.set("fail")
    assert statuses(gw, 5) == [500] * 5  # 5 of 5 failed, but fewer than min_requests
    assert breaker(gw)["state"] == "closed"
    b.set("ok")
    assert get(gw).status == 200  # 5 of 6 >= 0.5 with min_requests reached: opens
    assert breaker(gw)["state"] == "open"
    assert get(gw).status == 503 and b.count() == 6


def test_window_forgets_old_errors(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"window": "1s", "min_requests": 4, "error_ratio": 0.5,
                                   "consecutive_failures": 0})
    b.set("fail")
    assert statuses(gw, 3) == [500] * 3
    time.sleep(1.3)  # those three fall out of the 1 s window
    assert get(gw).status == 500  # 1 of 1 in the window: fewer than 4
    st = breaker(gw)
    assert (st["state"], st["window_requests"]) == ("closed", 1), st
    assert statuses(gw, 3) == [500] * 3  # 4 of 4 within the window: opens
    assert breaker(gw)["state"] == "open"
    assert get(gw).status == 503 and b.count() == 7


def test_errors_list_decides_what_a_failure_is(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"errors": ["429", "503"], "consecutive_failures": 2,
                                   "error_ratio": 0, "cool_down": "30s"})
    b.set("fail", 500)  # 500 is not listed: successes as far as the breaker is concerned
    assert statuses(gw, 4) == [500] * 4
    assert breaker(gw)["state"] == "closed" and breaker(gw)["window_errors"] == 0
    b.set("fail", 429)
    assert statuses(gw, 3) == [429, 429, 503]  # two 429 in a row open it
    assert b.count() == 6


def test_error_classes(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"errors": ["4xx"], "consecutive_failures": 2,
                                   "error_ratio": 0})
    b.set("fail", 503)
    assert statuses(gw, 3) == [503] * 3 and breaker(gw)["state"] == "closed"
    b.set("fail", 404)
    assert statuses(gw, 3) == [404, 404, 503] and b.count() == 5


def test_connect_failure_and_timeout_count_as_errors(procs, flaky):
    b = flaky()
    closed = harness.free_port()  # nothing listens there
    # `errors` lists neither 502 nor 504: responses that never came count all the same
    cb = {"errors": ["500"], "consecutive_failures": 2, "error_ratio": 0, "cool_down": "30s"}
    gw = gateway(procs, [
        {"path": "/down/", "upstream": "down", "plugins": {"circuit_breaker": cb}},
        {"path": "/slow/", "upstream": "slow", "plugins": {"circuit_breaker": cb}},
    ], {"down": [closed], "slow": ([b.port], {"read_timeout": "400ms"})})
    assert statuses(gw, 2, "/down/x") == [502, 502]
    r = get(gw, "/down/x")
    assert is_fallback_503(r), (r.status, r.body)
    wait_log(gw.torii, 'breaker "%s/down/" opened: 2 consecutive failures' % gw.route)
    # read_timeout is 400ms: a held request times out with torii's 504
    b.set("hold")
    start = time.monotonic()
    assert statuses(gw, 2, "/slow/x") == [504, 504]
    assert time.monotonic() - start >= 0.75
    b.set("ok")
    b.release(2)
    start = time.monotonic()
    r = get(gw, "/slow/x")
    assert is_fallback_503(r) and time.monotonic() - start < 1.0
    assert b.count() == 2


# -- while open -------------------------------------------------------------------------------

def test_custom_fallback_is_served_at_once(procs, flaky):
    b = flaky()
    fb = {"status": 200, "body": '{"items":[],"degraded":true}',
          "headers": {"Content-Type": "application/json", "X-Degraded": "circuit open"}}
    gw = one_route(procs, b.port, {"consecutive_failures": 2, "error_ratio": 0,
                                   "cool_down": "30s", "fallback": fb})
    b.set("fail", 502)
    assert statuses(gw, 2) == [502, 502]
    b.set("hold")  # had a request reached the backend now, it would hang for 10 s
    for _ in range(10):
        start = time.monotonic()
        r = get(gw)
        assert time.monotonic() - start < 0.5
        assert (r.status, r.body) == (200, b'{"items":[],"degraded":true}')
        assert r.header("Content-Type") == "application/json"
        assert r.header("X-Degraded") == "circuit open"
        assert r.header("Retry-After") is None
    assert b.count() == 2 and b.held() == 0
    assert breaker(gw)["rejected"] == 10


def test_fallback_status_only_and_text_body(procs, flaky):
    b = flaky()
    gw = gateway(procs, [
        {"path": "/a/", "upstream": "api", "plugins": {"circuit_breaker": {
            "consecutive_failures": 1, "fallback": {"status": 429}}}},
        {"path": "/b/", "upstream": "api", "plugins": {"circuit_breaker": {
            "consecutive_failures": 1, "fallback": {"body": "try later\n"}}}},
    ], {"api": [b.port]})
    b.set("fail")
    assert get(gw, "/a/x").status == 500 and get(gw, "/b/x").status == 500
    r = get(gw, "/a/x")
    assert (r.status, r.body, r.header("Content-Type")) == (429, b"", None)
    r = get(gw, "/b/x")  # status defaults to 503; a body without a type is text/plain
    assert (r.status, r.body, r.header("Content-Type")) == (503, b"try later\n", "text/plain")
    assert b.count() == 2


# -- half-open --------------------------------------------------------------------------------

def open_it(gw, b, n):
    b.set("fail")
    assert statuses(gw, n) == [500] * n
    assert breaker(gw)["state"] == "open"


def test_half_open_lets_a_limited_number_of_probes_then_closes(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"consecutive_failures": 2, "error_ratio": 0,
                                   "cool_down": "1s", "half_open_requests": 2})
    open_it(gw, b, 2)
    b.set("hold")
    assert get(gw).status == 503  # still cooling down
    time.sleep(1.1)
    results = []
    probes = [threading.Thread(target=lambda: results.append(get(gw).status), daemon=True)
              for _ in range(2)]
    for t in probes:
        t.start()
    assert harness.wait_until(lambda: b.held() == 2, 3.0), b.held()
    # both probe places are taken: everyone else gets the fallback at once
    assert statuses(gw, 3) == [503] * 3
    st = breaker(gw)
    assert (st["state"], st["probes"], st["half_opened"]) == ("half_open", 2, 1)
    wait_log(gw.torii, 'breaker "%s/api/" half-open after 1s: letting through up to 2 probe(s)'
             % gw.route)
    b.release(1)
    assert harness.wait_until(lambda: results == [200], 3.0), results
    st = breaker(gw)
    assert (st["state"], st["probe_successes"]) == ("half_open", 1)  # one of two is not enough
    assert get(gw).status == 503
    b.release(1)
    for t in probes:
        t.join(timeout=5)
    assert results == [200, 200]
    st = breaker(gw)
    assert (st["state"], st["closed"], st["opened"]) == ("closed", 1, 1)
    wait_log(gw.torii, 'breaker "%s/api/" closed: 2 probe(s) succeeded' % gw.route)
    b.set("ok")
    assert statuses(gw, 3) == [200] * 3
    assert b.count() == 2 + 2 + 3


def test_probe_failure_opens_again(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"consecutive_failures": 2, "error_ratio": 0,
                                   "cool_down": "1s"})
    open_it(gw, b, 2)
    time.sleep(1.1)
    r = get(gw)  # the probe reaches the still failing backend
    assert (r.status, r.body) == (500, b"500 from flaky\n")
    assert b.count() == 3
    r = get(gw)
    assert r.status == 503 and 1 <= int(r.header("Retry-After")) <= 1
    assert b.count() == 3
    wait_log(gw.torii, "opened again: a half-open probe failed")
    st = breaker(gw)
    assert (st["state"], st["opened"], st["half_opened"], st["closed"]) == ("open", 2, 1, 0)
    # next cool-down, healed backend: the probe succeeds and the breaker closes
    b.set("ok")
    time.sleep(1.1)
    assert statuses(gw, 3) == [200] * 3
    st = breaker(gw)
    assert (st["state"], st["opened"], st["half_opened"], st["closed"]) == ("closed", 2, 2, 1)


def test_probe_timeout_lets_a_new_probe_through(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"consecutive_failures": 1, "error_ratio": 0,
                                   "cool_down": "300ms", "probe_timeout": "700ms"})
    open_it(gw, b, 1)
    b.set("hold")
    time.sleep(0.4)
    first = []
    t1 = threading.Thread(target=lambda: first.append(get(gw).status), daemon=True)
    t1.start()
    assert harness.wait_until(lambda: b.held() == 1, 3.0)
    assert get(gw).status == 503  # the one probe place is taken
    time.sleep(0.8)  # no outcome within probe_timeout: a new round
    second = []
    t2 = threading.Thread(target=lambda: second.append(get(gw).status), daemon=True)
    t2.start()
    assert harness.wait_until(lambda: b.held() == 2, 3.0), b.held()
    wait_log(gw.torii, "half-open probes gave no outcome within 700ms")
    b.release(1)  # the old round's probe: its success no longer decides
    b.release(1)
    t1.join(timeout=5)
    t2.join(timeout=5)
    assert first == [200] and second == [200]
    assert breaker(gw)["state"] == "closed"
    assert b.count() == 3


def test_a_probe_whose_client_leaves_frees_its_place(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"consecutive_failures": 1, "error_ratio": 0,
                                   "cool_down": "300ms"})
    open_it(gw, b, 1)
    b.set("hold")
    time.sleep(0.4)
    with RawConn(gw.port) as c:
        c.send(b"GET /api/gone HTTP/1.1\r\nHost: h\r\n\r\n")
        assert harness.wait_until(lambda: b.held() == 1, 3.0)
        assert breaker(gw)["probes"] == 1
        # a reset, not a FIN: torii takes a FIN after a whole request as a half-close and
        # still waits for the answer
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # torii logs the exchange as 499; that is no verdict on the backend
    st = harness.wait_until(lambda: (lambda s: s if s["probes"] == 0 else None)(breaker(gw)),
                            3.0)
    assert st and st["state"] == "half_open", breaker(gw)
    done = []
    t = threading.Thread(target=lambda: done.append(get(gw).status), daemon=True)
    t.start()
    assert harness.wait_until(lambda: b.held() == 2, 3.0), b.held()  # the new probe is in
    b.release(2)
    t.join(timeout=5)
    assert done == [200] and breaker(gw)["state"] == "closed"


# -- where it applies -------------------------------------------------------------------------

def test_per_route_and_enabled_false(procs, flaky):
    b = flaky()
    gw = gateway(procs, [
        {"path": "/a/", "upstream": "api"},
        {"path": "/c/", "upstream": "api"},
        {"path": "/off/", "upstream": "api", "plugins": {"circuit_breaker": {"enabled": False}}},
    ], {"api": [b.port]},
        server_plugins={"circuit_breaker": {"consecutive_failures": 2, "error_ratio": 0,
                                            "cool_down": "30s"}})
    b.set("fail")
    assert statuses(gw, 3, "/a/x") == [500, 500, 503]
    # /c/ shares the server's settings but is a route of its own: still closed
    assert get(gw, "/c/x").status == 500
    assert breaker(gw, "/c/")["state"] == "closed"
    assert breaker(gw, "/a/")["state"] == "open"
    # switched off: every failure reaches the client, nothing is recorded
    assert statuses(gw, 6, "/off/x") == [500] * 6
    assert breaker(gw, "/off/") is None
    assert b.count() == 2 + 1 + 6


# -- per target -------------------------------------------------------------------------------

# Passive health would mark a refusing target down by itself (max_fails defaults to 1):
# switched off here, so what keeps a target out is its breaker alone.
NO_PASSIVE = {"health": {"enabled": False, "max_fails": 1000}}


def two_targets(procs, first, second, cb, **ups):
    """One location over an upstream of two targets (round_robin)."""
    return gateway(procs, [{"path": "/api/", "upstream": "api",
                            "plugins": {"circuit_breaker": cb}}],
                   {"api": ([first, second], dict(NO_PASSIVE, **ups))})


def addr(port):
    return "127.0.0.1:%d" % port


def hits(*backends):
    return tuple(b.count() for b in backends)


def test_open_target_is_kept_out_then_probed(procs, flaky):
    good, bad = flaky(), flaky()
    bad.set("fail", 500)
    gw = two_targets(procs, good.port, bad.port, {
        "scope": "target", "consecutive_failures": 2, "error_ratio": 0, "cool_down": "1s"})
    # round robin alternates: the bad target fails every other request (retries = 0, so
    # the client sees its 500s) until two in a row open its breaker
    got = statuses(gw, 4)
    assert sorted(got) == [200, 200, 500, 500], got
    assert hits(good, bad) == (2, 2)
    st = breaker(gw, target=addr(bad.port))
    assert (st["state"], st["scope"], st["target"], st["opened"]) == \
        ("open", "target", addr(bad.port), 1), st
    assert 0 < st["half_open_in_ms"] <= 1000, st
    assert breaker(gw, target=addr(good.port))["state"] == "closed"
    assert breaker(gw) is None  # scope "target": no route breaker
    wait_log(gw.torii, 'target breaker "%s/api/@%s" opened: 2 consecutive failures'
             % (gw.route, addr(bad.port)))
    # open: every request goes to the healthy target, the bad one gets none
    assert statuses(gw, 10) == [200] * 10
    assert hits(good, bad) == (12, 2)
    st = breaker(gw, target=addr(bad.port))
    assert st["state"] == "open" and st["rejected"] >= 4, st  # picks of it kept out
    wait_log(gw.torii, 'plugin "circuit_breaker" keeps target %s out' % addr(bad.port))
    # after cool_down: one probe reaches it; still failing, the breaker opens again
    time.sleep(1.1)
    got = statuses(gw, 6)
    assert sorted(got) == [200] * 5 + [500], got
    assert hits(good, bad) == (17, 3)
    st = breaker(gw, target=addr(bad.port))
    assert (st["state"], st["opened"], st["half_opened"]) == ("open", 2, 1), st
    wait_log(gw.torii, "opened again: a half-open probe failed")
    # next cool-down: the probe is held by the backend; meanwhile the breaker keeps every
    # other request away from that target (half_open_requests = 1)
    bad.set("hold")
    time.sleep(1.1)
    probe = []
    for _ in range(4):  # round robin reaches the bad target within two requests
        t = threading.Thread(target=lambda: probe.append(get(gw).status), daemon=True)
        t.start()
        if harness.wait_until(lambda: bad.held() == 1 or not t.is_alive(), 3.0) \
                and bad.held() == 1:
            break
        t.join(timeout=5)
    assert bad.held() == 1, (bad.held(), probe)
    st = breaker(gw, target=addr(bad.port))
    assert (st["state"], st["probes"]) == ("half_open", 1), st
    before = hits(good, bad)
    assert statuses(gw, 6) == [200] * 6
    assert hits(good, bad) == (before[0] + 6, before[1])
    # fixed: the probe succeeds, the breaker closes and traffic is split again
    bad.set("ok")
    bad.release(1)
    t.join(timeout=5)
    assert probe[-1] == 200, probe
    st = breaker(gw, target=addr(bad.port))
    assert (st["state"], st["closed"], st["half_opened"]) == ("closed", 1, 2), st
    wait_log(gw.torii, 'target breaker "%s/api/@%s" closed: 1 probe(s) succeeded'
             % (gw.route, addr(bad.port)))
    before = hits(good, bad)
    assert statuses(gw, 10) == [200] * 10
    g, b = hits(good, bad)
    assert g - before[0] >= 4 and b - before[1] >= 4, (before, g, b)


def test_every_target_open_answers_503(procs, flaky):
    b1, b2 = flaky(), flaky()
    b1.set("fail", 502)
    b2.set("fail", 503)
    gw = two_targets(procs, b1.port, b2.port, {
        "scope": "target", "consecutive_failures": 2, "error_ratio": 0, "cool_down": "30s"})
    assert sorted(statuses(gw, 4)) == [502, 502, 503, 503]
    assert hits(b1, b2) == (2, 2)
    assert breaker(gw, target=addr(b1.port))["state"] == "open"
    assert breaker(gw, target=addr(b2.port))["state"] == "open"
    # both kept out: torii answers 503 itself, no backend is tried
    b1.set("ok")
    b2.set("ok")
    for _ in range(4):
        r = get(gw)
        assert r.status == 503 and b"from flaky" not in r.body, (r.status, r.body)
    assert hits(b1, b2) == (2, 2)


def test_failures_hidden_by_a_retry_open_the_target(procs, flaky):
    good = flaky()
    closed = harness.free_port()  # nothing listens there: connect refused
    gw = two_targets(procs, closed, good.port, {
        "scope": "both", "consecutive_failures": 3, "error_ratio": 0, "cool_down": "30s"},
        retries=1)
    refused = "target %s: " % addr(closed)  # torii's log line of each failed attempt

    def tries():
        return sum(1 for line in gw.torii.log().splitlines() if refused in line)

    # every request succeeds (a refused attempt is retried on the good target) ...
    got = []
    for _ in range(12):
        got.append(get(gw).status)
        st = breaker(gw, target=addr(closed))
        if st and st["state"] == "open":
            break
    assert got == [200] * len(got)
    # ... yet each refused attempt counted against the closed port's breaker
    assert tries() == 3, gw.torii.log()[-2000:]
    st = breaker(gw, target=addr(closed))
    assert (st["state"], st["opened"]) == ("open", 1), st
    wait_log(gw.torii, 'target breaker "%s/api/@%s" opened: 3 consecutive failures'
             % (gw.route, addr(closed)))
    # the route only saw successes
    st = breaker(gw)
    assert (st["state"], st["window_errors"]) == ("closed", 0), st
    # now the dead target is not even tried: no more connect attempts, no more retries
    n = good.count()
    assert statuses(gw, 10) == [200] * 10
    assert good.count() == n + 10
    assert tries() == 3
    assert breaker(gw, target=addr(closed))["rejected"] >= 4


def test_scope_both_keeps_route_and_targets(procs, flaky):
    b = flaky()
    gw = one_route(procs, b.port, {"scope": "both", "consecutive_failures": 2, "error_ratio": 0})
    open_it(gw, b, 2)
    addr = "127.0.0.1:%d" % b.port
    assert breaker(gw, target=addr)["state"] == "open"
    assert get(gw).status == 503
    # by default only the route's breaker exists
    b2 = flaky()
    gw2 = one_route(procs, b2.port, {"consecutive_failures": 2})
    open_it(gw2, b2, 2)
    assert list(breakers(gw2)) == [gw2.route + "/api/"]


# -- config errors ----------------------------------------------------------------------------

def line_of(text, needle):
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, "%r found on lines %r of the config" % (needle, hits)
    return hits[0]


BAD = [
    ({"bogus": 1}, "bogus = 1", 'unknown key "bogus"'),
    ({"window": "5ms"}, "window =", "window: must be between 10ms and"),
    ({"window": 10}, "window =", "window: expected a duration"),
    ({"min_requests": 0}, "min_requests =", "min_requests: must be between 1 and"),
    ({"min_requests": "5"}, "min_requests =", "min_requests: expected an integer"),
    ({"error_ratio": 1.5}, "error_ratio =", "error_ratio: must be between 0 (off) and 1"),
    ({"consecutive_failures": -1}, "consecutive_failures =", "must be between 0 and"),
    ({"errors": ["6xx"]}, "errors =", '"6xx" is not a status (100-599) or a class'),
    ({"errors": ["50"]}, "errors =", '"50" is not a status'),
    ({"errors": [500]}, "errors =", "errors[0]: expected a string"),
    ({"errors": "5xx"}, "errors =", "errors: expected an array"),
    ({"cool_down": "fast"}, "cool_down =", "cool_down:"),
    ({"half_open_requests": 0}, "half_open_requests =", "must be between 1 and 1000"),
    ({"probe_timeout": "0s"}, "probe_timeout =", "probe_timeout: must be between"),
    ({"scope": "all"}, "scope =", 'must be "route", "target" or "both"'),
    ({"fallback": "503"}, "fallback =", "fallback: expected a table"),
    ({"fallback": {"status": 99}}, "fallback =", "status: must be a final status"),
    ({"fallback": {"code": 503}}, "fallback =", 'unknown key "code"'),
    ({"fallback": {"body": 1}}, "fallback =", "body: expected a string"),
    ({"fallback": {"headers": {"X-A": 1}}}, "fallback =", "X-A: expected a string"),
    ({"fallback": {"headers": {"Bad Name": "x"}}}, "fallback =", "is not a header name"),
    ({"fallback": {"headers": "x"}}, "fallback =", "headers: expected a table"),
    ({"fallback": {"status": 204, "body": "x"}}, "fallback =", "body: a 204 answer has no body"),
    ({"fallback": {"headers": {"X-%d" % i: "v" for i in range(65)}}}, "fallback =",
     "headers: at most 64 headers"),
    ({"error_ratio": 0, "consecutive_failures": 0}, "[server.location.plugins.circuit_breaker]",
     "the breaker could never open"),
]


@pytest.mark.parametrize("cb,needle,message", BAD, ids=[m for _, _, m in BAD])
def test_config_errors_name_their_line(tmp_path, cb, needle, message):
    text = config(
        main_block(),
        plugin_block("circuit_breaker"),
        upstream_block("api", [harness.free_port()]),
        server_block([harness.free_port()], [
            {"path": "/", "upstream": "api", "plugins": {"circuit_breaker": cb}}]),
    )
    path = os.path.join(str(tmp_path), "torii.toml")
    with open(path, "w") as f:
        f.write(text)
    cp = run_torii(["-t", "-c", path])
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    line = line_of(text, needle)
    assert re.search(re.escape(path) + r":%d:\d+: plugin \"circuit_breaker\": " % line,
                     cp.stderr), "expected %s:%d: in %r" % (path, line, cp.stderr)
    assert message in cp.stderr, cp.stderr


def test_full_config_is_ok(tmp_path):
    cb = {"window": "30s", "min_requests": 50, "error_ratio": 0.25, "consecutive_failures": 0,
          "errors": ["5xx", "429"], "cool_down": "1m", "half_open_requests": 3,
          "probe_timeout": "10s", "scope": "both",
          "fallback": {"status": 200, "body": "{}",
                       "headers": {"Content-Type": "application/json"}}}
    text = config(main_block(), plugin_block("circuit_breaker"),
                  upstream_block("api", [harness.free_port()]),
                  server_block([harness.free_port()], [
                      {"path": "/", "upstream": "api", "plugins": {"circuit_breaker": cb}}]))
    path = os.path.join(str(tmp_path), "torii.toml")
    with open(path, "w") as f:
        f.write(text)
    cp = run_torii(["-t", "-c", path])
    assert cp.returncode == 0 and re.search(r"\bok\b", cp.stdout), (cp.stdout, cp.stderr)
