"""A timeout that is switched off stays off (SPEC section 7, slow peers: a timeout closes what
is slow, never what is not).

A socket's read and write timeouts change as an exchange goes on: client_body_timeout while
a request body comes, none between requests; connect_timeout over an upstream's TLS
handshake, none while a request body goes out to it. libevent keeps a persistent event's last
timeout: adding the event again without one left the old one armed, and each read re-armed
it. So

  - a GET on a keep-alive connection that had carried a POST was answered 408 at
    client_body_timeout while its upstream was still working on the answer;
  - an upload to a TLS upstream was cut with 504 at connect_timeout after the handshake.
"""

import hashlib
import json
import time

import pytest

import harness
from harness import RawConn, config, main_block, plugin_block, server_block, upstream_block
from pki import Pki


@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    p = module_procs
    pki = Pki(str(tmp_path_factory.mktemp("timeouts") / "pki"))
    cert = pki.server("127.0.0.1", stem="local")
    plain = p.backend("b")
    tls = p.backend("tls", extra_args=["--tls-cert", cert.cert, "--tls-key", cert.key])
    port = harness.free_port()
    p.torii(config(
        main_block(workers=1),
        plugin_block("round_robin"),
        upstream_block("b", [plain.port], read_timeout="10s"),
        upstream_block("tls", [tls.port], tls={"ca": pki.ca}, connect_timeout="1s",
                       read_timeout="10s"),
        server_block([port], [{"path": "/tls/", "upstream": "tls"},
                              {"path": "/", "upstream": "b"}],
                     client_body_timeout="1s"),
    ))
    return port


def test_a_request_after_one_with_a_body_waits_for_its_slow_upstream(gw):
    with RawConn(gw, timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello")
        assert c.read_response().status == 200
        # client_body_timeout (1 s) was the read timeout while that body came; this GET has
        # none, and its upstream answers after 2.5 s, within read_timeout (10 s).
        t0 = time.monotonic()
        c.send(b"GET /slow?ms=2500 HTTP/1.1\r\nHost: gw\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, (r.status, round(time.monotonic() - t0, 1), r.body[:80])


def test_an_upload_to_a_tls_upstream_outlasts_connect_timeout(gw):
    with RawConn(gw, timeout=10) as c:
        c.send(b"POST /tls/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 16\r\n\r\n")
        # 2.4 s of body, a piece every 0.6 s (within client_body_timeout): the upstream's
        # TLS handshake was bounded by connect_timeout (1 s), its upload is not.
        t0 = time.monotonic()
        for piece in (b"abcd", b"efgh", b"ijkl", b"mnop"):
            time.sleep(0.6)
            c.send(piece)
        r = c.read_response()
        assert r.status == 200, (r.status, round(time.monotonic() - t0, 1), r.body[:80])
        echo = json.loads(r.body)
        assert echo["body_len"] == 16
        assert echo["body_sha256"] == hashlib.sha256(b"abcdefghijklmnop").hexdigest()
