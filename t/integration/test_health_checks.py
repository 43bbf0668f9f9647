"""Active health checks ([upstream.X.health], issue #13): run once per machine by the fleet
process, results shared with every worker through the target table and shown by the admin
API's GET /upstreams.

Backends are health_backend.py: /health answers what the test switches it to and counts the
probes; other paths answer {"backend": NAME} and are counted as served. torii runs two
workers, and requests go on fresh connections so that both workers take some.
"""

import http.client
import json
import os
import ssl
import time

import harness
import pki as pki_mod
from harness import config, main_block, server_block, upstream_block

SCRIPT = "health_backend.py"


def backend(procs, name, extra_args=()):
    return procs.backend(name, script=SCRIPT, extra_args=extra_args)


def hits(b, tls=False):
    """The backend's counters; `tls`: it serves HTTPS (its certificate is not checked)."""
    if not tls:
        return harness.request(b.port, "GET", "/__hits", timeout=5).json()
    conn = http.client.HTTPSConnection(harness.HOST, b.port, timeout=5,
                                       context=ssl._create_unverified_context())
    try:
        conn.request("GET", "/__hits")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def set_health(b, status):
    harness.request(b.port, "GET", "/__health?status=%d" % status, timeout=5)


def restart(b):
    """Starts a stopped backend again on the same port."""
    b.fixed_port = True
    b.start()


def gateway(procs, upstreams, health, workers=2, **upstream_opts):
    """torii with two workers, an admin listener, and one location per upstream:
    /NAME/ -> upstream NAME. `upstreams`: {name: [targets]}; `health` is the health table
    of each; `upstream_opts`: {name: {key: value}} more keys of one upstream."""
    port, admin = harness.free_port(), harness.free_port()
    blocks = [main_block(admin_port=admin, workers=workers)]
    for name, targets in upstreams.items():
        opts = dict(keepalive=0, connect_timeout="1s", read_timeout="5s", retries=1,
                    health=health)
        opts.update(upstream_opts.get(name, {}))
        blocks.append(upstream_block(name, targets, **opts))
    blocks.append(server_block([port], [{"path": "/%s/" % n, "upstream": n}
                                        for n in upstreams]))
    t = procs.torii(config(*blocks))
    t.port, t.admin = port, admin
    return t


def upstream_state(t, name):
    return harness.request(t.admin, "GET", "/upstreams", timeout=5).json()["upstreams"][name]


def target(t, name, address):
    for x in upstream_state(t, name)["targets"]:
        if x["address"] == address:
            return x
    raise AssertionError("no target %s in upstream %s" % (address, name))


def wait_health(t, name, address, health, timeout):
    """Seconds until the target's health is `health`; fails past `timeout`."""
    start = time.monotonic()
    got = harness.wait_until(lambda: target(t, name, address)["health"] == health, timeout,
                             interval=0.02)
    assert got, "target %s of %s not %s within %.1fs: %r" % (
        address, name, health, timeout, target(t, name, address))
    return time.monotonic() - start


def wait_checked(t, name, address, result, timeout=5):
    """Waits for the target's last check to have `result` ("passed" or "failed"); returns
    that check ({"result", "message", "at"})."""
    def check():
        c = target(t, name, address)["check"]
        return c if c and c["result"] == result else None
    got = harness.wait_until(check, timeout, interval=0.02)
    assert got, "no %s check of %s in %s within %.1fs: %r" % (
        result, address, name, timeout, target(t, name, address))
    return got


