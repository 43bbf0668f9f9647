"""HTTP/2 toward clients: h2 over TLS by ALPN, h2c with prior knowledge on the HTTP/1.1
port, driven by curl, nghttp, h2load and raw frames (python3-h2). Each stream is an ordinary
exchange: plugins and the HTTP/1.1 upstream see a normal request."""

import hashlib
import json
import os
import socket
import subprocess
import types

import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block
from pki import Pki

KEY = "k-h2-1"


@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    p = module_procs
    work = tmp_path_factory.mktemp("h2")
    pki = Pki(str(work / "pki"))
    cert = pki.server("127.0.0.1", stem="local")
    b = p.backend("b")
    port = harness.free_port()
    tls_port = harness.free_port()
    locations = [
        {"path": "/api/", "upstream": "b"},
        {"path": "/key/", "upstream": "b",
         "plugins": {"auth": {"type": "key", "keys": [{"key": KEY, "consumer": "alice"}]},
                     "header_rewrite": {"request_set": {"X-Consumer": "$consumer"}}}},
        {"path": "/", "return": {"status": 200, "body": "hello h2\n"}},
    ]
    text = config(
        main_block(workers=2),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
        plugin_block("round_robin"),
        upstream_block("b", [b.port], keepalive=32),
        server_block([port], locations, http2_max_concurrent_streams=100,
                     client_max_body_size="16m"),
        server_block([tls_port], locations, tls={"cert": cert.cert, "key": cert.key},
                     client_max_body_size="16m"),
    )
    t = p.torii(text)
    big = work / "up.bin"
    big.write_bytes(os.urandom(10 * 1024 * 1024))
    return types.SimpleNamespace(port=port, tls_port=tls_port, torii=t, ca=pki.ca,
                                 big=str(big), work=str(work))


def curl(*args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args), capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def test_h2_over_tls_by_alpn(gw):
    rc, out, err = curl("-v", "--http2", "--cacert", gw.ca,
                        "https://127.0.0.1:%d/" % gw.tls_port)
    assert rc == 0, err
    assert "ALPN: server accepted h2" in err and "< HTTP/2 200" in err
    assert out == b"hello h2\n"


def test_h2c_prior_knowledge_and_http1_on_one_port(gw):
    rc, out, err = curl("-v", "--http2-prior-knowledge", "http://127.0.0.1:%d/api/x" % gw.port)
    assert rc == 0 and "< HTTP/2 200" in err, err
    doc = json.loads(out)
    assert doc["path"] == "/api/x" and doc["http_version"] == "HTTP/1.1"  # translated
    headers = {k.lower(): v for k, v in doc["headers"]}
    assert headers["host"] == "127.0.0.1:%d" % gw.port  # :authority became Host
    rc, out, _ = curl("http://127.0.0.1:%d/" % gw.port)
    assert rc == 0 and out == b"hello h2\n"  # HTTP/1.1 still served on the port


def test_plugins_see_h2_requests(gw):
    rc, out, err = curl("-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
                        "http://127.0.0.1:%d/key/x" % gw.port)
    assert out == b"401", err
    rc, out, err = curl("--http2-prior-knowledge", "-H", "X-API-Key: " + KEY,
                        "http://127.0.0.1:%d/key/x" % gw.port)
    headers = {k.lower(): v for k, v in json.loads(out)["headers"]}
    assert headers["x-consumer"] == "alice"


def test_10_mib_each_way(gw):
    rc, out, err = curl("--http2", "--cacert", gw.ca, "--data-binary", "@" + gw.big,
                        "https://127.0.0.1:%d/api/echo" % gw.tls_port)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["body_len"] == 10 * 1024 * 1024
    assert doc["body_sha256"] == hashlib.sha256(open(gw.big, "rb").read()).hexdigest()
    rc, out, err = curl("--http2", "--cacert", gw.ca,
                        "https://127.0.0.1:%d/api/bytes?n=%d" % (gw.tls_port, 10 * 1024 * 1024))
    assert rc == 0, err
    assert len(out) == 10 * 1024 * 1024
    assert hashlib.sha256(out).hexdigest() == harness.pattern_sha256(10 * 1024 * 1024)


