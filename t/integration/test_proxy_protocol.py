"""PROXY protocol (v1 text, v2 binary): `proxy_protocol = true` on a [[server]] reads the
header an L4 balancer puts in front of every connection (before TLS on a TLS listener), and
`proxy_protocol = "v1" | "v2"` on an upstream sends one to the targets."""

import json
import socket
import ssl
import struct
import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block
from pki import Pki
from proxy_header_backend import V2_SIGNATURE, ProxyHeaderBackend


def v2_header(command=1, family=0x11, src="203.0.113.9", dst="127.0.0.1", sport=40000,
              dport=443, tlvs=b""):
    if family == 0x11:
        block = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    elif family == 0x21:
        block = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        block = b""
    if block:
        block += struct.pack("!HH", sport, dport)
    block += tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    p = module_procs
    work = tmp_path_factory.mktemp("pp")
    pki = Pki(str(work / "pki"))
    cert = pki.server("127.0.0.1", stem="local")
    echo = p.backend("echo")
    pp1 = ProxyHeaderBackend(harness.free_port()).start()
    pp2 = ProxyHeaderBackend(harness.free_port()).start()
    port, tls_port, plain_port = harness.free_port(), harness.free_port(), harness.free_port()
    admin = harness.free_port()
    log = work / "access.log"
    locations = [
        {"path": "/v1/", "upstream": "pp1"},
        {"path": "/v2/", "upstream": "pp2"},
        {"path": "/var/", "upstream": "echo",
         "plugins": {"header_rewrite": {"request_set": {"X-PP-Addr": "[$proxy_protocol_addr]"}}}},
        {"path": "/", "upstream": "echo"},
    ]
    text = config(
        main_block(access_log=str(log), admin_port=admin),
        plugin_block("round_robin"),
        plugin_block("header_rewrite"),
        upstream_block("echo", [echo.port]),
        upstream_block("pp1", [pp1.port], proxy_protocol="v1"),
        upstream_block("pp2", [pp2.port], proxy_protocol="v2"),
        server_block([port], locations, proxy_protocol=True, client_header_timeout="1s"),
        server_block([tls_port], locations, proxy_protocol=True,
                     tls={"cert": cert.cert, "key": cert.key}),
        server_block([plain_port], locations),
    )
    t = p.torii(text)
    yield types.SimpleNamespace(port=port, tls_port=tls_port, plain_port=plain_port, torii=t,
                                log=log, pp1=pp1, pp2=pp2, ca=pki.ca, admin=admin)
    pp1.stop()
    pp2.stop()


