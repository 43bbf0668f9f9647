"""An upstream that expects a PROXY protocol header (v1 or v2) at the start of every
connection, in the test's own process. It answers each GET on the connection (keep-alive)
with JSON: the header it got, decoded, and the connection's number, so a test can check
what torii sent and which client a pooled connection carried.

    b = ProxyHeaderBackend(port).start();  ...;  b.stop()

A connection that does not start with a PROXY header is recorded as {"error": ...} and
closed without an answer.
"""

import ipaddress
import json
import socket
import struct
import threading

HOST = "127.0.0.1"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_proxy_header(sock):
    """Reads one PROXY header off `sock`, byte-exact; returns it decoded as a dict."""
    first = _read_exact(sock, 6)
    if first == b"PROXY ":
        line = first
        while not line.endswith(b"\r\n"):
            if len(line) > 107:
                raise ValueError("v1 line over 107 bytes")
            line += _read_exact(sock, 1)
        parts = line[6:-2].decode().split(" ")
        out = {"version": 1, "line": line.decode()}
        if parts[0] in ("TCP4", "TCP6"):
            out.update(src=parts[1], dst=parts[2], sport=int(parts[3]), dport=int(parts[4]))
        return out
    fixed = first + _read_exact(sock, 10)
    if fixed[:12] != V2_SIGNATURE:
        raise ValueError("no PROXY header: %r" % fixed)
    ver_cmd, fam, length = fixed[12], fixed[13], struct.unpack("!H", fixed[14:16])[0]
    block = _read_exact(sock, length)
    out = {"version": ver_cmd >> 4, "command": ver_cmd & 0xF, "family": fam}
    if fam in (0x11, 0x21):
        size = 4 if fam == 0x11 else 16
        src = ipaddress.ip_address(block[:size])
        dst = ipaddress.ip_address(block[size:2 * size])
        sport, dport = struct.unpack("!HH", block[2 * size:2 * size + 4])
        out.update(src=str(src), dst=str(dst), sport=sport, dport=dport)
    return out


class ProxyHeaderBackend:
    def __init__(self, port):
        self.port = port
        self.connections = []  # the decoded header of each connection, in accept order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = None
        self._threads = []
        self._conns = set()  # open ones: stop() ends them (keep-alive reads wait up to 10 s)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)  # a thread blocked in recv() returns now
                except OSError:
                    pass
        for t in self._threads:
            t.join(5)
        if self._sock:
            self._sock.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn):
        conn.settimeout(10)
        with self._lock:
            if self._stop.is_set():
                conn.close()
                return
            self._conns.add(conn)
        try:
            self._serve_conn(conn)
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _serve_conn(self, conn):
        with conn:
            try:
                header = read_proxy_header(conn)
            except (ValueError, EOFError, OSError) as e:
                with self._lock:
                    self.connections.append({"error": str(e)})
                return
            with self._lock:
                self.connections.append(header)
                number = len(self.connections) - 1
            buf = b""
            try:
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    body = json.dumps({"proxy": header, "conn": number}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
            except OSError:
                return