def test_nghttp_100_concurrent_streams(gw):
    r = subprocess.run(["nghttp", "-n", "-s", "-m", "100",
                        "http://127.0.0.1:%d/api/echo" % gw.port],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # -s prints one line per stream: all 100 answered on one connection
    lines = [ln for ln in r.stdout.splitlines() if "/api/echo" in ln]
    assert len(lines) == 100, r.stdout[-2000:]


@pytest.mark.parametrize("scheme", ["h2c", "h2"])
def test_h2load_10000_requests_10_connections(gw, scheme):
    url = ("http://127.0.0.1:%d/api/echo" % gw.port if scheme == "h2c"
           else "https://127.0.0.1:%d/api/echo" % gw.tls_port)
    r = subprocess.run(["h2load", "-n", "10000", "-c", "10", "-m", "10", url],
                       capture_output=True, text=True, timeout=120)
    assert "10000 succeeded, 0 failed, 0 errored, 0 timeout" in r.stdout, r.stdout[-1500:]
    assert "status codes: 10000 2xx" in r.stdout


def raw_h2(port, frames_fn):
    """Opens an h2c connection with python3-h2, lets frames_fn(conn, sock) drive it, and
    returns the events received (bounded in time)."""
    import h2.config
    import h2.connection
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                               validate_outbound_headers=False,
                                                               normalize_outbound_headers=False))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    events = []
    try:
        frames_fn(conn, s)
        s.sendall(conn.data_to_send())
        s.settimeout(2)
        for _ in range(50):
            data = s.recv(65536)
            if not data:
                break
            events += conn.receive_data(data)
            s.sendall(conn.data_to_send())
            if any(type(e).__name__ in ("StreamEnded", "StreamReset") for e in events) and \
                    sum(type(e).__name__ in ("StreamEnded", "StreamReset") for e in events) >= 2:
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return events


def test_bad_stream_is_reset_and_the_connection_lives(gw):
    def frames(conn, s):
        # A connection-specific field is malformed in HTTP/2 (RFC 9113 8.2.2): stream 1 is
        # reset; stream 3 on the same connection is answered.
        conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "h"), ("connection", "keep-alive")],
                          end_stream=True)
        conn.send_headers(3, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "h")], end_stream=True)
    events = raw_h2(gw.port, frames)
    names = [(type(e).__name__, getattr(e, "stream_id", None)) for e in events]
    assert ("StreamReset", 1) in names, names
    answered = [e for e in events if type(e).__name__ == "ResponseReceived"
                and e.stream_id == 3]
    assert answered and dict(answered[0].headers)[b":status"] == b"200", names


def test_workers_alive(gw):
    assert gw.torii.alive()
    assert len(gw.torii.pids()) >= 3


def test_body_without_length_goes_chunked_to_http1(gw):
    def frames(conn, s):
        conn.send_headers(1, [(":method", "POST"), (":path", "/api/echo"), (":scheme", "http"),
                              (":authority", "h")])
        conn.send_data(1, b"hello ")
        conn.send_data(1, b"world", end_stream=True)
    events = raw_h2(gw.port, frames)
    body = b"".join(e.data for e in events if type(e).__name__ == "DataReceived")
    doc = json.loads(body)
    assert doc["chunked"] and doc["body_len"] == 11, doc


def test_reload_under_h2load_fails_nothing(gw):
    # h2load opens no stream on a connection after any GOAWAY and does not reconnect: the
    # old generation serves its connections on until the client pauses (or shortly before
    # shutdown_timeout), so a run across a reload loses nothing.
    load = subprocess.Popen(["h2load", "-n", "20000", "-c", "10", "-m", "10",
                             "http://127.0.0.1:%d/api/echo" % gw.port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harness.wait_until(lambda: False, 0.5)  # under way
    before = set(gw.torii.pids()) - {gw.torii.pid}
    os.kill(gw.torii.pid, __import__("signal").SIGHUP)
    out, err = load.communicate(timeout=120)
    assert "20000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out[-1500:] + err
    # Once h2load is done, the old workers' connections go idle, get their GOAWAY and the
    # old generation is gone; new connections reach the new one.
    assert harness.wait_until(
        lambda: (set(gw.torii.pids()) - {gw.torii.pid}).isdisjoint(before), 10.0)
    rc, body, err = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/" % gw.port)
    assert body == b"hello h2\n", err


def test_stream_in_flight_survives_a_reload(gw):
    slow = subprocess.Popen(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge",
                             "-o", "/dev/null", "-w", "%{http_code}",
                             "http://127.0.0.1:%d/api/slow?ms=1500" % gw.port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    harness.wait_until(lambda: False, 0.3)  # the request is under way
    before = set(gw.torii.pids()) - {gw.torii.pid}
    os.kill(gw.torii.pid, __import__("signal").SIGHUP)
    out, err = slow.communicate(timeout=30)
    assert out == b"200", err  # finished on the old generation (GOAWAY, not a reset)
    assert harness.wait_until(
        lambda: (set(gw.torii.pids()) - {gw.torii.pid}).isdisjoint(before), 10.0)
    rc, body, err = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/" % gw.port)
    assert body == b"hello h2\n", err
