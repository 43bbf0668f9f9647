"""gRPC end to end through torii: Debian's python3-grpcio client -> torii (HTTP/2 with prior
knowledge) -> python3-grpcio server behind an h2c upstream. All four call kinds, status and
trailing metadata (binary too), and balancing per call over multiplexed sessions."""

import os
import types

import grpc
import pytest

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    g1 = p.backend("g1", script="grpc_backend.py")
    g2 = p.backend("g2", script="grpc_backend.py")
    port = harness.free_port()
    admin = harness.free_port()
    t = p.torii(config(
        main_block(admin_port=admin),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
        plugin_block("ratelimit"),
        plugin_block("round_robin"),
        plugin_block("stats"),
        plugin_block("pause_timer", path=harness.test_plugin_dir() + "/pause_timer.so"),
        upstream_block("grpc", [g1.port, g2.port], protocol="h2c", read_timeout="10s"),
        upstream_block("down", [harness.free_port()], protocol="h2c", retries=0),
        server_block([port], [
            {"path": "/test.Echo/", "upstream": "grpc"},
            # 300 ms spent in torii before the call goes out (a plugin pauses it)
            {"path": "/test.Echo/Deadline", "match": "exact", "upstream": "grpc",
             "plugins": {"pause_timer": {"delay": "300ms"}}},
            {"path": "/down.Svc/", "upstream": "down",
             "plugins": {"header_rewrite": {"response_set": {
                 "x-seen-status": "$grpc_status", "x-seen-protocol": "$server_protocol"}}}},
            {"path": "/auth.Svc/", "upstream": "grpc",
             "plugins": {"auth": {"type": "key", "keys": [{"key": "k1", "consumer": "a"}]}}},
            {"path": "/limited.Svc/", "upstream": "grpc",
             "plugins": {"ratelimit": {"rate": 1, "period": "1h", "burst": 1,
                                       "key": "$remote_addr"}}},
        ], plugins={"stats": {}}),
    ))
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield types.SimpleNamespace(port=port, admin=admin, torii=t, channel=channel)
    channel.close()


def method(gw, kind, name):
    return getattr(gw.channel, kind)("/test.Echo/" + name)


def test_unary(gw):
    call = method(gw, "unary_unary", "Unary")
    response, info = call.with_call(b"hello", timeout=10)
    assert response == b"hello"
    assert ("served-by", "grpc-backend") in info.trailing_metadata()


