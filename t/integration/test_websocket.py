"""WebSocket over HTTP/1.1 through torii: the handshake runs every phase, then the connection
is a two-way tunnel (core/tunnel). Real peers: Debian's python3-websockets on both sides."""

import asyncio
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
    ]
    text = config(
        main_block(admin_port=admin, tunnel_idle_timeout="2s", shutdown_timeout="20s"),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
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
        async with websockets.connect(url(gw, "/ws/long"), ping_interval=None) as ws:
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
