"""TCP servers ([[server]] protocol = "tcp"): torii accepts, runs the connect phase of the
server's plugins, picks a target with the upstream's balancer, connects (retrying onto the
next target), then relays bytes both ways until both sides have closed. Real peers:
tcp_echo_backend.py (an echo server that answers the client's FIN after a pause) and
Python's socket and ssl modules on the client side."""

import hashlib
import os
import signal
import socket
import ssl
import threading
import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block
from pki import Pki

MIB = 1024 * 1024


def echo_backend(procs, name, mode="echo"):
    return procs.backend(name, mode=mode, script="tcp_echo_backend.py")


def tcp_server(port, upstream, **opts):
    return server_block([port], [], protocol="tcp", upstream=upstream, **opts)


def connect(port, timeout=10.0):
    return socket.create_connection((harness.HOST, port), timeout=timeout)


def read_until(sock, needle, limit=1 << 20):
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


def read_to_eof(sock):
    data = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


def pump(sock, size, seed=b"torii tcp"):
    """Sends `size` pseudo-random bytes while reading the echo; returns the sha256 of what
    was sent and of what came back (up to the backend's eof notice)."""
    sent = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
    errors = []

    def writer():
        try:
            left = size
            i = 0
            while left > 0:
                chunk = block[i % 7:] + block[:i % 7]
                chunk = chunk[:left]
                sock.sendall(chunk)
                sent.update(chunk)
                left -= len(chunk)
                i += 1
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    w = threading.Thread(target=writer)
    w.start()
    got = hashlib.sha256()
    total = 0
    tail = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        # The bytes after `size` are the backend's "<name> saw eof" line.
        keep = max(0, min(len(chunk), size - total))
        got.update(chunk[:keep])
        tail += chunk[keep:]
        total += len(chunk)
    w.join(60)
    assert not errors, errors
    return sent.hexdigest(), got.hexdigest(), total - len(tail), tail


def lockstep(sock, size, step=256 * 1024):
    """The same as pump() for a TLS socket, which Python cannot read and write from two
    threads at once: a step out, its echo back, until `size` (no half-close: an SSLSocket
    drops its TLS state when its write side is shut)."""
    sent, got = hashlib.sha256(), hashlib.sha256()
    total = 0
    while total < size:
        chunk = os.urandom(min(step, size - total))
        sock.sendall(chunk)
        sent.update(chunk)
        back = b""
        while len(back) < len(chunk):
            more = sock.recv(len(chunk) - len(back))
            assert more, "closed after %d bytes" % (total + len(back))
            back += more
        got.update(back)
        total += len(chunk)
    return sent.hexdigest(), got.hexdigest()


@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    """One torii with the tcp servers most tests use."""
    p = module_procs
    work = tmp_path_factory.mktemp("tcp")
    pki = Pki(str(work / "pki"))
    cert = pki.server("127.0.0.1", stem="local")
    a, b, c = (echo_backend(p, n, "hello") for n in "abc")
    echo = echo_backend(p, "echo")
    refused = harness.free_port()  # nothing listens there
    ports = types.SimpleNamespace(**{k: harness.free_port() for k in (
        "echo", "rr", "allow", "deny", "rate", "retry", "tls", "tls_up", "idle")})
    admin = harness.free_port()
    log = str(work / "access.log")
    text = config(
        main_block(admin_port=admin, access_log=log, shutdown_timeout="30s"),
        plugin_block("auth"),
        plugin_block("ratelimit"),
        upstream_block("echo", [echo.port], protocol="tcp"),
        upstream_block("three", [a.port, b.port, c.port], protocol="tcp"),
        upstream_block("flaky", [refused, echo.port], protocol="tcp", retries=1,
                       connect_timeout="2s"),
        # TLS toward the target: the target is this torii's own TLS-terminating server.
        upstream_block("over_tls", [ports.tls], protocol="tcp",
                       tls={"ca": pki.ca, "sni": "127.0.0.1"}),
        tcp_server(ports.echo, "echo"),
        tcp_server(ports.rr, "three"),
        tcp_server(ports.allow, "echo", plugins={"auth": {"allow": ["10.0.0.0/8"]}}),
        tcp_server(ports.deny, "echo",
                   plugins={"auth": {"allow": ["127.0.0.0/8"], "deny": ["10.0.0.0/8"]}}),
        tcp_server(ports.rate, "echo",
                   plugins={"ratelimit": {"rate": 1, "period": "1m", "burst": 3}}),
        tcp_server(ports.retry, "flaky"),
        tcp_server(ports.tls, "echo", tls={"cert": cert.cert, "key": cert.key}),
        tcp_server(ports.tls_up, "over_tls"),
        tcp_server(ports.idle, "echo", tunnel_idle_timeout="1s"),
    )
    t = p.torii(text)
    ctx = ssl.create_default_context(cafile=pki.ca)
    return types.SimpleNamespace(torii=t, ports=ports, ssl=ctx, log=log, echo=echo,
                                 refused=refused, pki=pki, cert=cert)


