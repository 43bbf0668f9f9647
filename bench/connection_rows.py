"""Connection-cost rows of make bench (issue #16 item 3), with h2o as an HTTP/1.1 peer.

- gateway-chain: user-space instructions per proxied keep-alive request for torii with, on
  one location, auth (key in a header) + ratelimit (local, key $remote_addr, limits that
  never refuse) + stats + header_rewrite (2 request_set entries) + round_robin (the
  upstream's default balancer), next to nginx's and HAProxy's bare proxy in the same run.
- connection-instructions: user-space instructions per new connection: one small request
  per connection with Connection: close, plain HTTP/1.1, one connection after the other,
  each read to the proxy's close. Callgrind runs with --trace-children=yes and counts every
  process of the proxy (each runs as one process here, as in the other instruction rows).
- idle-rss-per-conn: KiB of RSS per idle keep-alive connection: (RSS holding N idle
  connections that each made one request - RSS of the same warmed-up proxy holding none)
  / N, summed over the proxy's processes.

Every proxy gets its usual bench configuration (bench.py); only what a row needs is added
(torii: worker_connections; h2o: an idle timeout long enough to hold the connections).
"""

import os
import socket
import time

import bench as B

ROWS = ["gateway-chain", "connection-instructions", "idle-rss-per-conn"]
# Requests in flight while the idle connections are opened (as wrk's 50 connections in the
# timed rows): pools and buffers a proxy keeps for concurrent requests are warmed to this
# before the baseline is read, so the difference is what idle connections hold.
IDLE_BATCH = 50
REQUEST = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"
CLOSE_REQUEST = b"GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
BODY = b"hello from the backend\n"


def chain_extra():
    """The gateway chain's [[plugin]] entries and location tables: plugin_setups()' auth,
    ratelimit and stats, and header_rewrite with two request_set entries only."""
    setups = dict(B.plugin_setups())
    return "".join([
        setups["auth (key in a header)"],
        setups["ratelimit (local, key $remote_addr)"],
        setups["stats"],
        '[[plugin]]\nname = "header_rewrite"\n[server.location.plugins.header_rewrite]\n'
        'request_set = { X-Client = "$remote_addr", X-Source = "torii" }\n',
    ])


class ToriiConn(B.Torii):
    """torii as in the other rows, allowed as many clients as nginx (worker_connections)."""

    def command(self, single_process=False):
        cmd = super().command(single_process)
        conf = cmd[-1]
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("[main]\n", "[main]\nworker_connections = 20000\n", 1))
        return cmd


class H2oHttp1(B.H2o):
    """h2o 2.2 as a plain HTTP/1.1 proxy: the HTTP/2 rows' configuration without TLS, and an
    idle keep-alive timeout of 300 s (h2o's default, 10 s, would close idle connections
    while the RSS row is still opening them)."""

    def __init__(self, work, backend):
        super().__init__(work, backend, "http1")

    @property
    def label(self):
        return "h2o"

    def command(self, single_process=False):
        cmd = super().command(single_process)
        with open(cmd[-1], "a") as f:
            f.write("http1-request-timeout: 300\n")
        return cmd


def read_response(s, expect_close):
    """Reads one /small response (to the proxy's close with expect_close); raises unless it
    is a 200 with the backend's body."""
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if not expect_close and BODY in data:
            break
    if not data.startswith(b"HTTP/1.1 200") or BODY not in data:
        raise RuntimeError("unexpected response: %r" % data[:200])


def new_connections(proxy, n):
    """n connections one after the other, each one request with Connection: close, read
    until the proxy closes."""
    for _ in range(n):
        with socket.create_connection((B.HOST, proxy.port), timeout=60) as s:
            s.sendall(CLOSE_REQUEST)
            read_response(s, expect_close=True)


def instructions_per_connection(proxy, n):
    def warm_up():
        B.h2load_fixed(proxy, 500)
        new_connections(proxy, 200)
    return B.callgrind_count(proxy, "connection", warm_up, lambda: new_connections(proxy, n),
                             every_process=True) / n


