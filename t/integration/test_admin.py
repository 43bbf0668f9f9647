"""The admin listener's /status (SPEC section 2, [admin]) and its Host check (the DNS
rebinding defence, docs/configuration.md [admin])."""

import json
import re
import socket
import time
import types

import pytest

import harness
from harness import RawConn, config, main_block, request, run_torii, server_block


@pytest.fixture(scope="module")
def gw(module_procs):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(admin_port=admin),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "hi\n"}}]),
    )
    t = module_procs.torii(text)
    return types.SimpleNamespace(port=port, admin=admin, torii=t)


def status(gw):
    r = request(gw.admin, "GET", "/status")
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type", "").split(";")[0].strip() == "application/json"
    doc = json.loads(r.body)
    assert isinstance(doc, dict)
    return doc


def test_status_document(gw):
    doc = status(gw)
    assert isinstance(doc.get("version"), str) and doc["version"], doc
    up = doc.get("uptime")
    assert isinstance(up, (int, float)) and not isinstance(up, bool), doc
    assert 0 <= up < 60, doc
    assert doc.get("config") == gw.torii.config_path, doc


def test_status_version_matches_cli(gw):
    doc = status(gw)
    out = run_torii(["-v"]).stdout
    assert re.search(r"(?<![\d.])" + re.escape(doc["version"]) + r"(?![\d.])", out), \
        "admin version %r not in `torii -v` output %r" % (doc["version"], out)


def test_uptime_grows(gw):
    first = status(gw)["uptime"]
    time.sleep(1.2)
    assert status(gw)["uptime"] > first


def test_unknown_admin_path_404(gw):
    assert request(gw.admin, "GET", "/no/such/thing").status == 404


def test_admin_and_proxy_ports_are_separate(gw):
    # the proxy port serves its locations, not the admin API
    r = request(gw.port, "GET", "/status")
    assert (r.status, r.body) == (200, b"hi\n")


# ---- Host check: only the admin address itself or localhost is answered -------------------

REFUSED_HOSTS = ["evil.example", "evil.example:%d", "EVIL.example.:%d", "127.0.0.2:%d",
                 "localhost.evil.example:%d", "[::1]:%d", "127.0.0.1:%d:%d"]


def test_host_own_address_and_localhost_are_answered(gw):
    for host in ["127.0.0.1:%d" % gw.admin, "127.0.0.1", "localhost", "LOCALHOST",
                 "localhost:%d" % gw.admin]:
        r = request(gw.admin, "GET", "/status", headers={"Host": host})
        assert r.status == 200, (host, r.status, r.body[:200])
        assert json.loads(r.body)["config"] == gw.torii.config_path


def test_host_of_another_name_gets_403(gw):
    for pattern in REFUSED_HOSTS:
        host = pattern.replace("%d", str(gw.admin))
        r = request(gw.admin, "GET", "/status", headers={"Host": host})
        assert r.status == 403, (host, r.status, r.body[:200])
        assert b"DNS rebinding" in r.body, r.body
        assert b"version" not in r.body  # no /status document leaked
    assert re.search(r"admin: refused a request from 127\.0\.0\.1 with Host \"evil\.example\"",
                     gw.torii.log()), gw.torii.log()[-2000:]


def test_refused_host_runs_no_endpoint(gw):
    # A rebinding page would POST targets. The check runs before routing: the refused request
    # gets 403 whatever its method and path, where the same request with a good Host goes on
    # to routing (404/405 until /upstreams lands on this branch).
    body = json.dumps({"address": "127.0.0.1:1", "weight": 1})
    hdrs = {"Host": "evil.example:%d" % gw.admin, "Content-Type": "application/json"}
    for method, path in [("POST", "/upstreams/api/targets"),
                         ("DELETE", "/upstreams/api/targets/127.0.0.1:1"),
                         ("PATCH", "/upstreams/api/targets/127.0.0.1:1")]:
        r = request(gw.admin, method, path, body=body, headers=hdrs)
        assert r.status == 403, (method, r.status, r.body[:200])
    good = request(gw.admin, "POST", "/upstreams/api/targets", body=body,
                   headers={"Content-Type": "application/json"})
    assert good.status != 403, good.body[:200]
    listing = request(gw.admin, "GET", "/upstreams")
    if listing.status == 200:  # once GET /upstreams exists: the refused POST added nothing
        assert b"127.0.0.1:1\"" not in listing.body, listing.body[:500]


