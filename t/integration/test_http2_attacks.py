"""HTTP/2 floods driven with raw frames (python3-hyperframe): each ends with a GOAWAY for
the offending connection, while another client's requests keep their latency."""

import socket
import struct
import subprocess
import threading
import time
import types

import pytest
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame)

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB

# A literal-without-indexing HPACK block for GET / on http://h: built by hand so that every
# HEADERS frame can carry the same bytes.
def hpack_literal(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


GET_BLOCK = (hpack_literal(b":method", b"GET") + hpack_literal(b":path", b"/") +
             hpack_literal(b":scheme", b"http") + hpack_literal(b":authority", b"h"))
POST_BLOCK = (hpack_literal(b":method", b"POST") + hpack_literal(b":path", b"/api/x") +
              hpack_literal(b":scheme", b"http") + hpack_literal(b":authority", b"h"))


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    b = p.backend("b")
    port = harness.free_port()
    t = p.torii(config(
        main_block(),
        plugin_block("round_robin"),
        upstream_block("b", [b.port]),
        server_block([port], [{"path": "/api/", "upstream": "b"},
                              {"path": "/", "return": {"status": 200, "body": "ok\n"}}]),
    ))
    return types.SimpleNamespace(port=port, torii=t)


def serialize(frames):
    return b"".join(f.serialize() for f in frames)


def attack(port, frames_bytes, seconds=5.0):
    """Sends the preface, SETTINGS and `frames_bytes`; returns the GOAWAY error code torii
    answered with (None when none came before the connection ended or time ran out)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    s.sendall(PREFACE + SettingsFrame(0).serialize())
    try:
        s.sendall(frames_bytes)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    # walk the frames torii sent
    code = None
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        frame, _ = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        if isinstance(frame, GoAwayFrame):
            code = frame.error_code
        data = data[9 + length:]
    return code


def timed_requests(port, stop, latencies):
    while not stop.is_set():
        t0 = time.monotonic()
        r = subprocess.run(["curl", "-sS", "--max-time", "5", "--http2-prior-knowledge",
                            "http://127.0.0.1:%d/" % port], capture_output=True, timeout=10)
        latencies.append((time.monotonic() - t0, r.stdout))
        time.sleep(0.05)


def run_attack_with_bystander(gw, frames_bytes):
    stop = threading.Event()
    latencies = []
    bystander = threading.Thread(target=timed_requests, args=(gw.port, stop, latencies))
    bystander.start()
    try:
        code = attack(gw.port, frames_bytes)
    finally:
        time.sleep(0.2)
        stop.set()
        bystander.join(timeout=15)
    assert latencies and all(body == b"ok\n" for _, body in latencies), latencies
    assert max(lat for lat, _ in latencies) < 1.0, latencies
    return code


def test_rapid_reset(gw):
    frames = []
    for i in range(4000):
        sid = 2 * i + 1
        frames.append(HeadersFrame(sid, GET_BLOCK, flags=["END_HEADERS", "END_STREAM"]))
        frames.append(RstStreamFrame(sid, error_code=8))  # CANCEL
    code = run_attack_with_bystander(gw, serialize(frames))
    assert code == ENHANCE_YOUR_CALM, code


def test_ping_flood(gw):
    frames = [PingFrame(0, opaque_data=struct.pack(">Q", i)) for i in range(5000)]
    assert run_attack_with_bystander(gw, serialize(frames)) == ENHANCE_YOUR_CALM


def test_settings_flood(gw):
    frames = [SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535 + i})
              for i in range(5000)]
    assert run_attack_with_bystander(gw, serialize(frames)) == ENHANCE_YOUR_CALM


def test_empty_data_flood(gw):
    frames = [HeadersFrame(1, POST_BLOCK, flags=["END_HEADERS"])]
    frames += [DataFrame(1, b"") for _ in range(5000)]
    assert run_attack_with_bystander(gw, serialize(frames)) == ENHANCE_YOUR_CALM


def test_continuation_flood(gw):
    frames = [HeadersFrame(1, hpack_literal(b":method", b"GET"))]  # no END_HEADERS
    frames += [ContinuationFrame(1, hpack_literal(b"x-filler", b"y" * 10)) for _ in range(500)]
    code = run_attack_with_bystander(gw, serialize(frames))
    assert code == ENHANCE_YOUR_CALM, code


def test_torii_still_serves(gw):
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "http://127.0.0.1:%d/" % gw.port],
                       capture_output=True, timeout=10)
    assert r.stdout == b"ok\n"
    assert gw.torii.alive()
