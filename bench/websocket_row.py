"""The WebSocket row of make bench: proxy CPU per MiB relayed through an upgraded connection.

Each proxy forwards `GET /ws` with `Upgrade: websocket` to the same echo backend; after the
backend's 101 the proxies relay bytes without looking at frames (torii's tunnel, nginx's
upgraded proxy connection, HAProxy's tunnel mode). The client then sends masked binary
frames of 64 KiB and reads every byte back, with a bounded window in flight, and the row
divides the proxy's CPU time (same CpuWindow as the other rows) by the MiB carried each way.

The backend answers the handshake properly (Sec-WebSocket-Accept) and then echoes the bytes
it receives as they are: the client's frames come back still masked. No proxy here parses
frames after the upgrade, so this measures exactly the relay a WebSocket costs, without a
Python frame codec on the load core as the bottleneck.
"""

import base64
import hashlib
import os
import socket
import sys
import threading
import time

import bench as B

FRAME = 64 * 1024
WINDOW = 16  # frames in flight
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsEchoBackend:
    """A child process on the load core: handshake, then echo."""

    def __init__(self, work):
        self.port = B.free_port()
        self.proc = B.start([sys.executable, os.path.abspath(__file__), "serve", str(self.port)],
                            B.LOAD_CPU, log_path=os.path.join(work, "ws-backend.log"))
        B.wait_port(self.port)


def serve(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((B.HOST, port))
    ls.listen(128)

    def handle(c):
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            head, rest = head.split(b"\r\n\r\n", 1)
            key = ""
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept)
                      .encode())
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(1 << 18)
                if not d:
                    return
                c.sendall(d)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def _proxy_config(proxy, ws_port):
    """The proxy's usual config plus a /ws location toward the echo backend."""
    if getattr(proxy, "ws_configured", False):
        return
    proxy.ws_configured = True
    if proxy.name == "torii":
        proxy.extra = ("\n[upstream.ws]\ntargets = [\"%s:%d\"]\n\n[[server.location]]\n"
                       "path = \"/ws\"\nupstream = \"ws\"\n" % (B.HOST, ws_port))
        return
    original = proxy.command

    def command(single_process=False):
        cmd = original(single_process)
        conf = cmd[cmd.index("-c") + 1] if proxy.name == "nginx" else cmd[-1]
        text = open(conf).read()
        if proxy.name == "nginx":
            text = text.replace("        location / {", (
                "        location /ws {\n"
                "            proxy_pass http://%s:%d;\n"
                "            proxy_http_version 1.1;\n"
                "            proxy_set_header Upgrade $http_upgrade;\n"
                "            proxy_set_header Connection \"upgrade\";\n"
                "            proxy_read_timeout 60s;\n"
                "        }\n"
                "        location / {") % (B.HOST, ws_port), 1)
        else:
            text = text.replace("    default_backend b\n",
                                "    use_backend ws if { path_beg /ws }\n"
                                "    default_backend b\n") + (
                "backend ws\n    timeout tunnel 60s\n    server w1 %s:%d\n" % (B.HOST, ws_port))
        with open(conf, "w") as f:
            f.write(text)
        return cmd

    proxy.command = command


def _masked_frame(size):
    """One final binary frame, client-masked (RFC 6455 5.3), with a 64-bit length."""
    mask = os.urandom(4)
    payload = os.urandom(size)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | 127]) + size.to_bytes(8, "big") + mask + masked


def relay(proxy, mib):
    """Upgrade, then `mib` MiB each way; returns the proxy's CPU per MiB."""
    s = socket.create_connection((B.HOST, proxy.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (B.HOST, proxy.port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            raise RuntimeError("%s closed the WebSocket handshake" % proxy.name)
        head += d
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("%s answered %r" % (proxy.name, head[:80]))
    frame = _masked_frame(FRAME)
    frames = mib * (1 << 20) // FRAME
    received = [len(head.split(b"\r\n\r\n", 1)[1])]

    def reader():
        want = frames * len(frame)
        while received[0] < want:
            d = s.recv(1 << 18)
            if not d:
                break
            received[0] += len(d)

    window = B.CpuWindow(proxy)
    t0 = time.monotonic()
    th = threading.Thread(target=reader)
    th.start()
    sent = 0
    while sent < frames:
        # Bounded in flight: wait for echoes before sending more.
        while sent - received[0] // len(frame) >= WINDOW:
            time.sleep(0.0002)
        s.sendall(frame)
        sent += 1
    th.join(timeout=120)
    elapsed = time.monotonic() - t0
    s.close()
    if received[0] < frames * len(frame):
        raise RuntimeError("%s: %d of %d bytes came back" % (proxy.name, received[0],
                                                             frames * len(frame)))
    r = window.per(mib, {"mib_per_s": mib / elapsed})
    return r


def run(proxies, work, mib=256, rounds=3):
    """{proxy name: (cpu_us_per_mib, mib_per_s)} medians over rounds."""
    backend = WsEchoBackend(work)
    results = {p.name: [] for p in proxies}
    try:
        for rnd in range(rounds):
            order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)]
            for p in order:
                _proxy_config(p, backend.port)
                p.start()
                try:
                    relay(p, 16)  # warm-up
                    r = relay(p, mib)
                finally:
                    p.stop()
                B.log("round %d  WebSocket echo %-8s %7.1f MiB/s  %7.1f us/MiB"
                      % (rnd + 1, p.name, r["mib_per_s"], r["cpu_us_per_req"]))
                results[p.name].append(r)
    finally:
        B.stop(backend.proc)
    return results


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    serve(int(sys.argv[2]))