def get(path, host="x"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode()


def echoed_headers(raw):
    resp = harness.parse_response(raw)
    assert resp.status == 200, raw[:300]
    return {k.lower(): v for k, v in resp.json()["headers"]}


def logged(gw, needle):
    def find():
        text = gw.log.read_text() if gw.log.exists() else ""
        return [ln for ln in text.splitlines() if needle in ln]
    return harness.wait_until(find, 5.0)


def test_v1_gives_the_client_address_to_forwarded_headers_and_the_log(gw):
    port = gw.port
    header = "PROXY TCP4 203.0.113.7 127.0.0.1 45678 %d\r\n" % port
    raw = harness.raw_request(port, header.encode() + get("/echo/v1-in"))
    h = echoed_headers(raw)
    assert h["x-forwarded-for"] == "203.0.113.7"
    assert h["x-real-ip"] == "203.0.113.7"
    lines = logged(gw, "/echo/v1-in")
    assert lines and lines[0].startswith("203.0.113.7 "), lines


def test_v2_ipv6_with_tlvs_arriving_in_pieces(gw):
    header = v2_header(family=0x21, src="2001:db8::7", dst="::1", tlvs=b"\x04\x00\x02ab")
    with harness.RawConn(gw.port, timeout=5) as c:
        # The header in three pieces, the request right behind the last one.
        c.send(header[:5])
        time.sleep(0.05)
        c.send(header[5:20])
        time.sleep(0.05)
        c.send(header[20:] + get("/echo/v2-in"))
        closed, got, _ = c.wait_closed(5)
    h = echoed_headers(got)
    assert h["x-forwarded-for"] == "2001:db8::7"
    lines = logged(gw, "/echo/v2-in")
    assert lines and lines[0].startswith("2001:db8::7 "), lines


def test_proxy_protocol_addr_variable(gw):
    header = b"PROXY TCP4 203.0.113.8 127.0.0.1 45678 80\r\n"
    h = echoed_headers(harness.raw_request(gw.port, header + get("/var/echo")))
    assert h["x-pp-addr"] == "[203.0.113.8]"
    # A LOCAL header names no client: the variable is unset, not the balancer's address.
    h = echoed_headers(harness.raw_request(gw.port, v2_header(command=0, family=0) +
                                           get("/var/echo")))
    assert "127.0.0.1" not in h.get("x-pp-addr", ""), h
    h = echoed_headers(harness.raw_request(gw.plain_port, get("/var/echo")))
    assert "127.0.0.1" not in h.get("x-pp-addr", ""), h


def test_parked_connection_keeps_the_client_address(gw):
    """A keep-alive connection idle for 100 ms is parked (docs/performance.md, "Parked idle
    connections") and made again from its fd when its next request comes: the client
    address is the PROXY header's on a proxy_protocol listener (kept while parked), and
    the socket's own peer on a plain one (read again on waking)."""
    def parked():
        r = harness.request(gw.admin, "GET", "/status", headers={"Connection": "close"})
        return r.json()["connections"]["parked"] == 2

    keep = lambda path: ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    header = b"PROXY TCP6 2001:db8::9 ::1 45678 80\r\n"
    with harness.RawConn(gw.port) as pp, harness.RawConn(gw.plain_port) as plain:
        pp.send(header + keep("/echo/parked-pp-1"))
        plain.send(keep("/echo/parked-plain-1"))
        for c in (pp, plain):
            assert c.read_response().status == 200
        assert harness.wait_until(parked, 5.0, interval=0.05)
        pp.send(keep("/echo/parked-pp-2"))
        plain.send(keep("/echo/parked-plain-2"))
        pp_h = {k.lower(): v for k, v in pp.read_response().json()["headers"]}
        plain_h = {k.lower(): v for k, v in plain.read_response().json()["headers"]}
    assert pp_h["x-forwarded-for"] == "2001:db8::9", pp_h
    assert plain_h["x-forwarded-for"] == "127.0.0.1", plain_h


@pytest.mark.parametrize("header", [
    v2_header(command=0, family=0x00),  # LOCAL: the balancer's own health check
    b"PROXY UNKNOWN\r\n",
], ids=["v2-local", "v1-unknown"])
def test_local_and_unknown_keep_the_balancer_address(gw, header):
    h = echoed_headers(harness.raw_request(gw.port, header + get("/echo/local")))
    assert h["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize("data", [
    get("/echo/no-header"),                                    # missing
    b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n" + get("/"),      # bad address
    b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2\n" + get("/"),          # LF without CR
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n" + get("/"),       # line over 107 bytes
    V2_SIGNATURE + b"\x21\x11\x00\x04abcd" + get("/"),         # v2 length too short
    V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c" + b"\0" * 12,  # bad signature
], ids=["missing", "bad-address", "lf-only", "over-long", "v2-short", "v2-signature"])
def test_missing_or_malformed_header_closes_without_an_answer(gw, data):
    r = harness.raw_request(gw.port, data, timeout=5)
    assert r.closed and r == b"", r[:200]


def test_silent_client_is_closed_at_client_header_timeout(gw):
    r = harness.raw_request(gw.port, b"PROXY TCP4 1.2.3.4", timeout=5)
    assert r.closed and r == b""
    assert 0.8 <= r.elapsed < 4, r.elapsed


