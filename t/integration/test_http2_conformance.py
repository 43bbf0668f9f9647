"""HTTP/2 frame-level conformance (RFC 9113), driven with raw frames (h2_raw.py over Debian's
python3-hyperframe): stream states, flow control, header validation, SETTINGS values, frame
sizes, CONTINUATION and GOAWAY. Each test asserts the RFC's answer: a connection error is a
GOAWAY with the right code and the connection closes; a stream error is a RST_STREAM with
the right code and the connection goes on serving (a second request is answered).

The last tests check what reaches an HTTP/1.1 upstream (a recording backend): a request an
HTTP/1 parser could read differently from torii is refused, never forwarded."""

import json
import time
import types

import pytest
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

import harness
from h2_raw import (CANCEL, ENABLE_PUSH, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, INITIAL_WINDOW_SIZE,
                    MAX_FRAME_SIZE, NO_ERROR, PROTOCOL_ERROR, STREAM_CLOSED, H2Raw, block, get,
                    raw_frame)
from harness import config, main_block, plugin_block, server_block, upstream_block
from recording_backend import RecordingBackend

MAX_WINDOW = 2 ** 31 - 1
STREAM_WINDOW = 256 * 1024       # what torii advertises per stream
CONNECTION_WINDOW = 1024 * 1024  # and for the connection


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    b = p.backend("b")
    rec = RecordingBackend(harness.free_port()).start()
    port = harness.free_port()
    t = p.torii(config(
        main_block(),
        plugin_block("round_robin"),
        plugin_block("pause_timer", path=harness.test_plugin_dir() + "/pause_timer.so"),
        upstream_block("b", [b.port]),
        upstream_block("rec", [rec.port]),
        server_block([port], [
            {"path": "/api/", "upstream": "b"},
            # the request waits 3 s in the access phase: its body is not taken meanwhile
            {"path": "/paused/", "upstream": "b",
             "plugins": {"pause_timer": {"delay": "3s"}}},
            {"path": "/rec/", "upstream": "rec"},
            {"path": "/", "return": {"status": 200, "body": "ok\n"}},
        ], client_max_body_size="16m"),
    ))
    yield types.SimpleNamespace(port=port, torii=t, rec=rec)
    rec.stop()


@pytest.fixture
def c(gw):
    conn = H2Raw(gw.port)
    yield conn
    conn.close()


SLOW = "/api/slow?ms=1500"  # a stream that stays half-closed (remote) for a while


# ---- stream states (RFC 9113 5.1) -------------------------------------------------------------