def worker_connections(t):
    """{worker pid: established connections it holds on torii's port}, from /proc."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == t.port:
                inodes.add(fields[9])
    out = {}
    for pid in t.pids()[1:]:
        try:
            links = [os.readlink("/proc/%d/fd/%s" % (pid, fd))
                     for fd in os.listdir("/proc/%d/fd" % pid)]
        except OSError:
            continue
        out[pid] = sum(1 for link in links if link[8:-1] in inodes)
    return out


class Clients:
    """Keep-alive connections to torii, opened one by one until both workers hold some (the
    kernel hands each accept to whichever worker wakes first), at least 6, at most 64: what
    they get shows what every worker does."""

    def __init__(self, t):
        self.conns = []
        while len(self.conns) < 64:
            c = http.client.HTTPConnection(harness.HOST, t.port, timeout=5)
            c.connect()
            self.conns.append(c)
            held = harness.wait_until(
                lambda: sum(worker_connections(t).values()) == len(self.conns), 2)
            assert held, (len(self.conns), worker_connections(t))
            busy = sum(1 for k in worker_connections(t).values() if k > 0)
            if len(self.conns) >= 6 and busy >= 2:
                return
        raise AssertionError("one worker took every connection: %r" % worker_connections(t))

    def get(self, path):
        names = []
        for c in self.conns:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, (r.status, body[:200])
            names.append(json.loads(body)["backend"])
        return names

    def close(self):
        for c in self.conns:
            c.close()


def served_by(t, name, n):
    """Backend names answering n requests, each on its own connection (both workers)."""
    out = []
    for i in range(n):
        r = harness.request(t.port, "GET", "/%s/x?i=%d" % (name, i), timeout=5)
        assert r.status == 200, (r.status, r.body[:200])
        out.append(r.json()["backend"])
    return out


HEALTH = {"path": "/health", "interval": "300ms", "timeout": "200ms", "healthy": 2,
          "unhealthy": 2}
INTERVAL, TIMEOUT, UNHEALTHY, HEALTHY = 0.3, 0.2, 2, 2
# interval x unhealthy (+10% jitter) + timeout, and slack for polling and a loaded machine.
DOWN_WITHIN = INTERVAL * 1.1 * UNHEALTHY + TIMEOUT + 0.5
UP_WITHIN = INTERVAL * 1.1 * HEALTHY + TIMEOUT + 0.5


def test_stopped_backend_is_marked_down_and_taken_back(procs):
    a, b = backend(procs, "a"), backend(procs, "b")
    t = gateway(procs, {"api": [a.port, b.port]}, HEALTH)
    assert wait_checked(t, "api", b.address, "passed")["message"] == "HTTP 200"
    b.stop()
    took = wait_health(t, "api", b.address, "down", DOWN_WITHIN + 1)
    assert took <= DOWN_WITHIN, took
    st = target(t, "api", b.address)
    assert st["check"]["result"] == "failed"
    assert st["check"]["message"] == "connection refused"
    assert set(served_by(t, "api", 30)) == {"a"}
    restart(b)
    took = wait_health(t, "api", b.address, "up", UP_WITHIN + 1)
    assert took <= UP_WITHIN, took
    assert "b" in served_by(t, "api", 20)
    assert "is down" in t.log() and "is up again" in t.log()


def test_unhealthy_backend_serving_traffic_gets_none(procs):
    a, b = backend(procs, "a"), backend(procs, "b")
    t = gateway(procs, {"api": [a.port, b.port]}, HEALTH)
    wait_checked(t, "api", b.address, "passed")
    assert "b" in served_by(t, "api", 10)  # it does take traffic while healthy
    set_health(b, 500)
    wait_health(t, "api", b.address, "down", DOWN_WITHIN + 1)
    assert target(t, "api", b.address)["check"]["message"] == "HTTP 500"
    clients = Clients(t)  # both workers hold some of these connections
    try:
        before = hits(b)["served"]
        for i in range(3):
            assert set(clients.get("/api/x?round=%d" % i)) == {"a"}
        assert set(served_by(t, "api", 20)) == {"a"}
        assert hits(b)["served"] == before  # not one request on either worker
    finally:
        clients.close()
    set_health(b, 200)
    wait_health(t, "api", b.address, "up", UP_WITHIN + 1)
    assert "b" in served_by(t, "api", 20)


def test_tcp_check(procs):
    a = backend(procs, "a")
    dead = harness.free_port()  # nothing listens
    t = gateway(procs, {"api": [a.port, dead]},
                {"type": "tcp", "interval": "300ms", "timeout": "200ms", "unhealthy": 1})
    wait_health(t, "api", "127.0.0.1:%d" % dead, "down", 5)
    assert target(t, "api", "127.0.0.1:%d" % dead)["check"]["message"] == "connection refused"
    assert wait_checked(t, "api", a.address, "passed")["message"] == "connected"
    assert hits(a)["health"] == 0  # a tcp check sends nothing
    assert set(served_by(t, "api", 10)) == {"a"}


def test_http_check_over_tls(procs, tmp_path):
    p = pki_mod.Pki(str(tmp_path / "pki"))
    good = p.server("127.0.0.1")
    wrong = p.server("other.test")  # verified for 127.0.0.1: the name does not match
    a = backend(procs, "a", ["--tls-cert", good.cert, "--tls-key", good.key])
    b = backend(procs, "b", ["--tls-cert", wrong.cert, "--tls-key", wrong.key])
    t = gateway(procs, {"api": [a.port, b.port]}, dict(HEALTH, unhealthy=1),
                api={"tls": {"ca": p.ca}})
    assert wait_checked(t, "api", a.address, "passed")["message"] == "HTTP 200"
    assert hits(a, tls=True)["health"] >= 1
    wait_health(t, "api", b.address, "down", 5)
    msg = target(t, "api", b.address)["check"]["message"]
    assert msg.startswith("TLS: certificate verify failed"), msg
    assert set(served_by(t, "api", 10)) == {"a"}


def test_all_targets_down_is_503(procs):
    a, b = backend(procs, "a"), backend(procs, "b")
    for x in (a, b):
        set_health(x, 503)
    t = gateway(procs, {"api": [a.port, b.port]}, dict(HEALTH, unhealthy=1))
    wait_health(t, "api", a.address, "down", 5)
    wait_health(t, "api", b.address, "down", 5)
    before = hits(a)["served"] + hits(b)["served"]
    for i in range(6):
        r = harness.request(t.port, "GET", "/api/x?i=%d" % i, timeout=5)
        assert r.status == 503, (r.status, r.body[:200])
    assert hits(a)["served"] + hits(b)["served"] == before


def test_checks_run_once_per_machine(procs):
    a = backend(procs, "a")
    t = gateway(procs, {"api": [a.port]}, dict(HEALTH, interval="200ms"), workers=2)
    wait_checked(t, "api", a.address, "passed")
    assert len(t.pids()) >= 3  # the master, two workers (and the fleet process)
    start = hits(a)["health"]
    time.sleep(3.0)
    n = hits(a)["health"] - start
    # One probe per interval (200 ms, +-10% jitter) is about 15 in 3 s; once per worker would
    # be about 30.
    assert 10 <= n <= 20, n


def test_http_check_speaks_http2_to_h2c_targets(procs):
    # A gRPC server speaks nothing but HTTP/2; it answers a GET with 200 (and grpc-status 2
    # in trailers-only headers), where an HTTP/1.1 probe would get no answer at all. An
    # HTTP/1.1 origin in the same h2c upstream fails the check.
    g = procs.backend("grpc", script="grpc_backend.py")
    a = backend(procs, "a")
    t = gateway(procs, {"api": [g.port, a.port]}, dict(HEALTH, unhealthy=1),
                api={"protocol": "h2c"})
    assert wait_checked(t, "api", g.address, "passed")["message"] == "HTTP 200"
    wait_health(t, "api", a.address, "down", 5)
    msg = target(t, "api", a.address)["check"]["message"]
    assert msg.startswith("HTTP/2: "), msg  # nghttp2's reason: no SETTINGS frame came


def set_grpc_health(b, service, status):
    """Tells a grpc_backend.py what its health service answers about `service` from now on."""
    import grpc
    with grpc.insecure_channel("127.0.0.1:%d" % b.port) as channel:
        assert channel.unary_unary("/test.Echo/SetHealth")(
            ("%s=%s" % (service, status)).encode(), timeout=5) == b"ok"


def test_grpc_check_asks_the_health_service(procs):
    # type = "grpc" calls grpc.health.v1.Health/Check and passes on SERVING only. One server
    # serves, one says NOT_SERVING, one has no health service (UNIMPLEMENTED): an HTTP GET
    # would pass all three (a gRPC server answers any call with HTTP 200).
    serving = procs.backend("g-serving", script="grpc_backend.py")
    not_serving = procs.backend("g-not", script="grpc_backend.py",
                                extra_args=["--health", "=NOT_SERVING"])
    no_health = procs.backend("g-none", script="grpc_backend.py",
                              extra_args=["--health", "none"])
    grpc_health = {"type": "grpc", "interval": "300ms", "timeout": "1s", "healthy": 1,
                   "unhealthy": 1}
    t = gateway(procs, {"api": [serving.port, not_serving.port, no_health.port],
                        "svc": [serving.port]},
                {}, api={"protocol": "h2c", "health": grpc_health},
                svc={"protocol": "h2c", "health": dict(grpc_health, service="test.Echo")})
    assert wait_checked(t, "api", serving.address, "passed")["message"] == "gRPC SERVING"
    assert wait_checked(t, "api", not_serving.address, "failed")["message"] == \
        "gRPC NOT_SERVING"
    msg = wait_checked(t, "api", no_health.address, "failed")["message"]
    assert msg.startswith("gRPC status 12"), msg  # UNIMPLEMENTED
    wait_health(t, "api", not_serving.address, "down", 5)
    wait_health(t, "api", no_health.address, "down", 5)
    assert target(t, "api", serving.address)["health"] == "up"
    state = upstream_state(t, "svc")
    assert state["health_check"]["type"] == "grpc", state
    assert state["health_check"]["path"] == "/grpc.health.v1.Health/Check", state
    assert state["health_check"]["service"] == "test.Echo", state

    # The answer is what counts, as it changes: the server that stopped serving goes down,
    # the one that started comes back.
    set_grpc_health(not_serving, "", "SERVING")
    set_grpc_health(serving, "", "NOT_SERVING")
    wait_health(t, "api", not_serving.address, "up", 5)
    wait_health(t, "api", serving.address, "down", 5)

    # `service` names what is asked about: the server knows nothing of "test.Echo" yet
    # (NOT_FOUND), then says it serves it, whatever it says of itself as a whole.
    msg = wait_checked(t, "svc", serving.address, "failed")["message"]
    assert msg.startswith("gRPC status 5"), msg
    set_grpc_health(serving, "test.Echo", "SERVING")
    assert wait_checked(t, "svc", serving.address, "passed")["message"] == "gRPC SERVING"
    assert target(t, "api", serving.address)["health"] == "down"


def test_grpc_check_of_a_long_service_name(procs):
    # A name of 200 bytes: its length takes two bytes in the request (a varint).
    g = procs.backend("g-long", script="grpc_backend.py",
                      extra_args=["--health", "%s=SERVING" % ("s" * 200)])
    t = gateway(procs, {"api": [g.port]}, {},
                api={"protocol": "h2c", "health": {"type": "grpc", "service": "s" * 200,
                                                   "interval": "300ms", "timeout": "1s"}})
    assert wait_checked(t, "api", g.address, "passed")["message"] == "gRPC SERVING"


def test_grpc_check_config_errors(tmp_path):
    # `torii -t` names the line and what is wrong: gRPC needs HTTP/2 to the targets, a gRPC
    # check has no path of its own to set, and `service` belongs to gRPC checks.
    cases = [({}, {"type": "grpc"}, 'type = "grpc"',
              '"grpc" needs protocol = "h2" or "h2c" in [upstream.api] (gRPC is HTTP/2)'),
             ({"protocol": "h2c"}, {"type": "grpc", "path": "/health"}, 'path = "/health"',
              'applies to type = "http" only'),
             ({"protocol": "h2c"}, {"type": "http", "service": "x"}, 'service = "x"',
              'applies to type = "grpc" only'),
             ({}, {"type": "http", "host": "a\rb"}, 'host = "a',
              "must not contain control characters")]
    path = os.path.join(str(tmp_path), "torii.toml")
    for upstream_opts, health, needle, message in cases:
        port = harness.free_port()
        text = config(main_block(), upstream_block("api", [port], health=health, **upstream_opts),
                      server_block([port], [{"path": "/", "upstream": "api"}]))
        with open(path, "w") as f:
            f.write(text)
        cp = harness.run_torii(["-t", "-c", path])
        assert cp.returncode == 1, (cp.stdout, cp.stderr)
        line = [i for i, l in enumerate(text.splitlines(), 1) if needle in l][0]
        assert "%s:%d:" % (path, line) in cp.stderr, (needle, cp.stderr)
        assert message in cp.stderr, cp.stderr
