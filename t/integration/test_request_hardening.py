"""What a client sends that a backend could read differently from torii (docs/reliability.md).

Header lines nginx refuses are refused before anything is forwarded: a recording upstream
shows the exact bytes it got (none). Paths are normalised before a location is chosen, so
no spelling of a protected path walks past auth: a WSGI application (wsgiref, which decodes
paths and maps '_' to '-') shows what it was asked for. Headers the client must not control
(Connection-named fields, names with '_') never override what torii or a plugin sets."""

import json
import types

import pytest

import harness
from harness import config, main_block, plugin_block, raw_request, server_block, \
    upstream_block
from recording_backend import RecordingBackend

KEY = "k-hardening-1"


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    rec = RecordingBackend(harness.free_port()).start()
    wsgi = p.backend("wsgi", script="wsgi_backend.py")
    port = harness.free_port()
    open_port = harness.free_port()  # a server that allows '_' in header names
    auth = {"auth": {"type": "key", "keys": [{"key": KEY, "consumer": "alice"}]}}
    consumer = {"header_rewrite": {"request_set": {"X-Consumer": "$consumer"}}}
    text = config(
        main_block(),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
        plugin_block("round_robin"),
        upstream_block("rec", [rec.port], keepalive=0, balancer="round_robin"),
        upstream_block("wsgi", [wsgi.port], keepalive=0, balancer="round_robin"),
        server_block([port], [
            {"path": "/rec/", "upstream": "rec"},
            {"path": "/wsgi/admin/", "upstream": "wsgi", "plugins": dict(auth, **consumer)},
            {"path": "/wsgi/", "upstream": "wsgi"},
            {"path": "/key/", "upstream": "wsgi", "plugins": dict(auth, **consumer)},
            {"path": "/", "upstream": "wsgi"},
        ], client_header_timeout="2s"),
        server_block([open_port], [
            {"path": "/", "upstream": "wsgi"},
        ], underscores_in_headers=True),
    )
    t = p.torii(text)
    yield types.SimpleNamespace(port=port, open_port=open_port, rec=rec, torii=t)
    rec.stop()


def status_of(raw):
    assert raw, "no answer"
    return harness.parse_response(raw).status


def wsgi_seen(raw):
    r = harness.parse_response(raw)
    assert r.status == 200, raw[:300]
    return json.loads(r.body)