def test_error_status_and_binary_trailing_metadata_pass_through(gw):
    call = method(gw, "unary_unary", "Unary")
    with pytest.raises(grpc.RpcError) as e:
        call(b"fail", timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "told to fail"
    assert ("why-bin", b"\x00\x01") in e.value.trailing_metadata()


def test_server_streaming(gw):
    replies = list(method(gw, "unary_stream", "ServerStream")(b"50", timeout=10))
    assert replies == [str(i).encode() for i in range(50)]


def test_client_streaming(gw):
    parts = [b"x" * 1000 + str(i).encode() for i in range(100)]
    assert method(gw, "stream_unary", "ClientStream")(iter(parts), timeout=10) == b"".join(parts)


def test_bidi_streaming(gw):
    parts = [str(i).encode() * 10 for i in range(200)]
    assert list(method(gw, "stream_stream", "Bidi")(iter(parts), timeout=10)) == parts


def test_many_concurrent_calls(gw):
    call = method(gw, "unary_unary", "Unary")
    futures = [call.future(b"n%d" % i, timeout=20) for i in range(200)]
    assert [f.result() for f in futures] == [b"n%d" % i for i in range(200)]


def test_client_deadline(gw):
    with pytest.raises(grpc.RpcError) as e:
        method(gw, "unary_unary", "Slow")(b"late", timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the connection is still good afterwards
    assert method(gw, "unary_unary", "Unary")(b"after", timeout=10) == b"after"


# torii's own answers on gRPC calls are gRPC statuses, not HTTP errors (Envoy's mapping).
@pytest.mark.parametrize("path,code", [
    ("/down.Svc/M", grpc.StatusCode.UNAVAILABLE),          # 502: no target answers
    ("/auth.Svc/M", grpc.StatusCode.UNAUTHENTICATED),      # 401 from the auth plugin
    ("/nowhere.Svc/M", grpc.StatusCode.UNIMPLEMENTED),     # 404: no location
])
def test_torii_answers_in_grpc_form(gw, path, code):
    with pytest.raises(grpc.RpcError) as e:
        gw.channel.unary_unary(path)(b"x", timeout=10)
    assert e.value.code() == code, e.value.details()
    assert e.value.details()  # grpc-message says why


def test_rate_limited_call_is_resource_exhausted(gw):
    call = gw.channel.unary_unary("/limited.Svc/M")
    codes = []
    for _ in range(3):
        try:
            call(b"x", timeout=10)
            codes.append("ok")
        except grpc.RpcError as e:
            codes.append(e.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes


def test_deadline_reaches_the_server_reduced(gw):
    left = float(method(gw, "unary_unary", "Deadline")(b"", timeout=5))
    # grpc-timeout went on, reduced by the 300 ms the call spent in torii
    assert 3.5 < left < 4.75, left


def test_deadline_is_enforced_at_torii(gw):
    # A client that sends grpc-timeout but does not enforce it itself: torii answers
    # DEADLINE_EXCEEDED in gRPC form when the 300 ms are up, not the server's 2 s later.
    import socket
    import time
    import h2.config
    import h2.connection
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", "/test.Echo/Slow"), (":scheme", "http"),
                          (":authority", "h"), ("content-type", "application/grpc"),
                          ("te", "trailers"), ("grpc-timeout", "300m")])
    conn.send_data(1, b"\x00\x00\x00\x00\x01x", end_stream=True)
    s.sendall(conn.data_to_send())
    t0 = time.monotonic()
    headers = {}
    ended = False
    while not ended and time.monotonic() - t0 < 5:
        data = s.recv(65536)
        if not data:
            break
        for e in conn.receive_data(data):
            if type(e).__name__ in ("ResponseReceived", "TrailersReceived"):
                headers.update(dict(e.headers))
            if type(e).__name__ in ("StreamEnded", "StreamReset"):
                ended = True
        s.sendall(conn.data_to_send())
    elapsed = time.monotonic() - t0
    s.close()
    assert headers.get(b"grpc-status") == b"4", headers  # DEADLINE_EXCEEDED
    assert elapsed < 1.5, elapsed


def test_grpc_status_and_protocol_variables(gw):
    with pytest.raises(grpc.RpcError) as e:
        gw.channel.unary_unary("/down.Svc/M")(b"x", timeout=10)
    md = dict(e.value.trailing_metadata())  # a trailers-only answer: its head is the trailers
    assert md.get("x-seen-status") == "14" and md.get("x-seen-protocol") == "HTTP/2.0", md


def test_client_cancel_reaches_the_server(gw):
    import time
    future = method(gw, "unary_unary", "Wait").future(b"", timeout=20)
    time.sleep(0.5)
    future.cancel()
    # Both backends are asked (calls are balanced per call): the cancel reached one of them.
    def seen():
        return sum(int(method(gw, "unary_unary", "Cancels")(b"", timeout=5)) for _ in range(4))
    deadline = time.monotonic() + 5
    while seen() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seen() >= 1, "the server never saw the client's cancel"



def test_expired_deadlines_are_not_held_against_the_target(procs):
    # Passive health's defaults (max_fails 1, fail_timeout 10 s): one timeout of a target
    # marks it down. A call whose own deadline runs out at torii is the client's choice, not
    # the target's failure: after one such call on each of two targets (round robin; plain
    # HTTP/1.1 backends that take 2 s and know nothing of deadlines, so torii's clock is the
    # one that runs out), both are still up and the next request is served, not refused for
    # want of a healthy target.
    import http.client
    import socket
    import time
    import h2.config
    import h2.connection
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    port = harness.free_port()
    procs.torii(config(main_block(), plugin_block("round_robin"),
                       upstream_block("two", [b1.port, b2.port], read_timeout="10s",
                                      retries=0),
                       server_block([port], [{"path": "/", "upstream": "two"}])))
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/svc/slow?ms=2000"),
                              (":scheme", "http"), (":authority", "h"),
                              ("content-type", "application/grpc"), ("te", "trailers"),
                              ("grpc-timeout", "200m")])
        conn.send_data(1, b"\x00\x00\x00\x00\x01x", end_stream=True)
        s.sendall(conn.data_to_send())
        headers, t0 = {}, time.monotonic()
        while b"grpc-status" not in headers and time.monotonic() - t0 < 5:
            data = s.recv(65536)
            if not data:
                break
            for e in conn.receive_data(data):
                if type(e).__name__ in ("ResponseReceived", "TrailersReceived"):
                    headers.update(dict(e.headers))
        s.close()
        assert headers.get(b"grpc-status") == b"4", headers  # DEADLINE_EXCEEDED
    for _ in range(2):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/svc/fast")
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 200, r.status


