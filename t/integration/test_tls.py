"""TLS on both sides, with real clients and servers: curl and openssl s_client toward torii,
Python's ssl (backend.py --tls-*) behind it. A throwaway PKI (pki.py) signs everything."""

import json
import os
import signal
import socket
import subprocess
import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, raw_request, server_block, \
    upstream_block
from pki import Pki

HEADER_TIMEOUT_S = 1.0
REQUEST = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


def curl(*args, timeout=10):
    """curl's (exit code, stdout); never raises on a failed transfer."""
    r = subprocess.run(["curl", "-sS", "--max-time", "5"] + list(args), capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def s_client(port, *args, data=REQUEST, timeout=10):
    """openssl s_client's output for one request on a new connection."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof"]
                       + list(args), input=data, capture_output=True, timeout=timeout)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.a = p.server("a.test")
    p.b = p.server("b.test")
    p.local = p.server("127.0.0.1", stem="local")
    p.alice = p.client("alice")
    p.mallory = p.other_ca_client("mallory")
    return p


@pytest.fixture(scope="module")
def gw(module_procs, pki):
    p = module_procs
    backend = p.backend("plain")
    port = harness.free_port()
    mtls_port = harness.free_port()
    optional_port = harness.free_port()
    variables = {"header_rewrite": {"response_set": {
        "X-Scheme": "$scheme", "X-Proto": "$ssl_protocol", "X-Cipher": "$ssl_cipher",
        "X-SNI": "$ssl_server_name", "X-DN": "$ssl_client_s_dn"}}}
    text = config(
        main_block(workers=2),
        plugin_block("header_rewrite"),
        plugin_block("round_robin"),
        upstream_block("plain", [backend.port]),
        server_block([port], [
            {"path": "/api/", "upstream": "plain"},
            {"path": "/", "return": {"status": 200, "body": "hello a\n"}},
        ], server_name=["a.test"], tls={"cert": pki.a.cert, "key": pki.a.key},
            client_header_timeout="%ds" % HEADER_TIMEOUT_S, plugins=variables),
        server_block([port], [
            {"path": "/", "return": {"status": 200, "body": "hello b\n"}},
        ], server_name=["b.test"], tls={"cert": pki.b.cert, "key": pki.b.key}),
        server_block([mtls_port], [
            {"path": "/", "return": {"status": 200, "body": "hello client\n"}},
        ], tls={"cert": pki.a.cert, "key": pki.a.key, "client_ca": pki.ca,
                "verify_client": "on"}, plugins=variables),
        server_block([optional_port], [
            {"path": "/", "return": {"status": 200, "body": "hello maybe\n"}},
        ], tls={"cert": pki.a.cert, "key": pki.a.key, "client_ca": pki.ca,
                "verify_client": "optional"}, plugins=variables),
    )
    t = p.torii(text)
    assert harness.wait_until(lambda: len(t.pids()) >= 3, 5.0)
    return types.SimpleNamespace(port=port, mtls_port=mtls_port, optional_port=optional_port,
                                 torii=t, backend=backend)


def resolve(name, port):
    return ["--resolve", "%s:%d:127.0.0.1" % (name, port)]


def test_sni_picks_each_servers_certificate(gw, pki):
    for name, body in (("a.test", "hello a\n"), ("b.test", "hello b\n")):
        rc, out, err = curl("--cacert", pki.ca, *resolve(name, gw.port),
                            "https://%s:%d/" % (name, gw.port))
        assert rc == 0, err  # verified against the CA for that very name
        assert out == body


def test_unknown_or_missing_sni_gets_the_default_certificate(gw, pki):
    out = s_client(gw.port, "-servername", "nobody.test", "-CAfile", pki.ca)
    assert "subject=CN = a.test" in out
    out = s_client(gw.port, "-noservername", "-CAfile", pki.ca)
    assert "subject=CN = a.test" in out


def test_alpn_and_protocol_versions(gw, pki):
    # The server's order (alpn = ["h2", "http/1.1"]) wins; a client of http/1.1 only gets it.
    out = s_client(gw.port, "-servername", "a.test", "-alpn", "http/1.1,h2", "-CAfile", pki.ca)
    assert "ALPN protocol: h2" in out
    out = s_client(gw.port, "-servername", "a.test", "-alpn", "http/1.1", "-CAfile", pki.ca)
    assert "ALPN protocol: http/1.1" in out
    assert "hello a" in out
    out = s_client(gw.port, "-servername", "a.test", "-tls1_2", "-CAfile", pki.ca)
    assert "Protocol  : TLSv1.2" in out and "hello a" in out
    out = s_client(gw.port, "-servername", "a.test", "-tls1_3", "-CAfile", pki.ca)
    assert "Protocol  : TLSv1.3" in out and "hello a" in out
    out = s_client(gw.port, "-servername", "a.test", "-tls1_1", "-CAfile", pki.ca)
    assert "hello a" not in out  # TLS 1.1 is refused


def test_tls_variables_and_scheme(gw, pki):
    rc, out, err = curl("-i", "--tlsv1.3", "--cacert", pki.ca, *resolve("a.test", gw.port),
                        "https://a.test:%d/" % gw.port)
    assert rc == 0, err
    head = out.lower()
    assert "x-scheme: https" in head
    assert "x-proto: tlsv1.3" in head
    assert "x-sni: a.test" in head
    assert "x-cipher: tls_" in head


def test_proxied_request_says_https(gw, pki):
    rc, out, err = curl("--cacert", pki.ca, *resolve("a.test", gw.port),
                        "https://a.test:%d/api/echo" % gw.port)
    assert rc == 0, err
    doc = json.loads(out)
    headers = {k.lower(): v for k, v in doc["headers"]}
    assert headers["x-forwarded-proto"] == "https"


def test_ticket_resumption_across_workers_and_reload(gw, pki, tmp_path):
    sess = str(tmp_path / "session.pem")
    out = s_client(gw.port, "-servername", "a.test", "-CAfile", pki.ca, "-sess_out", sess)
    assert "New, TLSv1.3" in out and os.path.getsize(sess) > 0
    # Two workers: eight connections reach both; each resumes with the same ticket.
    for _ in range(8):
        out = s_client(gw.port, "-servername", "a.test", "-CAfile", pki.ca, "-sess_in", sess)
        assert "Reused, TLSv1.3" in out, out[-800:]
        assert "hello a" in out
    workers_before = set(gw.torii.pids()) - {gw.torii.pid}
    os.kill(gw.torii.pid, signal.SIGHUP)
    assert harness.wait_until(
        lambda: (set(gw.torii.pids()) - {gw.torii.pid}).isdisjoint(workers_before)
        and len(gw.torii.pids()) >= 3, 10.0), "the reload did not replace the workers"
    for _ in range(4):
        out = s_client(gw.port, "-servername", "a.test", "-CAfile", pki.ca, "-sess_in", sess)
        assert "Reused, TLSv1.3" in out, "no resumption after a reload:\n" + out[-800:]


def test_plain_http_to_tls_port_gets_400(gw):
    res = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", timeout=5)
    r = harness.parse_response(res)
    assert r.status == 400
    assert b"plain HTTP request was sent to HTTPS port" in r.body
    assert res.closed


def test_stalled_handshake_is_cut_at_client_header_timeout(gw):
    for first in (b"", b"\x16\x03\x01"):  # silent, and a ClientHello that never ends
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            t0 = time.monotonic()
            if first:
                s.sendall(first)
            s.settimeout(HEADER_TIMEOUT_S + 3)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            elapsed = time.monotonic() - t0
        assert data == b"", data
        assert HEADER_TIMEOUT_S - 0.2 <= elapsed <= HEADER_TIMEOUT_S + 2, elapsed


def test_mtls_accepts_a_client_of_the_ca(gw, pki):
    rc, out, err = curl("-i", "--cacert", pki.ca, "--cert", pki.alice.cert, "--key",
                        pki.alice.key, *resolve("a.test", gw.mtls_port),
                        "https://a.test:%d/" % gw.mtls_port)
    assert rc == 0, err
    assert "hello client" in out
    assert "x-dn: cn=alice" in out.lower()


def test_mtls_refuses_no_or_untrusted_client_certificate(gw, pki):
    rc, out, _ = curl("--cacert", pki.ca, *resolve("a.test", gw.mtls_port),
                      "https://a.test:%d/" % gw.mtls_port)
    assert rc != 0 and "hello" not in out
    rc, out, _ = curl("--cacert", pki.ca, "--cert", pki.mallory.cert, "--key", pki.mallory.key,
                      *resolve("a.test", gw.mtls_port), "https://a.test:%d/" % gw.mtls_port)
    assert rc != 0 and "hello" not in out


def test_mtls_optional(gw, pki):
    rc, out, err = curl("-i", "--cacert", pki.ca, *resolve("a.test", gw.optional_port),
                        "https://a.test:%d/" % gw.optional_port)
    assert rc == 0 and "hello maybe" in out, err
    assert "x-dn: cn=" not in out.lower()  # no certificate, no subject
    rc, out, err = curl("-i", "--cacert", pki.ca, "--cert", pki.alice.cert, "--key",
                        pki.alice.key, *resolve("a.test", gw.optional_port),
                        "https://a.test:%d/" % gw.optional_port)
    assert rc == 0 and "x-dn: cn=alice" in out.lower(), err
    rc, out, _ = curl("--cacert", pki.ca, "--cert", pki.mallory.cert, "--key", pki.mallory.key,
                      *resolve("a.test", gw.optional_port),
                      "https://a.test:%d/" % gw.optional_port)
    assert rc != 0, "an untrusted certificate was accepted"


def test_worker_alive_after_tls_abuse(gw, pki):
    rc, out, _ = curl("--cacert", pki.ca, *resolve("b.test", gw.port),
                      "https://b.test:%d/" % gw.port)
    assert rc == 0 and out == "hello b\n"
    assert gw.torii.alive()


# ---- upstreams over TLS ----------------------------------------------------------------------

def tls_backend(procs, pki, cert, client_ca=None):
    args = ["--tls-cert", cert.cert, "--tls-key", cert.key]
    if client_ca:
        args += ["--tls-client-ca", client_ca]
    return procs.backend("tls", extra_args=args)


def test_upstream_tls_verified_pooled_and_resumed(procs, pki):
    b = tls_backend(procs, pki, pki.local)
    named = tls_backend(procs, pki, pki.a)
    port = harness.free_port()
    t = procs.torii(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("ip", [b.port], tls={"ca": pki.ca}),
        upstream_block("named", [named.port], tls={"ca": pki.ca, "sni": "a.test"}),
        upstream_block("wrong", [named.port], tls={"ca": pki.ca, "sni": "b.test"}),
        upstream_block("untrusted", [named.port], tls={"sni": "a.test"}),  # system CAs only
        upstream_block("noverify", [named.port], tls={"verify": False}),
        upstream_block("fresh", [b.port], tls={"ca": pki.ca}, keepalive=0),
        server_block([port], [
            {"path": "/ip/", "upstream": "ip"},
            {"path": "/named/", "upstream": "named"},
            {"path": "/wrong/", "upstream": "wrong"},
            {"path": "/untrusted/", "upstream": "untrusted"},
            {"path": "/noverify/", "upstream": "noverify"},
            {"path": "/fresh/", "upstream": "fresh"},
        ]),
    ))
    for _ in range(5):
        r = harness.request(port, "GET", "/ip/echo")
        assert r.status == 200
        assert r.json()["tls"]["version"].startswith("TLSv1.")
    accepted = harness.request(port, "GET", "/ip/__connections").json()["accepted"]
    assert accepted <= 2, "TLS connections to the target were not pooled"
    r = harness.request(port, "GET", "/named/echo")
    assert r.status == 200 and r.json()["tls"]["server_name"] == "a.test"
    r = harness.request(port, "GET", "/noverify/echo")
    assert r.status == 200
    # Without pooling every request is a new connection: the second resumes the session.
    first = harness.request(port, "GET", "/fresh/echo").json()
    again = harness.request(port, "GET", "/fresh/echo").json()
    assert first["conn_id"] != again["conn_id"]
    assert again["tls"]["session_reused"], "no TLS session resumption toward the target"
    # A name the certificate does not carry, or a CA torii does not trust: 502, and why.
    for path, reason in (("/wrong/echo", "hostname mismatch"),
                         ("/untrusted/echo", "unable to get local issuer certificate")):
        r = harness.request(port, "GET", path)
        assert r.status == 502, path
        assert harness.wait_until(lambda: reason in t.log(), 3.0), t.log()[-2000:]


def test_upstream_demanding_a_client_certificate(procs, pki):
    b = tls_backend(procs, pki, pki.local, client_ca=pki.ca)
    port = harness.free_port()
    procs.torii(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("with", [b.port], tls={"ca": pki.ca, "cert": pki.alice.cert,
                                              "key": pki.alice.key}),
        upstream_block("without", [b.port], tls={"ca": pki.ca}, retries=0),
        server_block([port], [
            {"path": "/with/", "upstream": "with"},
            {"path": "/without/", "upstream": "without"},
        ]),
    ))
    r = harness.request(port, "GET", "/with/echo")
    assert r.status == 200
    assert r.json()["tls"]["client_subject"] == "commonName=alice"
    assert harness.request(port, "GET", "/without/echo").status == 502


# ---- configuration and reload ---------------------------------------------------------------

def test_certificate_errors_are_reported_by_t_with_their_place(tmp_path, pki):
    cases = {
        "missing": ('{ cert = "nope.pem", key = "nope.key" }', "tls.cert", "No such file"),
        "mismatch": ('{ cert = "%s", key = "%s" }' % (pki.a.cert, pki.b.key), "tls.key",
                     "mismatch"),
        "garbage": ('{ cert = "%s", key = "%s" }' % (pki.a.key, pki.a.key), "tls.cert", ""),
    }
    for name, (table, key, why) in cases.items():
        path = tmp_path / ("%s.toml" % name)
        path.write_text("[[server]]\nlisten = \"127.0.0.1:%d\"\ntls = %s\n[[server.location]]\n"
                        "path = \"/\"\nreturn = { status = 200 }\n" % (harness.free_port(), table))
        r = harness.run_torii(["-t", "-c", str(path)])
        assert r.returncode == 1, name
        assert "%s:3:" % path in r.stderr and key in r.stderr and why in r.stderr, r.stderr


def test_new_certificate_is_picked_up_by_a_reload(procs, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(open(pki.a.cert, "rb").read())
    key.write_bytes(open(pki.a.key, "rb").read())
    port = harness.free_port()
    t = procs.torii(config(
        main_block(),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "ok\n"}}],
                     tls={"cert": str(cert), "key": str(key)}),
    ))
    assert "subject=CN = a.test" in s_client(port, "-servername", "a.test")
    cert.write_bytes(open(pki.b.cert, "rb").read())
    key.write_bytes(open(pki.b.key, "rb").read())
    os.kill(t.pid, signal.SIGHUP)
    assert harness.wait_until(
        lambda: "subject=CN = b.test" in s_client(port, "-servername", "a.test"), 10.0)


def test_mixing_tls_and_plain_servers_on_one_address_is_refused(tmp_path, pki):
    port = harness.free_port()
    path = tmp_path / "mixed.toml"
    path.write_text(config(
        server_block([port], [{"path": "/", "return": {"status": 200}}],
                     tls={"cert": pki.a.cert, "key": pki.a.key}),
        server_block([port], [{"path": "/", "return": {"status": 200}}], server_name=["x"]),
    ))
    r = harness.run_torii(["-t", "-c", str(path)])
    assert r.returncode == 1
    assert "use TLS or none do" in r.stderr