def test_data_on_idle_stream_is_a_connection_error(c):
    c.send(c.data(1, b"x", end_stream=True))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_data_on_half_closed_remote_stream_is_stream_closed(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(c.data(1, b"late"))
    c.expect_stream_error(1, STREAM_CLOSED, next_sid=3, escalated=True)


def test_headers_on_half_closed_remote_stream_is_stream_closed(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(c.headers(1, [("x-trailer", "late")]))
    c.expect_stream_error(1, STREAM_CLOSED, next_sid=3, escalated=True)


def test_data_on_closed_stream(c):
    assert c.request(1) == 200
    c.send(c.data(1, b"after the end"))
    # 5.1 "closed": a connection error STREAM_CLOSED (MAY) or a stream error of that type
    f = c.wait(lambda f: isinstance(f, (GoAwayFrame, RstStreamFrame)), timeout=3)
    assert f is not None and f.error_code == STREAM_CLOSED, c.frames


def test_headers_reusing_a_closed_stream_id_is_a_connection_error(c):
    assert c.request(1) == 200
    c.send(c.headers(1, get()))
    g = c.goaway()
    assert g is not None and g.error_code in (PROTOCOL_ERROR, STREAM_CLOSED), c.frames
    assert c.wait_closed()


def test_stream_id_not_increasing_is_a_connection_error(c):
    c.send(c.headers(5, get(SLOW)))
    c.send(c.headers(3, get()))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_streams_256_ids_apart_each_get_their_own_frames(c):
    # Stream 1 stays open (its body unfinished) while 256 more come and go, then stream 513
    # opens: its id is as far from 1 as torii's table of streams by id is long
    # (http2_connection.h). Each must still get its own DATA and its own answer.
    c.send(c.headers(1, get("/api/echo", method="POST"), end_stream=False), c.data(1, b"a" * 10))
    for first in range(3, 513, 128):
        sids = range(first, min(first + 128, 513), 2)
        c.send(*[c.headers(sid, get()) for sid in sids])
        assert all(c.response(sid)[0] == 200 for sid in sids), c.frames[-5:]
    c.send(c.headers(513, get("/api/echo", method="POST"), end_stream=False),
           c.data(513, b"b" * 20, end_stream=True))
    status, _, body = c.response(513)
    assert status == 200 and json.loads(body)["body_len"] == 20
    c.send(c.data(1, b"a" * 5, end_stream=True))
    status, _, body = c.response(1)
    assert status == 200 and json.loads(body)["body_len"] == 15


def test_even_stream_id_from_client_is_a_connection_error(c):
    c.send(c.headers(2, get()))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_priority_self_dependency_is_a_stream_error(c):
    c.send(PriorityFrame(1, depends_on=1, stream_weight=16))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3, escalated=True)


def test_headers_priority_self_dependency_is_a_stream_error(c):
    c.send(HeadersFrame(1, block(get()), flags=["END_STREAM", "END_HEADERS", "PRIORITY"],
                        depends_on=1, stream_weight=16))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3, escalated=True)


def test_rst_stream_on_idle_stream_is_a_connection_error(c):
    c.send(RstStreamFrame(1, error_code=CANCEL))
    c.expect_connection_error(PROTOCOL_ERROR)


# ---- flow control (RFC 9113 5.2, 6.9) ---------------------------------------------------------

def test_connection_window_overflow(c):
    c.send(WindowUpdateFrame(0, window_increment=MAX_WINDOW))  # 65535 + that > 2^31-1
    c.expect_connection_error(FLOW_CONTROL_ERROR)