# Each row: a request torii must refuse, and the status. Nothing may reach the upstream.
REFUSED = {
    "space_in_name": (b"GET /rec/a HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400),
    "space_before_colon": (b"GET /rec/a HTTP/1.1\r\nHost: h\r\nName : v\r\n\r\n", 400),
    # found by t/fuzz/http1_request_fuzz.cc: llhttp takes ": v" as a field with no name
    "empty_name": (b"GET /rec/a HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400),
    "spoofed_xff_with_space": (
        b"GET /rec/a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For : 1.2.3.4\r\n\r\n", 400),
    "two_equal_hosts": (b"GET /rec/a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400),
    "two_different_hosts": (b"GET /rec/a HTTP/1.1\r\nHost: h\r\nHost: evil\r\n\r\n", 400),
    "http10_with_transfer_encoding": (
        b"POST /rec/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    "unknown_transfer_coding": (
        b"POST /rec/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    "gzip_then_chunked": (
        b"POST /rec/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"0\r\n\r\n", 501),
    "host_with_slash": (b"GET /rec/a HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    "path_above_root": (b"GET /rec/../../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "encoded_nul": (b"GET /rec/a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "broken_escape": (b"GET /rec/a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_before_anything_is_forwarded(gw, name):
    wire, status = REFUSED[name]
    gw.rec.clear()
    res = raw_request(gw.port, wire, timeout=5)
    assert status_of(res) == status
    assert res.closed, "connection left open after %d" % status
    assert gw.rec.settle() == b"", "the upstream received bytes of a refused request"


def test_absolute_form_target_replaces_host(gw):
    gw.rec.clear()
    res = raw_request(gw.port, b"GET http://good.example/rec/a?x=1 HTTP/1.1\r\n"
                               b"Host: evil.example\r\nConnection: close\r\n\r\n")
    assert status_of(res) == 200
    got = gw.rec.settle()
    assert got.startswith(b"GET /rec/a?x=1 HTTP/1.1\r\n"), got[:200]
    hosts = [line for line in got.split(b"\r\n") if line.lower().startswith(b"host:")]
    assert hosts == [b"Host: good.example"], got


def test_obs_fold_reaches_upstream_as_one_line(gw):
    gw.rec.clear()
    res = raw_request(gw.port, b"GET /rec/a HTTP/1.1\r\nHost: h\r\nX-Folded: one\r\n"
                               b"  two\r\nConnection: close\r\n\r\n")
    assert status_of(res) == 200
    got = gw.rec.settle()
    lines = got.split(b"\r\n")
    folded = [line for line in lines if line.lower().startswith(b"x-folded:")]
    assert len(folded) == 1 and b"one" in folded[0] and b"two" in folded[0], got
    assert not any(line.startswith((b" ", b"\t")) for line in lines), got


# Every spelling of a protected path is the protected location.
SPELLINGS = ["/wsgi/%61dmin/x", "/wsgi//admin/x", "/wsgi/./admin/x", "/wsgi/y/../admin/x",
             "//key/", "/./key/", "/x/../key/", "/%6Bey/", "/%6bey/x"]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_walks_past_auth(gw, path):
    res = raw_request(gw.port, b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                      % path.encode())
    assert status_of(res) == 401, "%s got past auth" % path


def test_normalised_path_is_what_the_application_gets(gw):
    res = raw_request(gw.port, b"GET /wsgi/%61dmin/./x//y/../z?q=%61 HTTP/1.1\r\nHost: h\r\n"
                               b"X-API-Key: " + KEY.encode() + b"\r\nConnection: close\r\n\r\n")
    doc = wsgi_seen(res)
    assert doc["raw_uri"] == "/wsgi/admin/x/z?q=%61"
    assert doc["path_info"] == "/wsgi/admin/x/z"
    assert doc["headers"]["HTTP_X_CONSUMER"] == "alice"


def test_reserved_escapes_stay_encoded(gw):
    res = raw_request(gw.port, b"GET /wsgi/a%2Fb HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert wsgi_seen(res)["raw_uri"] == "/wsgi/a%2Fb"


def test_connection_header_cannot_remove_what_a_plugin_sets(gw):
    res = raw_request(gw.port, b"GET /key/x HTTP/1.1\r\nHost: h\r\nX-API-Key: " + KEY.encode()
                      + b"\r\nConnection: close, X-Consumer, X-Forwarded-For, Host\r\n\r\n")
    doc = wsgi_seen(res)
    assert doc["headers"]["HTTP_X_CONSUMER"] == "alice"
    assert doc["headers"]["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert doc["headers"]["HTTP_HOST"] == "h"


def test_connection_named_client_field_is_not_forwarded(gw):
    res = raw_request(gw.port, b"GET /wsgi/x HTTP/1.1\r\nHost: h\r\nX-Hop: 1\r\n"
                               b"Connection: close, X-Hop\r\n\r\n")
    assert "HTTP_X_HOP" not in wsgi_seen(res)["headers"]


def test_underscore_header_cannot_pose_as_a_plugin_header(gw):
    res = raw_request(gw.port, b"GET /key/x HTTP/1.1\r\nHost: h\r\nX-API-Key: " + KEY.encode()
                      + b"\r\nX_Consumer: admin\r\nConnection: close\r\n\r\n")
    # A WSGI server maps X_Consumer to HTTP_X_CONSUMER too: it would read "admin,alice".
    assert wsgi_seen(res)["headers"]["HTTP_X_CONSUMER"] == "alice"


def test_underscores_in_headers_true_forwards_them(gw):
    res = raw_request(gw.open_port, b"GET /x HTTP/1.1\r\nHost: h\r\nX_Team: blue\r\n"
                                    b"Connection: close\r\n\r\n")
    assert wsgi_seen(res)["headers"]["HTTP_X_TEAM"] == "blue"


def test_worker_survived(gw):
    assert gw.torii.alive()
    res = raw_request(gw.port, b"GET /wsgi/ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert wsgi_seen(res)["path_info"] == "/wsgi/ok"