def rss_kib(proxy):
    total = 0
    for pid in proxy.pids():
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def idle_rss_per_connection(proxy, n):
    """(KiB per idle connection, RSS KiB with none, RSS KiB with n)."""
    proxy.start()
    socks = []
    try:
        # Warm-up: IDLE_BATCH concurrent keep-alive clients, then they close.
        B.h2load_fixed(proxy, 2000, clients=IDLE_BATCH)
        time.sleep(1.0)
        before = rss_kib(proxy)
        while len(socks) < n:
            batch = [socket.create_connection((B.HOST, proxy.port), timeout=60)
                     for _ in range(min(IDLE_BATCH, n - len(socks)))]
            socks += batch
            for s in batch:
                s.sendall(REQUEST)
            for s in batch:
                read_response(s, expect_close=False)
        time.sleep(1.0)
        after = rss_kib(proxy)
        # Every connection must still be open (a proxy that closed some would look cheaper).
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    raise RuntimeError("%s closed an idle connection" % proxy.label)
            except BlockingIOError:
                pass
        return (after - before) / n, before, after
    finally:
        for s in socks:
            s.close()
        proxy.stop()


def idle_capacity():
    """Clients every proxy here can hold under the fd limit: torii and HAProxy keep two
    descriptors per client (one for its upstream connection), torii 64 more in reserve."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return min((soft - 64) // 2, B.Haproxy.maxconn()) - 100


def run(args, work, backend, rows_wanted):
    """Runs the wanted rows; returns (table lines, notes)."""
    wanted = [r for r in ROWS if r in rows_wanted]
    if not wanted:
        return [], []
    kinds = [ToriiConn, B.Nginx, B.Haproxy, H2oHttp1]
    if args.only:
        kinds = [k for k in kinds if k.name in args.only.split(",")]
    names = [k.name for k in kinds]
    rows, notes = [], []

    def each(metric, fn, group):
        vals = {}
        for p in group:
            t0 = time.monotonic()
            try:
                vals[p.name] = fn(p)
            except Exception as e:
                B.log("%s %s failed: %s" % (p.label, metric, e))
                vals[p.name] = None
            B.log("%-44s %-8s %s  (%.0f s)" % (metric, p.label, B.fmt(vals[p.name]),
                                              time.monotonic() - t0))
        return vals

    if "gateway-chain" in wanted:
        group = []
        for k in kinds:
            if k is H2oHttp1:
                continue
            p = k(work, backend)
            if k is ToriiConn:
                p.extra = chain_extra()
            group.append(p)
        vals = each("gateway chain instructions/req", lambda p: B.instructions_per_request(
            p, args.fixed, headers=["X-API-Key: bench-key"], tag="chain"), group)
        rows.append(("keep-alive, torii: auth + ratelimit + stats + header_rewrite + "
                     "round_robin; the others bare", "instructions/req (callgrind)", vals))
    if "connection-instructions" in wanted:
        group = [k(work, backend) for k in kinds]
        vals = each("instructions/connection",
                    lambda p: instructions_per_connection(p, args.connections), group)
        rows.append(("new connection, one request (Connection: close)",
                     "instructions/connection (callgrind, %d connections)" % args.connections,
                     vals))
    if "idle-rss-per-conn" in wanted:
        n = min(args.idle, idle_capacity())
        group = [k(work, backend) for k in kinds]
        detail = {}

        def measure(p):
            per, before, after = idle_rss_per_connection(p, n)
            detail[p.name] = (before, after)
            return per
        vals = each("RSS KiB per idle connection", measure, group)
        rows.append(("%d idle keep-alive connections, one request each" % n,
                     "RSS KiB per idle connection", vals))
        notes.append("idle RSS, KiB with none / with %d: %s" % (n, "; ".join(
            "%s %s / %s" % (name, B.fmt(b), B.fmt(a)) for name, (b, a) in detail.items())))
        if n < args.idle:
            notes.append("idle connections: %d, not --idle %d: the open-file limit holds no "
                         "more for torii and HAProxy (two descriptors per client)" %
                         (n, args.idle))
    lines = ["| scenario | metric | " + " | ".join(names) + " | torii/nginx | torii/h2o |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for scenario, metric, vals in rows:
        lines.append("| %s | %s | %s | %s | %s |" % (
            scenario, metric, " | ".join(B.fmt(vals.get(n), 2) for n in names),
            B.ratio(vals.get("torii"), vals.get("nginx")),
            B.ratio(vals.get("torii"), vals.get("h2o"))))
    return lines, notes