def test_bidi_stream_and_calls_across_three_reloads(gw):
    # A long bidi stream stays on the generation it started on and keeps echoing through
    # three reloads; calls made meanwhile on the same channel all succeed (the old worker
    # serves its busy connection on rather than refusing streams with a GOAWAY).
    import queue
    import signal
    outgoing = queue.Queue()

    def requests():
        while True:
            item = outgoing.get(timeout=30)
            if item is None:
                return
            yield item

    responses = method(gw, "stream_stream", "Bidi")(requests(), timeout=60)
    unary = method(gw, "unary_unary", "Unary")
    for reload in range(3):
        for i in range(5):
            msg = b"r%d-m%d" % (reload, i)
            outgoing.put(msg)
            assert next(responses) == msg
            assert unary(msg, timeout=10) == msg
        workers = set(gw.torii.pids()) - {gw.torii.pid}
        os.kill(gw.torii.pid, signal.SIGHUP)
        assert harness.wait_until(
            lambda: len((set(gw.torii.pids()) - {gw.torii.pid}) - workers) >= 1, 10.0)
    outgoing.put(b"last")
    assert next(responses) == b"last"
    outgoing.put(None)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def grpc_calls(gw):
    """{(location, grpc_status): count} from the stats plugin's /metrics."""
    from test_stats import parse_metrics
    r = harness.request(gw.admin, "GET", "/metrics")
    assert r.status == 200
    m = parse_metrics(r.body)
    assert m.families["torii_grpc_calls_total"]["type"] == "counter"
    return {(labels["location"], labels["grpc_status"]): v
            for labels, v in m.find("torii_grpc_calls_total")}


def test_stats_counts_calls_by_grpc_status(gw):
    before = grpc_calls(gw)
    call = method(gw, "unary_unary", "Unary")
    for _ in range(3):
        assert call(b"ok", timeout=10) == b"ok"  # OK (0), in the upstream's trailers
    with pytest.raises(grpc.RpcError):
        call(b"fail", timeout=10)  # INVALID_ARGUMENT (3), from the server
    with pytest.raises(grpc.RpcError):
        gw.channel.unary_unary("/down.Svc/M")(b"x", timeout=10)  # UNAVAILABLE (14), torii's
    future = method(gw, "unary_unary", "Wait").future(b"", timeout=20)
    import time
    time.sleep(0.3)
    future.cancel()  # a call that ends without a status

    def changed():
        after = grpc_calls(gw)
        return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    want = {("/test.Echo/", "0"): 3, ("/test.Echo/", "3"): 1, ("/down.Svc/", "14"): 1,
            ("/test.Echo/", "none"): 1}
    assert harness.wait_until(lambda: changed() == want, 5.0), changed()
