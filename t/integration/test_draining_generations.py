"""Old generations after reloads: long-lived connections keep running on them, at most
`max_draining_generations` of them drain at once (the oldest is told to close when one more
would start), and torii closes what it ends the clean way: a WebSocket gets close code 1001
on both sides. /status lists the draining generations with their connection counts."""

import asyncio
import os
import signal
import socket
import time
import types

import pytest
import websockets

import harness
from harness import config, main_block, plugin_block, server_block, upstream_block


def start(procs, **main):
    ws = procs.backend("ws", script="ws_backend.py")
    port, admin = harness.free_port(), harness.free_port()
    t = procs.torii(config(
        main_block(admin_port=admin, **main),
        plugin_block("round_robin"),
        upstream_block("ws", [ws.port]),
        server_block([port], [{"path": "/", "upstream": "ws"}]),
    ))
    return types.SimpleNamespace(torii=t, port=port, admin=admin,
                                 url="ws://127.0.0.1:%d/chat" % port)


def status(g):
    r = harness.request(g.admin, "GET", "/status", timeout=5)
    assert r.status == 200, r.body[:200]
    return r.json()


def reload_to(g, generation):
    """SIGHUP, then wait until `generation` serves and the old workers stopped accepting."""
    os.kill(g.torii.pid, signal.SIGHUP)
    doc = harness.wait_until(lambda: status(g).get("generation") == generation, 15, 0.05)
    assert doc, "generation %d not reached: %r" % (generation, status(g))
    # The old worker handles its SIGQUIT (stops accepting) within a loop turn; this makes
    # sure the next connection lands in the new generation.
    time.sleep(0.3)


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def echo(ws, text):
    await ws.send(text)
    assert await asyncio.wait_for(ws.recv(), 5) == text


def test_fifth_draining_generation_closes_the_first(procs):
    g = start(procs, shutdown_timeout="120s")

    async def go():
        conns = []
        for gen in range(1, 6):  # a WebSocket in generations 1..5, a reload after each
            ws = await websockets.connect(g.url)
            await echo(ws, "gen%d" % gen)
            conns.append(ws)
            await asyncio.to_thread(reload_to, g, gen + 1)
        # Generation 6 serves; 1..5 would drain, one more than max_draining_generations
        # (4): generation 1 was told to close, its WebSocket with 1001 "going away".
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(conns[0].recv(), 10)
        assert conns[0].close_code == 1001
        for i, ws in enumerate(conns[1:], start=2):
            await echo(ws, "still gen%d" % i)

        def listed():
            doc = status(g)
            d = doc.get("draining_generations")
            if [x["generation"] for x in d] != [2, 3, 4, 5]:
                return None
            if any(len(x["workers"]) != 1 or x["workers"][0]["connections"] != 1 or x["closing"]
                   for x in d):
                return None
            return doc
        doc = await asyncio.to_thread(harness.wait_until, listed, 10, 0.1)
        assert doc, status(g)
        assert doc["draining"] == 4
        pids = [x["workers"][0]["pid"] for x in doc["draining_generations"]]
        assert all(harness.proc_alive(p) for p in pids)

        # The backend got the close frame too (masked, from torii as the client).
        fresh = await websockets.connect(g.url)
        await fresh.send("last-close?")
        assert await asyncio.wait_for(fresh.recv(), 5) == "1001"
        await fresh.close()
        for ws in conns[1:]:
            await ws.close()
    run(go())


def test_shutdown_timeout_closes_a_websocket_with_1001(procs):
    g = start(procs, shutdown_timeout="1s")

    async def go():
        ws = await websockets.connect(g.url)
        await echo(ws, "before")
        began = time.monotonic()
        await asyncio.to_thread(reload_to, g, 2)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
        assert time.monotonic() - began < 5
        fresh = await websockets.connect(g.url)
        await fresh.send("last-close?")
        assert await asyncio.wait_for(fresh.recv(), 5) == "1001"
        await fresh.close()
    run(go())

    def drained():
        doc = status(g)
        return doc if doc["draining"] == 0 and doc["draining_generations"] == [] else None
    assert harness.wait_until(drained, 10, 0.1), status(g)


def test_max_draining_generations_zero_retires_at_once(procs):
    g = start(procs, shutdown_timeout="120s", max_draining_generations=0)

    async def go():
        ws = await websockets.connect(g.url)
        await echo(ws, "x")
        await asyncio.to_thread(reload_to, g, 2)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
    run(go())


def test_retired_generation_sends_http2_goaway_then_fin(procs):
    """An HTTP/2 connection with a stream under way on a generation closed early: the client
    gets a GOAWAY naming the stream processed, then a clean end of the connection."""
    import h2.config
    import h2.connection
    import h2.events

    api = procs.backend("api")
    port, admin = harness.free_port(), harness.free_port()
    t = procs.torii(config(
        main_block(admin_port=admin, shutdown_timeout="120s", max_draining_generations=0),
        plugin_block("round_robin"),
        upstream_block("api", [api.port]),
        server_block([port], [{"path": "/", "upstream": "api"}]),
    ))
    g = types.SimpleNamespace(torii=t, admin=admin)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/slow?ms=20000"), (":scheme", "http"),
                          (":authority", "x")], end_stream=True)
    s.sendall(conn.data_to_send())
    time.sleep(0.3)  # the stream is under way
    began = time.monotonic()
    reload_to(g, 2)
    events, how = [], "timeout"
    s.settimeout(1)
    try:
        while time.monotonic() - began < 8:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                how = "eof"
                break
            events += conn.receive_data(data)
    except ConnectionResetError:
        how = "reset"
    finally:
        s.close()
    assert how == "eof", (how, events)
    goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaways and goaways[-1].last_stream_id == 1 and goaways[-1].error_code == 0, events
    assert not any(isinstance(e, h2.events.StreamEnded) for e in events), events
    assert time.monotonic() - began < 6