def log_lines(gw, port):
    try:
        with open(gw.log) as f:
            return [ln for ln in f if '"TCP 127.0.0.1:%d"' % port in ln]
    except OSError:
        return []


def test_100_mib_pass_intact_both_ways(gw):
    with connect(gw.ports.echo, timeout=60) as s:
        sent, got, n, tail = pump(s, 100 * MIB)
    assert n == 100 * MIB
    assert got == sent
    assert tail == b"echo saw eof\n"


def test_half_close_keeps_the_other_direction_flowing(gw):
    with connect(gw.ports.echo) as s:
        s.sendall(b"first line\n")
        assert read_until(s, b"first line\n") == b"first line\n"
        s.sendall(b"last words\n")
        s.shutdown(socket.SHUT_WR)  # our FIN reaches the backend...
        # ...which answers after it, half a second later, then closes: all of it arrives.
        assert read_to_eof(s) == b"last words\necho saw eof\n"


def test_round_robin_over_three_targets(gw):
    seen = []
    for _ in range(6):
        with connect(gw.ports.rr) as s:
            seen.append(read_until(s, b"\n").strip().decode())
            s.sendall(b"ping\n")
            assert read_until(s, b"ping\n").endswith(b"ping\n")
    assert sorted(seen[:3]) == ["a", "b", "c"], seen
    assert seen[3:] == seen[:3], seen


def test_allow_list_refuses_and_deny_list_lets_through(gw):
    assert refused(gw.ports.allow)  # 127.0.0.1 is not in allow = 10/8: closed at once
    with connect(gw.ports.deny) as s:  # allowed (127/8), not denied (10/8)
        s.sendall(b"welcome\n")
        assert read_until(s, b"welcome\n") == b"welcome\n"
    assert harness.wait_until(lambda: any('" 403 ' in ln for ln in log_lines(gw, gw.ports.allow)),
                              5.0), log_lines(gw, gw.ports.allow)


def refused(port):
    """True when torii closes the connection without relaying a byte."""
    with connect(port) as s:
        s.settimeout(5)
        try:
            s.sendall(b"anyone?\n")
            return s.recv(65536) == b""  # relayed: the echo comes back
        except ConnectionResetError:
            return True


def test_connection_rate_limit(gw):
    # burst 3, one more a minute; torii's readiness probe at start took one token. The
    # connections that get a token relay; once they are spent every new one is closed.
    relayed = 0
    while not refused(gw.ports.rate):
        relayed += 1
        assert relayed <= 3
    assert relayed >= 1
    assert refused(gw.ports.rate)
    with connect(gw.ports.echo) as s:  # other servers are not limited
        s.sendall(b"free\n")
        assert read_until(s, b"\n") == b"free\n"
    assert harness.wait_until(lambda: any('" 429 ' in ln for ln in log_lines(gw, gw.ports.rate)),
                              5.0), log_lines(gw, gw.ports.rate)


def test_retries_onto_the_next_target_when_one_refuses(gw):
    # Round robin alternates between a port that refuses and the echo backend: every
    # connection that starts on the refusing one is retried onto the other.
    for i in range(4):
        with connect(gw.ports.retry) as s:
            s.sendall(b"retry %d\n" % i)
            assert read_until(s, b"\n") == b"retry %d\n" % i
    assert "127.0.0.1:%d" % gw.refused in gw.torii.log()  # the refusal was logged


def test_tls_termination_in_front_of_tcp(gw):
    with connect(gw.ports.tls, timeout=30) as raw:
        with gw.ssl.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            sent, got = lockstep(s, 8 * MIB)
    assert got == sent


