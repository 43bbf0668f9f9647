#!/usr/bin/python3
"""A WebSocket echo server (Debian's python3-websockets) for the tunnel tests.

    /usr/bin/python3 ws_backend.py --port N     prints "ready" once listening

Every message comes back as sent (text or binary, any size up to 8 MiB), except:
  "close:CODE"    the server closes with that code
  "last-close?"   answers the close code the previous connection ended with
  "headers?"      answers the handshake's request headers as JSON
"""

import argparse
import asyncio
import json
import sys

import websockets

last_close = {"code": None}


async def handler(ws, path=None):
    try:
        async for msg in ws:
            if msg == "last-close?":
                await ws.send(str(last_close["code"]))
            elif msg == "headers?":
                await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.items()}))
            elif isinstance(msg, str) and msg.startswith("close:"):
                await ws.close(int(msg[6:]), "bye")
                return
            else:
                await ws.send(msg)
    finally:
        last_close["code"] = ws.close_code


async def main(port):
    try:
        server = await websockets.serve(handler, "127.0.0.1", port, max_size=8 * 1024 * 1024)
    except OSError as e:
        print("bind: %s" % e, file=sys.stderr)
        sys.exit(3)
    print("ready", flush=True)
    async with server:
        await asyncio.Future()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="ws")  # the harness passes these to every origin
    ap.add_argument("--mode", default="normal")
    asyncio.run(main(ap.parse_args().port))