def test_refused_post_body_does_not_break_the_connection(gw):
    # 403 answered before the body is read: the connection must still frame the next request
    body = b'{"address": "127.0.0.1:1"}'
    with RawConn(gw.admin) as c:
        c.send(b"POST /upstreams/api/targets HTTP/1.1\r\nHost: evil.example\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))
        assert c.read_response().status == 403
        try:
            c.send(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % gw.admin)
            r = c.read_response()
        except (OSError, harness.ProtocolError):
            return  # closing after a refused body is fine too
        assert r.status == 200, r


def test_missing_host_http10_is_answered(gw):
    # Browsers always send Host and rebinding needs a browser: HTTP/1.0 tools may omit it.
    with RawConn(gw.admin) as c:
        c.send(b"GET /status HTTP/1.0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    assert json.loads(r.body)["config"] == gw.torii.config_path


def test_empty_or_repeated_host_refused(gw):
    with RawConn(gw.admin) as c:
        c.send(b"GET /status HTTP/1.1\r\nHost:\r\n\r\n")
        assert c.read_response().status == 403
    with RawConn(gw.admin) as c:
        c.send(b"GET /status HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
        assert c.read_response().status == 400


def test_absolute_form_authority_is_checked(gw):
    # An absolute-form target's authority replaces Host (RFC 9112 3.2.2): it is what is checked
    with RawConn(gw.admin) as c:
        c.send(b"GET http://evil.example/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert c.read_response().status == 403


def test_proxy_port_ignores_the_admin_host_rule(gw):
    r = request(gw.port, "GET", "/", headers={"Host": "evil.example"})
    assert (r.status, r.body) == (200, b"hi\n")


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_host_check_on_ipv6_loopback(procs):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(),
        "[admin]\nlisten = \"[::1]:%d\"\n" % admin,
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "hi\n"}}]),
    )
    procs.torii(text, wait_ports=[port])

    def get(host):
        conn = harness.http.client.HTTPConnection("::1", admin, timeout=5)
        try:
            conn.request("GET", "/status", headers={"Host": host})
            return conn.getresponse().status
        finally:
            conn.close()

    assert harness.wait_until(lambda: _accepts_v6(admin), 10.0)
    for host in ["[::1]:%d" % admin, "[::1]", "localhost", "localhost:%d" % admin]:
        assert get(host) == 200, host
    for host in ["evil.example:%d" % admin, "127.0.0.1:%d" % admin, "::1"]:
        assert get(host) == 403, host


def _accepts_v6(port):
    try:
        with socket.create_connection(("::1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_wildcard_listen_takes_ip_literals_not_names(procs):
    # Bound to 0.0.0.0 the address a client dialled is unknown; an IP literal cannot be
    # rebound, a name can. Start also warns (with the place) that the API is network-facing.
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(),
        "[admin]\nlisten = \"0.0.0.0:%d\"\n" % admin,
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "hi\n"}}]),
    )
    t = procs.torii(text)
    for host in ["127.0.0.1:%d" % admin, "192.0.2.10:%d" % admin, "10.1.2.3", "localhost",
                 "[fe80::1]:%d" % admin]:
        assert request(admin, "GET", "/status", headers={"Host": host}).status == 200, host
    for host in ["evil.example", "evil.example:%d" % admin, "10.1.2.3.nip.io:%d" % admin]:
        assert request(admin, "GET", "/status", headers={"Host": host}).status == 403, host
    line = text.splitlines().index('listen = "0.0.0.0:%d"' % admin) + 1
    assert re.search(r"\[warn\].*%s:%d:1: \[admin\] listen \"0\.0\.0\.0:%d\" is not a loopback "
                     r"address" % (re.escape(t.config_path), line, admin), t.log()), t.log()