def test_header_then_tls_handshake(gw):
    header = v2_header(src="198.51.100.20", sport=5555)
    ctx = ssl.create_default_context(cafile=gw.ca)
    with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as raw:
        raw.sendall(header)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(get("/echo/tls"))
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    h = echoed_headers(got)
    assert h["x-forwarded-for"] == "198.51.100.20"
    assert h["x-forwarded-proto"] == "https"


def test_tls_listener_refuses_a_handshake_without_header(gw):
    # The ClientHello is where the PROXY header belongs: the connection is closed in the
    # middle of the handshake.
    ctx = ssl.create_default_context(cafile=gw.ca)
    with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_listener_without_proxy_protocol_takes_no_header(gw):
    r = harness.raw_request(gw.plain_port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + get("/"))
    assert r.startswith(b"HTTP/1.1 400"), r[:100]


@pytest.mark.parametrize("version", [1, 2])
def test_upstream_gets_a_header_with_the_client_address(gw, version):
    backend = gw.pp1 if version == 1 else gw.pp2
    with socket.create_connection(("127.0.0.1", gw.plain_port), timeout=5) as c:
        c.sendall(get("/v%d/out" % version))
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        client_port = c.getsockname()[1]
    doc = harness.parse_response(got).json()
    proxy = doc["proxy"]
    assert proxy["version"] == version
    assert proxy["src"] == "127.0.0.1" and proxy["sport"] == client_port, proxy
    assert proxy["dst"] == "127.0.0.1" and proxy["dport"] == gw.plain_port, proxy
    if version == 1:
        assert proxy["line"] == "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (
            client_port, gw.plain_port)
    assert "error" not in json.dumps(backend.connections)


def test_header_in_and_out_carries_the_real_client(gw):
    header = b"PROXY TCP4 192.0.2.55 127.0.0.1 31337 443\r\n"
    doc = harness.parse_response(harness.raw_request(gw.port, header + get("/v2/both"))).json()
    assert doc["proxy"]["src"] == "192.0.2.55" and doc["proxy"]["sport"] == 31337, doc


def test_pooled_connections_are_not_shared_between_clients(gw):
    """A kept-alive upstream connection carries one client's address: the same client
    connection reuses it, another client gets a connection of its own."""
    def two_requests():
        with harness.RawConn(gw.plain_port, timeout=5) as c:
            conns = []
            for _ in range(2):
                c.send(b"GET /v1/pool HTTP/1.1\r\nHost: x\r\n\r\n")
                conns.append(c.read_response().json()["conn"])
            return conns, c.sock.getsockname()[1]
    (a1, a2), port_a = two_requests()
    (b1, b2), port_b = two_requests()
    assert a1 == a2, "one client connection keeps its upstream connection"
    assert b1 == b2
    assert b1 != a1, "another client must not reuse the first client's connection"
    assert gw.pp1.connections[a1]["sport"] == port_a
    assert gw.pp1.connections[b1]["sport"] == port_b


def test_h2_upstream_with_proxy_protocol_is_refused(procs, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("a", [harness.free_port()], protocol="h2c", proxy_protocol="v1"),
        server_block([harness.free_port()], [{"path": "/", "upstream": "a"}]),
    ))
    cp = harness.run_torii(["-t", "-c", str(path)])
    assert cp.returncode == 1
    assert "proxy_protocol" in cp.stdout + cp.stderr


def test_servers_sharing_a_listener_must_agree(procs, tmp_path):
    port = harness.free_port()
    path = tmp_path / "t.toml"
    loc = [{"path": "/", "return": {"status": 200, "body": "x"}}]
    path.write_text(config(
        main_block(),
        server_block([port], loc, proxy_protocol=True, server_name=["a"]),
        server_block([port], loc, server_name=["b"]),
    ))
    cp = harness.run_torii(["-t", "-c", str(path)])
    assert cp.returncode == 1
    assert "proxy_protocol" in cp.stdout + cp.stderr