def test_tls_to_the_target(gw):
    # plain client → torii → TLS (verified against the test CA) → torii's TLS tcp server →
    # echo backend
    with connect(gw.ports.tls_up, timeout=30) as s:
        sent, got, n, tail = pump(s, 4 * MIB, seed=b"tls upstream")
    assert n == 4 * MIB and got == sent
    assert tail == b"echo saw eof\n"


def test_idle_session_is_closed_after_tunnel_idle_timeout(gw):
    with connect(gw.ports.idle) as s:
        s.sendall(b"hi\n")
        assert read_until(s, b"\n") == b"hi\n"
        t0 = time.monotonic()
        s.settimeout(10)
        assert read_to_eof(s) == b""  # torii closed it: no traffic for 1s
        assert 0.5 <= time.monotonic() - t0 < 5


def test_session_is_logged_with_duration_and_bytes(gw):
    with connect(gw.ports.echo) as s:
        s.sendall(b"x" * 5000)
        s.shutdown(socket.SHUT_WR)
        assert len(read_to_eof(s)) == 5000 + len(b"echo saw eof\n")

    def line():
        return [ln for ln in log_lines(gw, gw.ports.echo) if '" 200 5013 ' in ln]
    assert harness.wait_until(line, 5.0), log_lines(gw, gw.ports.echo)
    fields = line()[0].split('" 200 5013 ')[1].split()
    assert float(fields[2]) >= 0.4  # the backend waited half a second after our FIN
    assert fields[3] == gw.echo.address


def test_session_stays_open_across_three_reloads(gw):
    t = gw.torii
    with connect(gw.ports.echo) as s:
        for i in range(3):
            workers = set(t.pids()) - {t.pid}
            os.kill(t.pid, signal.SIGHUP)
            assert harness.wait_until(lambda: (set(t.pids()) - {t.pid}) - workers, 10.0)
            msg = b"still here %d\n" % i
            s.sendall(msg)
            assert read_until(s, msg) == msg
        # a new session reaches the new generation
        with connect(gw.ports.echo) as fresh:
            fresh.sendall(b"new\n")
            assert read_until(fresh, b"\n") == b"new\n"
        s.sendall(b"bye\n")
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b"bye\necho saw eof\n"


@pytest.mark.parametrize("balancer", ["random", "round_robin", "weighted", "least_conn", "chash"])
def test_every_balancer_picks_targets(procs, balancer):
    a, b, c = (echo_backend(procs, n, "hello") for n in "abc")
    port = harness.free_port()
    opts = {"balancer": balancer, "protocol": "tcp"}
    if balancer == "chash":
        opts["hash_key"] = "$remote_addr"
    procs.torii(config(
        main_block(),
        upstream_block("three", [(a.port, 1), (b.port, 2), (c.port, 1)], **opts),
        tcp_server(port, "three"),
    ))
    seen = []
    for _ in range(12):
        with connect(port) as s:
            seen.append(read_until(s, b"\n").strip().decode())
    assert set(seen) <= {"a", "b", "c"}
    if balancer == "chash":  # keyed by the client address: always the same target
        assert len(set(seen)) == 1, seen
    elif balancer in ("round_robin", "weighted"):
        assert len(set(seen)) == 3, seen


def test_least_conn_avoids_the_busy_target(procs):
    a, b = (echo_backend(procs, n, "hello") for n in "ab")
    port = harness.free_port()
    procs.torii(config(
        main_block(),
        upstream_block("two", [a.port, b.port], balancer="least_conn", protocol="tcp"),
        tcp_server(port, "two"),
    ))
    time.sleep(1.0)  # torii's readiness probe's session is over (the echo lingers 0.5 s)
    held = connect(port)
    try:
        first = read_until(held, b"\n").strip()
        for _ in range(3):  # the open session keeps its target busy: the others go elsewhere
            with connect(port) as s:
                assert read_until(s, b"\n").strip() != first
            time.sleep(0.8)  # that session's end (the echo answers our FIN 0.5 s later)
    finally:
        held.close()


