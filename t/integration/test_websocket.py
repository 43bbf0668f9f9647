"""WebSocket over HTTP/1.1 through torii: the handshake runs every phase, then the connection
is a two-way tunnel (core/tunnel). Real peers: Debian's python3-websockets on both sides."""

import asyncio
import time
import json
import os
import signal
import ssl
import types

import pytest
import websockets

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block
from pki import Pki

KEY = "k-ws-1"


@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    p = module_procs
    pki = Pki(str(tmp_path_factory.mktemp("pki")))
    cert = pki.server("127.0.0.1", stem="local")
    ws = p.backend("ws", script="ws_backend.py")
    http = p.backend("http")  # answers an upgrade request with a plain 200
    port = harness.free_port()
    tls_port = harness.free_port()
    admin = harness.free_port()
    locations = [
        {"path": "/ws/", "upstream": "ws",
         "plugins": {"header_rewrite": {"request_set": {"X-Via-Torii": "$scheme"}}}},
        {"path": "/auth/", "upstream": "ws",
         "plugins": {"auth": {"type": "key", "keys": [{"key": KEY, "consumer": "alice"}]}}},
        {"path": "/plain/", "upstream": "http"},
        {"path": "/limited/", "upstream": "ws",
         "plugins": {"ratelimit": {"rate": 2, "period": "1h", "burst": 2,
                                   "key": "$remote_addr"}}},
    ]
    text = config(
        main_block(admin_port=admin, tunnel_idle_timeout="2s", shutdown_timeout="20s"),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
        plugin_block("ratelimit"),
        plugin_block("round_robin"),
        upstream_block("ws", [ws.port]),
        upstream_block("http", [http.port]),
        server_block([port], locations),
        server_block([tls_port], locations, tls={"cert": cert.cert, "key": cert.key}),
    )
    t = p.torii(text)
    ctx = ssl.create_default_context(cafile=pki.ca)
    return types.SimpleNamespace(port=port, tls_port=tls_port, torii=t, ssl=ctx)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def url(gw, path, tls=False):
    return "%s://127.0.0.1:%d%s" % ("wss" if tls else "ws", gw.tls_port if tls else gw.port,
                                    path)


async def echo_round(gw, tls):
    async with websockets.connect(url(gw, "/ws/echo", tls), ssl=gw.ssl if tls else None,
                                  max_size=8 * 1024 * 1024) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        blob = bytes(range(256)) * 7
        await ws.send(blob)
        assert await ws.recv() == blob
        big = os.urandom(1024 * 1024)
        await ws.send(big)
        assert await ws.recv() == big
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await ws.send("headers?")
        return json.loads(await ws.recv())


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_echo_text_binary_1mib_and_ping(gw, tls):
    headers = run(echo_round(gw, tls))
    # The handshake went through the phases: header_rewrite set a header on it.
    assert headers["x-via-torii"] == ("https" if tls else "http")
    assert headers["upgrade"].lower() == "websocket"


def test_close_codes_pass_both_ways(gw):
    async def go():
        async with websockets.connect(url(gw, "/ws/c")) as ws:
            await ws.send("close:4001")
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
            assert e.value.code == 4001
        ws = await websockets.connect(url(gw, "/ws/c"))
        await ws.close(4002, "client says bye")
        async with websockets.connect(url(gw, "/ws/c")) as ws:
            await ws.send("last-close?")
            assert await ws.recv() == "4002"
    run(go())


def test_auth_applies_to_the_handshake(gw):
    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(url(gw, "/auth/x"))
        assert e.value.status_code == 401
        async with websockets.connect(url(gw, "/auth/x"),
                                      extra_headers={"X-API-Key": KEY}) as ws:
            await ws.send("in")
            assert await ws.recv() == "in"
    run(go())