def test_stream_window_overflow_is_a_stream_error(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(WindowUpdateFrame(1, window_increment=MAX_WINDOW))
    c.expect_stream_error(1, FLOW_CONTROL_ERROR, next_sid=3)


def test_initial_window_size_change_applies_to_open_streams(gw):
    c = H2Raw(gw.port, settings={INITIAL_WINDOW_SIZE: 0}, auto_window=False)
    try:
        c.send(c.headers(1, get("/api/bytes?n=1000")))
        assert c.wait(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1)
        time.sleep(0.3)
        c.wait(lambda f: False, timeout=0.2)
        assert c.data_of.get(1, b"") == b""  # a zero window: no DATA
        c.send(SettingsFrame(0, settings={INITIAL_WINDOW_SIZE: 600}))
        c.wait(lambda f: len(c.data_of.get(1, b"")) >= 600, timeout=3)
        c.wait(lambda f: False, timeout=0.3)
        assert len(c.data_of[1]) == 600 and 1 not in c.ended  # exactly the new window
        c.send(SettingsFrame(0, settings={INITIAL_WINDOW_SIZE: 1000}))  # +400 for stream 1
        r = c.response(1)
        assert r and r[0] == 200 and len(r[2]) == 1000, c.frames
    finally:
        c.close()


def test_initial_window_size_change_overflowing_a_stream_window(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(WindowUpdateFrame(1, window_increment=MAX_WINDOW - 65535))  # stream 1 at the max
    c.send(SettingsFrame(0, settings={INITIAL_WINDOW_SIZE: 65536}))    # +1 overflows it
    c.expect_connection_error(FLOW_CONTROL_ERROR)


def post_paused(c, sid, nbytes):
    """A POST whose body torii does not take for 3 s, and nbytes of it in 16 KiB frames."""
    frames = [c.headers(sid, get("/paused/x", method="POST"), end_stream=False)]
    for off in range(0, nbytes, 16384):
        frames.append(c.data(sid, b"b" * min(16384, nbytes - off)))
    c.send(*frames)


def test_data_beyond_the_stream_window_is_a_stream_error(c):
    post_paused(c, 1, STREAM_WINDOW + 1)
    c.expect_stream_error(1, FLOW_CONTROL_ERROR, next_sid=3)


def test_data_beyond_the_connection_window_is_a_connection_error(c):
    for i in range(CONNECTION_WINDOW // STREAM_WINDOW + 1):  # each within its stream window
        post_paused(c, 1 + 2 * i, STREAM_WINDOW)
    c.expect_connection_error(FLOW_CONTROL_ERROR)


def test_reset_streams_give_their_unread_body_back_to_the_connection_window(c):
    # Three streams hold 768 KiB of body torii never took, then are reset (each went past
    # its window): that credit must come back to the connection, or the next 512 KiB in
    # flight overflow a window torii believes is almost spent.
    for sid in (1, 3, 5):
        post_paused(c, sid, STREAM_WINDOW + 1)
        r = c.rst(sid)
        assert r is not None and r.error_code == FLOW_CONTROL_ERROR, c.frames
    for sid in (7, 9):
        post_paused(c, sid, STREAM_WINDOW)
    assert c.request(11) == 200, c.frames
    assert not any(isinstance(f, GoAwayFrame) for f in c.frames), c.frames


# ---- header validation (RFC 9113 8.2, 8.3) -----------------------------------------------------

BAD_REQUESTS = {
    "uppercase name": get(extra=[("X-Upper", "v")]),
    "connection": get(extra=[("connection", "keep-alive")]),
    "keep-alive": get(extra=[("keep-alive", "timeout=5")]),
    "proxy-connection": get(extra=[("proxy-connection", "keep-alive")]),
    "transfer-encoding": get(extra=[("transfer-encoding", "chunked")]),
    "upgrade": get(extra=[("upgrade", "h2c")]),
    "te other than trailers": get(extra=[("te", "gzip")]),
    "pseudo after regular": [(":method", "GET"), (":scheme", "http"), ("x-a", "b"),
                             (":path", "/"), (":authority", "h")],
    "unknown pseudo": get(extra=[(":foo", "bar")]),
    "duplicate :path": get() + [(":path", "/again")],
    "duplicate :method": [(":method", "GET")] + get(),
    "missing :path": [(":method", "GET"), (":scheme", "http"), (":authority", "h")],
    "missing :method": [(":scheme", "http"), (":authority", "h"), (":path", "/")],
    "missing :scheme": [(":method", "GET"), (":authority", "h"), (":path", "/")],
    "response pseudo in a request": get(extra=[(":status", "200")]),
    "empty :path": get(path=""),
    ":path without a slash": get(path="index.html"),
    ":path with a space": get(path="/a b"),
    ":method with a space": get(method="GE T"),
    "CR in a value": get(extra=[("x-a", "a\rb")]),
    "LF in a value": get(extra=[("x-a", "a\nb")]),
    "NUL in a value": get(extra=[("x-a", "a\x00b")]),
    "leading space in a value": get(extra=[("x-a", " a")]),
    "trailing tab in a value": get(extra=[("x-a", "a\t")]),
    "space in a name": get(extra=[("x a", "b")]),
    "colon in a name": get(extra=[("x:a", "b")]),
    "empty name": get(extra=[("", "b")]),
    "host differs from :authority": get(authority="a.example", extra=[("host", "b.example")]),
    "two hosts": [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                  ("host", "a.example"), ("host", "b.example")],
    "userinfo in :authority": get(authority="user@h"),
    # Checked by torii since nghttp2's HTTP messaging pass is off (h2_request_checks.h):
    "content-length not digits": get(extra=[("content-length", "5a")]),
    "two content-lengths": get(extra=[("content-length", "0"), ("content-length", "0")]),
    "content-length without the body": get(extra=[("content-length", "5")]),
    "empty :authority": get(authority=""),
    "space in host": [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                      ("host", "a b")],
    "userinfo in host without :authority": [(":method", "GET"), (":scheme", "http"),
                                            (":path", "/"), ("host", "u@h.example")],
    "* other than OPTIONS": get(path="*"),
    "bad :scheme": [(":method", "GET"), (":scheme", "ht tp"), (":path", "/"), (":authority", "h")],
    "CONNECT with a :path": [(":method", "CONNECT"), (":authority", "h:443"), (":path", "/")],
    "CONNECT without :authority": [(":method", "CONNECT"), ("host", "h:443")],
    ":protocol without CONNECT": get(extra=[(":protocol", "websocket")]),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request_is_a_stream_error(c, name):
    c.send(c.headers(1, BAD_REQUESTS[name]))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3)


GOOD_REQUESTS = {
    "te: trailers": get(extra=[("te", "trailers")]),
    "host equal to :authority": get(authority="h.example", extra=[("host", "h.example")]),
    "host without :authority": [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                                ("host", "h.example")],
    "several cookies": get(extra=[("cookie", "a=1"), ("cookie", "b=2")]),
}


@pytest.mark.parametrize("name", list(GOOD_REQUESTS))
def test_valid_request_is_answered(c, name):
    c.send(c.headers(1, GOOD_REQUESTS[name]))
    r = c.response(1)
    assert r and r[0] == 200, c.frames


@pytest.mark.parametrize("fields", [
    [(":method", "CONNECT"), (":authority", "example.com:443")],
    [(":method", "CONNECT"), (":protocol", "x-unknown"), (":scheme", "http"),
     (":path", "/rec/c"), (":authority", "h")],
], ids=["connect", "extended connect, unknown protocol"])
def test_connect_other_than_websocket_is_not_implemented(gw, c, fields):
    # torii advertises SETTINGS_ENABLE_CONNECT_PROTOCOL for WebSocket (RFC 8441) only; an
    # HTTP/1.1 upstream must never see "CONNECT".
    assert c.server_settings.get(0x8) == 1
    gw.rec.clear()
    c.send(c.headers(1, fields, end_stream=False))
    r = c.response(1)
    assert r and r[0] == 501, c.frames
    assert gw.rec.settle() == b""


def test_pseudo_header_in_trailers_is_a_stream_error(c):
    c.send(c.headers(1, get("/paused/x", method="POST"), end_stream=False))
    c.send(c.headers(1, [(":path", "/trailer")]))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3)


def test_trailers_without_end_stream_are_a_stream_error(c):
    c.send(c.headers(1, get("/paused/x", method="POST"), end_stream=False))
    c.send(c.headers(1, [("x-t", "1")], end_stream=False))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3)


@pytest.mark.parametrize("body", [b"0123456789", b"012"], ids=["more", "fewer"])
def test_content_length_disagreeing_with_data_is_a_stream_error(c, body):
    c.send(c.headers(1, get("/paused/x", method="POST", extra=[("content-length", "5")]),
                     end_stream=False))
    c.send(c.data(1, body, end_stream=True))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3)