def test_old_abi_plugin_loads_and_its_missing_hook_is_not_read(procs):
    """A plugin built for ABI 1.1 (no connect field in its descriptor) keeps loading: it
    works on HTTP, and on a tcp server the host does not read past its descriptor."""
    echo = echo_backend(procs, "echo")
    web = procs.backend("web")
    tcp_port, http_port = harness.free_port(), harness.free_port()
    path = os.path.join(harness.test_plugin_dir(), "abi_1_1.so")
    procs.torii(config(
        main_block(),
        plugin_block("abi_1_1", path=path),
        upstream_block("echo", [echo.port], protocol="tcp"),
        upstream_block("web", [web.port]),
        tcp_server(tcp_port, "echo", plugins={"abi_1_1": {}}),
        server_block([http_port], [{"path": "/", "upstream": "web",
                                    "plugins": {"abi_1_1": {}}}]),
    ))
    with connect(tcp_port) as s:
        s.sendall(b"old plugin\n")
        assert read_until(s, b"\n") == b"old plugin\n"
    r = harness.request(http_port, "GET", "/")
    assert r.status == 200 and r.headers.get("X-Abi") == "1.1"


@pytest.mark.parametrize("case", ["shared_listen", "http_only_plugin", "auth_type",
                                  "http_location_tcp_upstream"])
def test_config_errors_name_the_place(tmp_path, case):
    port = harness.free_port()
    blocks = [main_block(), plugin_block("auth"), plugin_block("header_rewrite"),
              upstream_block("echo", [port + 1], protocol="tcp")]
    if case == "shared_listen":
        blocks += [tcp_server(port, "echo"),
                   server_block([port], [{"path": "/", "return": {"status": 200}}])]
        needle = "a tcp server needs an address of its own"
    elif case == "http_only_plugin":
        blocks.append(tcp_server(port, "echo",
                                 plugins={"header_rewrite": {"request_set": {"X-A": "b"}}}))
        needle = "nothing to do on a tcp server"
    elif case == "auth_type":
        blocks.append(tcp_server(port, "echo", plugins={"auth": {
            "type": "key", "keys": [{"key": "k", "consumer": "c"}]}}))
        needle = "only allow and deny apply there"
    else:
        blocks.append(server_block([port], [{"path": "/", "upstream": "echo"}]))
        needle = "serves tcp servers only"
    path = tmp_path / "torii.toml"
    path.write_text(config(*blocks))
    cp = harness.run_torii(["-t", "-c", str(path)])
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert needle in cp.stderr, cp.stderr
    assert str(path) + ":" in cp.stderr, cp.stderr


def test_session_past_shutdown_timeout_ends_with_a_fin(procs):
    """A session outlives a reload on the old generation; when shutdown_timeout passes the
    old worker exits and both sides see a FIN (an orderly end, not a reset)."""
    echo = echo_backend(procs, "echo")
    port = harness.free_port()
    t = procs.torii(config(
        main_block(shutdown_timeout="1s"),
        upstream_block("echo", [echo.port], protocol="tcp"),
        tcp_server(port, "echo"),
    ))
    with connect(port) as s:
        s.sendall(b"before\n")
        assert read_until(s, b"\n") == b"before\n"
        old = set(t.pids()) - {t.pid}
        os.kill(t.pid, signal.SIGHUP)
        assert harness.wait_until(lambda: (set(t.pids()) - {t.pid}) - old, 10.0)
        s.sendall(b"during the drain\n")  # the old worker still relays
        assert read_until(s, b"\n") == b"during the drain\n"
        s.settimeout(10)
        t0 = time.monotonic()
        assert s.recv(65536) == b""  # FIN: recv would raise on a reset
        assert time.monotonic() - t0 < 5
        assert harness.wait_until(lambda: not (old & set(t.pids())), 5.0)


def test_stats_count_sessions_and_their_bytes(procs):
    echo = echo_backend(procs, "echo")
    port, admin = harness.free_port(), harness.free_port()
    procs.torii(config(
        main_block(admin_port=admin),
        plugin_block("stats"),
        upstream_block("echo", [echo.port], protocol="tcp"),
        tcp_server(port, "echo", plugins={"stats": {}}),
    ))
    time.sleep(1.0)  # the readiness probe's session has ended and is counted
    before = metric_values(admin, port)
    with connect(port) as s:
        s.sendall(b"y" * 7000)
        s.shutdown(socket.SHUT_WR)
        assert len(read_to_eof(s)) == 7000 + len(b"echo saw eof\n")

    def counted():
        after = metric_values(admin, port)
        return after if after.get("requests", 0) == before.get("requests", 0) + 1 else None
    after = harness.wait_until(counted, 5.0)
    assert after, (before, metric_values(admin, port))
    assert after["received"] - before.get("received", 0) == 7000
    assert after["sent"] - before.get("sent", 0) == 7000 + len(b"echo saw eof\n")