def test_ratelimit_applies_to_the_handshake(gw):
    # Two handshakes an hour per client: the third is answered 429, and the tunnels the
    # first two opened keep working (a limit counts handshakes, not frames).
    async def go():
        async with websockets.connect(url(gw, "/limited/echo")) as a, \
                websockets.connect(url(gw, "/limited/echo")) as b:
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await websockets.connect(url(gw, "/limited/echo"))
            assert e.value.status_code == 429
            for i in range(5):
                await a.send("a%d" % i)
                await b.send("b%d" % i)
                assert await a.recv() == "a%d" % i
                assert await b.recv() == "b%d" % i
    run(go())


def test_refused_upgrade_is_passed_back_as_a_response(gw):
    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(url(gw, "/plain/x"))
        assert e.value.status_code == 200  # the backend answered without upgrading
    run(go())


def test_idle_tunnel_is_closed_after_tunnel_idle_timeout(gw):
    async def go():
        async with websockets.connect(url(gw, "/ws/idle"), ping_interval=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            await asyncio.sleep(3.0)  # tunnel_idle_timeout is 2s
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send("late")
                await ws.recv()
    run(go())


def test_tunnel_outlives_a_reload(gw):
    async def go():
        # Pings every 0.5 s keep the tunnel from idling out (tunnel_idle_timeout is 2s here)
        # while a reload of a sanitizer build under load takes seconds.
        async with websockets.connect(url(gw, "/ws/long"), ping_interval=0.5) as ws:
            for i in range(3):
                workers = set(gw.torii.pids()) - {gw.torii.pid}
                os.kill(gw.torii.pid, signal.SIGHUP)
                for _ in range(100):  # the new generation is up
                    await asyncio.sleep(0.05)
                    now = set(gw.torii.pids()) - {gw.torii.pid}
                    if now - workers:
                        break
                await ws.send("still here %d" % i)
                assert await ws.recv() == "still here %d" % i
            # and a new tunnel reaches the new generation
            async with websockets.connect(url(gw, "/ws/new")) as fresh:
                await fresh.send("new")
                assert await fresh.recv() == "new"
    run(go())


def test_tunnel_is_logged_once_with_its_duration_and_bytes(procs, tmp_path):
    ws = procs.backend("ws", script="ws_backend.py")
    port = harness.free_port()
    log = tmp_path / "access.log"
    procs.torii(config(
        main_block(access_log=str(log)),
        plugin_block("round_robin"),
        upstream_block("ws", [ws.port]),
        server_block([port], [{"path": "/", "upstream": "ws"}]),
    ))

    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/logged" % port) as c:
            for _ in range(3):
                await c.send(os.urandom(1000))  # incompressible: permessage-deflate is on
                await c.recv()
            await asyncio.sleep(0.5)
    run(go())

    def line():
        text = log.read_text() if log.exists() else ""
        return [ln for ln in text.splitlines() if '"GET /logged HTTP/1.1" 101 ' in ln]
    assert harness.wait_until(line, 5.0), log.read_text() if log.exists() else "(no log)"
    fields = line()[0].split('" 101 ')[1].split()
    sent = int(fields[0])
    assert sent > 3000, line()  # the three echoes (and frame headers) went to the client
    seconds = float([f for f in fields if f.count(".") == 1 and f.replace(".", "").isdigit()][0])
    assert seconds >= 0.5, line()


# ---- WebSocket over HTTP/2 (RFC 8441) ---------------------------------------------------------
# python3-h2 drives an extended CONNECT (:protocol = websocket) on an h2c connection; torii
# turns it into an HTTP/1.1 upgrade toward ws_backend.py and relays WebSocket frames (built
# here) in DATA frames.

import socket  # noqa: E402
import struct  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


def ws_frame(opcode, payload):
    """A masked client frame (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


def ws_parse(buf):
    """(opcode, payload, rest) of the first whole (unmasked, server) frame, or None."""
    if len(buf) < 2:
        return None
    opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < at + n:
        return None
    return opcode, buf[at:at + n], buf[at + n:]


class H2WebSocket:
    def __init__(self, port, path, headers=(), sid=1, conn=None):
        self.port = port
        self.sid = sid
        if conn is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            self.conn.initiate_connection()
            self._flush()
            self._until(lambda: self.conn.remote_settings.enable_connect_protocol)
        else:
            self.sock, self.conn = conn.sock, conn.conn
        self.status, self.headers, self.buf = None, {}, b""
        self.ended, self.reset, self.body = False, None, b""
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                     (":scheme", "http"), (":path", path),
                                     (":authority", "127.0.0.1:%d" % port),
                                     ("sec-websocket-version", "13")] + list(headers))
        self._flush()
        self._until(lambda: self.status is not None or self.reset is not None)

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read(self, timeout=10):
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("torii closed the connection")
        for e in self.conn.receive_data(data):
            if getattr(e, "stream_id", None) != self.sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                self.headers = dict(e.headers)
                self.status = int(self.headers[":status"])
            elif isinstance(e, h2.events.DataReceived):
                self.buf += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(e, h2.events.StreamReset):
                self.reset = e.error_code
        self._flush()

    def _until(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            assert left > 0, "timed out"
            self._read(left)

    def send(self, opcode, payload):
        data = ws_frame(opcode, payload)
        while data:  # as the stream's and the connection's windows allow
            window = min(self.conn.local_flow_control_window(self.sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self._read()
                continue
            self.conn.send_data(self.sid, data[:window])
            data = data[window:]
            self._flush()

    def recv(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            frame = ws_parse(self.buf)
            if frame is not None:
                self.buf = frame[2]
                return frame[0], frame[1]
            assert not self.ended and self.reset is None, (self.ended, self.reset)
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for a WebSocket frame"
            self._read(left)

    def echo(self, opcode, payload):
        self.send(opcode, payload)
        return self.recv()

    def close(self):
        self.sock.close()


def test_websocket_over_h2_echoes(gw):
    ws = H2WebSocket(gw.port, "/ws/h2", headers=[("sec-websocket-protocol", "chat")])
    try:
        assert ws.status == 200, ws.headers  # the upstream's 101, as RFC 8441 says
        assert "sec-websocket-accept" not in ws.headers and "upgrade" not in ws.headers
        assert ws.echo(TEXT, b"hello h2") == (TEXT, b"hello h2")
        big = os.urandom(1024 * 1024)  # several windows' worth both ways
        assert ws.echo(BINARY, big) == (BINARY, big)
        op, doc = ws.echo(TEXT, b"headers?")
        seen = json.loads(doc)
        # the phases ran on the handshake and the upstream got an HTTP/1.1 upgrade
        assert seen["x-via-torii"] == "http" and seen["upgrade"].lower() == "websocket"
        assert len(seen["sec-websocket-key"]) == 24 and seen["sec-websocket-version"] == "13"
        assert seen["sec-websocket-protocol"] == "chat"
        # a close handshake: the server's close frame, its FIN as END_STREAM
        op, payload = ws.echo(CLOSE, struct.pack(">H", 1000))
        assert op == CLOSE and payload[:2] == struct.pack(">H", 1000)
        ws._until(lambda: ws.ended)
        assert ws.reset is None
    finally:
        ws.close()


def test_websocket_over_h2_server_close_code_and_second_stream(gw):
    ws = H2WebSocket(gw.port, "/ws/h2c")
    try:
        op, payload = ws.echo(TEXT, b"close:4001")
        assert op == CLOSE and payload[:2] == struct.pack(">H", 4001)
        ws.send(CLOSE, payload[:2])  # the reply; then the server closes its connection
        ws._until(lambda: ws.ended or ws.reset is not None)
        assert ws.ended and ws.reset is None  # its FIN came as END_STREAM
        ws.conn.end_stream(1)
        ws._flush()
        # the connection carries another WebSocket afterwards
        other = H2WebSocket(gw.port, "/ws/h2d", sid=3, conn=ws)
        assert other.status == 200
        assert other.echo(TEXT, b"again") == (TEXT, b"again")
    finally:
        ws.close()


def test_websocket_over_h2_client_reset_resets_the_upstream(gw):
    ws = H2WebSocket(gw.port, "/ws/h2reset")
    try:
        assert ws.echo(TEXT, b"x") == (TEXT, b"x")
        ws.conn.reset_stream(1, error_code=0x8)  # CANCEL
        ws._flush()
        time.sleep(0.3)
    finally:
        ws.close()
    ws = H2WebSocket(gw.port, "/ws/h2check")
    try:
        # the upstream saw its connection end without a close frame: 1006
        assert ws.echo(TEXT, b"last-close?") == (TEXT, b"1006")
    finally:
        ws.close()


def test_websocket_over_h2_refused_upgrade_is_a_response(gw):
    ws = H2WebSocket(gw.port, "/plain/status/403")
    try:
        ws._until(lambda: ws.ended and ws.reset is not None)
        assert ws.status == 403 and ws.buf  # the upstream's answer and its body
        assert ws.reset == 0  # then NO_ERROR: the client need not end a stream with no tunnel
    finally:
        ws.close()
    # a 2xx that did not switch protocols would tell the client its WebSocket is open
    ws = H2WebSocket(gw.port, "/plain/x")
    try:
        assert ws.status == 502, ws.headers
    finally:
        ws.close()


def test_websocket_over_h2_auth_applies_to_the_handshake(gw):
    ws = H2WebSocket(gw.port, "/auth/h2")
    try:
        assert ws.status == 401
        ws._until(lambda: ws.reset is not None)
        assert ws.reset == 0
    finally:
        ws.close()
    ws = H2WebSocket(gw.port, "/auth/h2", headers=[("x-api-key", KEY)])
    try:
        assert ws.status == 200
        assert ws.echo(TEXT, b"in") == (TEXT, b"in")
    finally:
        ws.close()


def test_websocket_over_h2_idle_tunnel_is_reset(gw):
    ws = H2WebSocket(gw.port, "/ws/h2idle")
    try:
        assert ws.echo(TEXT, b"x") == (TEXT, b"x")
        ws._until(lambda: ws.reset is not None, timeout=6)  # tunnel_idle_timeout is 2s
        assert ws.reset == 0x8  # CANCEL
        other = H2WebSocket(gw.port, "/ws/h2after", sid=3, conn=ws)  # the connection lives
        assert other.echo(TEXT, b"y") == (TEXT, b"y")
    finally:
        ws.close()


def test_websocket_over_h2_is_logged_once(procs, tmp_path):
    ws_backend = procs.backend("ws", script="ws_backend.py")
    port = harness.free_port()
    log = tmp_path / "access.log"
    procs.torii(config(
        main_block(access_log=str(log)),
        plugin_block("round_robin"),
        upstream_block("ws", [ws_backend.port]),
        server_block([port], [{"path": "/", "upstream": "ws"}]),
    ))
    ws = H2WebSocket(port, "/logged-h2")
    try:
        for _ in range(3):
            payload = os.urandom(1000)
            assert ws.echo(BINARY, payload) == (BINARY, payload)
        time.sleep(0.5)
        ws.echo(CLOSE, struct.pack(">H", 1000))
        ws._until(lambda: ws.ended)
        ws.conn.end_stream(1)
        ws._flush()

        def line():
            text = log.read_text() if log.exists() else ""
            return [ln for ln in text.splitlines() if '"GET /logged-h2 HTTP/2.0" 200 ' in ln]
        assert harness.wait_until(line, 5.0), log.read_text() if log.exists() else "(no log)"
        assert len(line()) == 1
        sent = int(line()[0].split('" 200 ')[1].split()[0])
        assert sent >= 3000, line()  # the three echoes went to the client
    finally:
        ws.close()