# ---- SETTINGS (RFC 9113 6.5) -------------------------------------------------------------------

@pytest.mark.parametrize("settings,code", [
    ({ENABLE_PUSH: 2}, PROTOCOL_ERROR),
    ({INITIAL_WINDOW_SIZE: 2 ** 31}, FLOW_CONTROL_ERROR),
    ({MAX_FRAME_SIZE: 16383}, PROTOCOL_ERROR),
    ({MAX_FRAME_SIZE: 2 ** 24}, PROTOCOL_ERROR),
], ids=["enable_push=2", "initial_window>max", "max_frame<16384", "max_frame>2^24-1"])
def test_bad_settings_value_is_a_connection_error(c, settings, code):
    c.send(SettingsFrame(0, settings=settings))
    c.expect_connection_error(code)


def test_settings_on_a_stream_is_a_connection_error(c):
    c.send(raw_frame(0x4, 0, 1, b""))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_settings_length_not_a_multiple_of_6_is_a_connection_error(c):
    c.send(raw_frame(0x4, 0, 0, b"\x00\x02\x00\x00\x00"))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_settings_ack_with_payload_is_a_connection_error(c):
    c.send(raw_frame(0x4, 0x1, 0, b"\x00\x02\x00\x00\x00\x00"))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_unknown_setting_is_ignored(c):
    def acks():
        return sum(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in c.frames)
    before = acks()
    c.send(raw_frame(0x4, 0, 0, b"\x00\xfe\x00\x00\x00\x01"))
    assert c.wait(lambda f: acks() > before) is not None
    assert c.request(1) == 200