def metric_values(admin, port):
    """The route series of the tcp server on `port`: sessions (status class 2xx), bytes."""
    body = harness.request(admin, "GET", "/metrics").body.decode()
    server = 'server="127.0.0.1:%d"' % port
    out = {}
    for line in body.splitlines():
        if server not in line or line.startswith("#"):
            continue
        name, value = line.split("{")[0], float(line.rsplit(" ", 1)[1])
        if name == "torii_http_requests_total" and 'status_class="2xx"' in line:
            out["requests"] = value
        elif name == "torii_http_received_bytes_total":
            out["received"] = value
        elif name == "torii_http_sent_bytes_total":
            out["sent"] = value
    return out


def test_connection_rate_with_delay_holds_connections_back(procs):
    """ratelimit delay = true pauses the connect phase (host->pause / resume): the
    connections wait for their turn, spaced at the rate, and then all relay."""
    echo = echo_backend(procs, "echo")
    port = harness.free_port()
    procs.torii(config(
        main_block(),
        plugin_block("ratelimit"),
        upstream_block("echo", [echo.port], protocol="tcp"),
        tcp_server(port, "echo", plugins={"ratelimit": {
            "rate": 10, "burst": 3, "delay": True}}),
    ))
    time.sleep(0.5)  # the bucket is full again after torii's readiness probe
    t0 = time.monotonic()
    socks = [connect(port) for _ in range(3)]
    arrived = []
    try:
        for i, s in enumerate(socks):
            s.sendall(b"conn %d\n" % i)
        for i, s in enumerate(socks):
            assert read_until(s, b"\n") == b"conn %d\n" % i
            arrived.append(time.monotonic() - t0)
    finally:
        for s in socks:
            s.close()
    # Admitted connections leave spaced at the rate (10/s): the first at once, the third
    # about 0.2 s later; without the pause all three would echo within milliseconds.
    assert arrived[2] - arrived[0] >= 0.15, arrived
    assert max(arrived) < 3, arrived


def closed_without_a_byte(sock):
    """True when the peer closed without sending anything (a FIN, or a reset: closing with
    unread bytes in the kernel's buffer resets)."""
    try:
        return read_to_eof(sock) == b""
    except ConnectionResetError:
        return True


def test_proxy_protocol_in_and_out(procs):
    # A tcp server behind an L4 balancer (proxy_protocol = true) sees the client the PROXY
    # header names: auth's allow list judges that address, and the header torii sends to
    # the target (upstream proxy_protocol = "v2") carries it on.
    import json
    from proxy_header_backend import read_proxy_header
    got = []
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((harness.HOST, harness.free_port()))
    ls.listen(16)
    ls.settimeout(10)

    def serve():
        for _ in range(2):
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                header = read_proxy_header(c)
                got.append(header)
                c.sendall(json.dumps(header).encode() + b"\n")
                data = c.recv(65536)
                if data:
                    c.sendall(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = harness.free_port()
    procs.torii(config(
        main_block(), plugin_block("auth"), plugin_block("round_robin"),
        upstream_block("pp", ["%s:%d" % (harness.HOST, ls.getsockname()[1])],
                       protocol="tcp", proxy_protocol="v2"),
        tcp_server(port, "pp", proxy_protocol=True,
                   plugins={"auth": {"allow": ["192.0.2.0/24"]}})))
    try:
        with connect(port) as c:
            c.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 443\r\nhello")
            data = read_until(c, b"\n")
            line, rest = data.split(b"\n", 1)
            header = json.loads(line)
            assert header["src"] == "192.0.2.7" and header["sport"] == 5555, header
            if b"hello" not in rest:  # the echo may have come with the line
                rest += read_until(c, b"hello")
            assert rest == b"hello"
        # The real client is outside the allow list: refused before any target is asked.
        with connect(port) as c:
            c.sendall(b"PROXY TCP4 198.51.100.7 127.0.0.1 5555 443\r\nhello")
            assert closed_without_a_byte(c)
        # No header at all: closed without a byte.
        with connect(port) as c:
            c.sendall(b"hello without a header\r\n")
            assert closed_without_a_byte(c)
        assert len(got) == 1, got
    finally:
        ls.close()