# ---- frame sizes (RFC 9113 4.2, 6.x) -----------------------------------------------------------

def test_frame_above_max_frame_size_is_a_connection_error(c):
    c.send(c.headers(1, get("/paused/x", method="POST"), end_stream=False))
    c.send(DataFrame(1, b"x" * 16385))  # torii advertises the default 16384
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_headers_above_max_frame_size_is_a_connection_error(c):
    c.send(c.headers(1, get(extra=[("x-big", "v" * 17000)])))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_ping_with_wrong_length_is_a_connection_error(c):
    c.send(raw_frame(0x6, 0, 0, b"1234567"))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_ping_on_a_stream_is_a_connection_error(c):
    c.send(raw_frame(0x6, 0, 1, b"12345678"))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_ping_is_acknowledged(c):
    c.send(PingFrame(0, opaque_data=b"torii-ok"))
    ack = c.wait(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags)
    assert ack is not None and ack.opaque_data == b"torii-ok"


def test_window_update_with_wrong_length_is_a_connection_error(c):
    c.send(raw_frame(0x8, 0, 0, b"\x00\x00\x01"))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_window_update_zero_on_the_connection_is_a_connection_error(c):
    c.send(raw_frame(0x8, 0, 0, b"\x00\x00\x00\x00"))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_window_update_zero_on_a_stream_is_a_stream_error(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(raw_frame(0x8, 0, 1, b"\x00\x00\x00\x00"))
    c.expect_stream_error(1, PROTOCOL_ERROR, next_sid=3, escalated=True)


def test_rst_stream_with_wrong_length_is_a_connection_error(c):
    c.send(c.headers(1, get(SLOW)))
    c.send(raw_frame(0x3, 0, 1, b"\x00\x00\x08"))
    c.expect_connection_error(FRAME_SIZE_ERROR)


def test_priority_with_wrong_length_is_a_stream_error(c):
    c.send(raw_frame(0x2, 0, 1, b"\x00\x00\x00\x00"))
    c.expect_stream_error(1, FRAME_SIZE_ERROR, next_sid=3, escalated=True)


def test_goaway_on_a_stream_is_a_connection_error(c):
    c.send(raw_frame(0x7, 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00"))
    c.expect_connection_error(PROTOCOL_ERROR)


# ---- CONTINUATION (RFC 9113 6.10) --------------------------------------------------------------

def split_block(fields):
    b = block(fields)
    third = len(b) // 3
    return b[:third], b[third:2 * third], b[2 * third:]


def test_headers_split_over_continuations_are_answered(c):
    a, b, rest = split_block(get())
    c.send(HeadersFrame(1, a, flags=["END_STREAM"]), ContinuationFrame(1, b),
           ContinuationFrame(1, rest, flags=["END_HEADERS"]))
    r = c.response(1)
    assert r and r[0] == 200


@pytest.mark.parametrize("between", ["ping", "data", "headers on another stream"])
def test_frame_inside_a_header_block_is_a_connection_error(c, between):
    a, b, rest = split_block(get())
    other = {"ping": PingFrame(0, opaque_data=b"12345678"),
             "data": DataFrame(1, b"x"),
             "headers on another stream": c.headers(3, get())}[between]
    c.send(HeadersFrame(1, a, flags=["END_STREAM"]), other,
           ContinuationFrame(1, b + rest, flags=["END_HEADERS"]))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_continuation_without_headers_is_a_connection_error(c):
    c.send(ContinuationFrame(1, block(get()), flags=["END_HEADERS"]))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_continuation_after_a_complete_block_is_a_connection_error(c):
    c.send(c.headers(1, get(SLOW)), ContinuationFrame(1, block([("x-a", "b")]),
                                                      flags=["END_HEADERS"]))
    c.expect_connection_error(PROTOCOL_ERROR)


def test_continuation_on_another_stream_is_a_connection_error(c):
    a, b, rest = split_block(get())
    c.send(HeadersFrame(1, a, flags=["END_STREAM"]),
           ContinuationFrame(3, b + rest, flags=["END_HEADERS"]))
    c.expect_connection_error(PROTOCOL_ERROR)


# ---- GOAWAY (RFC 9113 6.8) ---------------------------------------------------------------------

def test_client_goaway_lets_open_streams_finish(c):
    c.send(c.headers(1, get("/api/slow?ms=700")))
    c.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR))
    r = c.response(1, timeout=5)
    assert r and r[0] == 200, c.frames  # the open stream was served to its end
    assert c.wait_closed(5)              # then torii closes: no stream will come


# ---- what reaches an HTTP/1.1 upstream ---------------------------------------------------------

SMUGGLING = {
    "CRLF in a value": get("/rec/a", extra=[("x-a", "v\r\nX-Injected: 1")]),
    "LF in a value": get("/rec/a", extra=[("x-a", "v\nX-Injected: 1")]),
    "space in a name": get("/rec/a", extra=[("x-injected x", "1")]),
    "colon in a name": get("/rec/a", extra=[("x-injected:x", "1")]),
    "transfer-encoding": get("/rec/a", method="POST",
                             extra=[("transfer-encoding", "chunked")]),
    "host differs from :authority": get("/rec/a", authority="a.example",
                                        extra=[("host", "x-injected.example")]),
    "space in :path": get("/rec/a HTTP/1.1\r\nX-Injected: 1\r\nx:"),
    "userinfo in :authority": get("/rec/a", authority="x-injected@h"),
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_ambiguous_request_is_not_forwarded(gw, c, name):
    gw.rec.clear()
    c.send(c.headers(1, SMUGGLING[name]))
    r = c.rst(1)
    assert r is not None and r.error_code == PROTOCOL_ERROR, c.frames
    assert b"x-injected" not in gw.rec.settle().lower()
    assert gw.rec.data() == b""  # nothing at all went upstream


def test_body_beyond_content_length_is_not_forwarded(gw, c):
    gw.rec.clear()
    c.send(c.headers(1, get("/rec/a", method="POST", extra=[("content-length", "5")]),
                     end_stream=False))
    c.send(c.data(1, b"hello" + b"GET /x-injected HTTP/1.1\r\nHost: h\r\n\r\n", end_stream=True))
    assert c.rst(1) is not None
    assert b"x-injected" not in gw.rec.settle().lower()


def test_forwarded_head_is_normalised(gw, c):
    gw.rec.clear()
    c.send(c.headers(1, get("/rec/n", authority="h.example",
                            extra=[("host", "h.example"), ("cookie", "a=1"), ("cookie", "b=2")])))
    r = c.response(1)
    assert r and r[0] == 200
    head = gw.rec.data().split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /rec/n HTTP/1.1", head
    names = [ln.split(":", 1)[0].lower() for ln in lines[1:]]
    assert names.count("host") == 1 and "host: h.example" in head.lower(), head
    assert names.count("cookie") == 1 and "cookie: a=1; b=2" in head.lower(), head


def test_torii_survived(gw):
    assert gw.torii.alive()
