"""An upstream that records every byte it receives, in the test's own process, so a test
can assert exactly what torii forwarded (or that it forwarded nothing).

Default (answer=None): each connection gets one `200 ok` answer per request head it
completes, then Connection: close.

    rec = RecordingBackend(port).start();  rec.port;  rec.data();  rec.clear();  rec.stop()

Parsing (answer given, or parse=True): the connection is kept alive and read the way a
plain HTTP/1.1 origin reads it: a head up to the empty line, then a body framed by
Transfer-Encoding (chunked; it wins over Content-Length, as most servers do) or
Content-Length, then the next request. Each request it parsed is kept (rec.requests()),
so a test sees how many requests a backend would have read from what torii sent, and a
smuggled one shows up as a request of its own. `answer(req)` returns the bytes to send back
(or a list of bytes and pauses in seconds (floats), written in turn; or either in a pair
(reply, "close" | "reset") to end the connection after it); the default answer is `200 ok`
with keep-alive.
"""

import socket
import struct
import threading
import time

HOST = "127.0.0.1"
OK_KEEPALIVE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


class Parsed:
    """One request as the backend read it: the exact head bytes, the exact body bytes on the
    wire (chunk framing included) and the decoded body."""

    def __init__(self, conn, head):
        self.conn = conn          # index of the connection (accept order)
        self.head = head          # request line and fields, up to and with the empty line
        self.wire_body = b""      # body bytes as sent (chunk sizes and CRLFs included)
        self.body = b""           # decoded body
        self.complete = False     # the whole body arrived
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.fields = [tuple(x.split(":", 1)) for x in lines[1:] if x]

    @property
    def target(self):
        parts = self.request_line.split(" ")
        return parts[1] if len(parts) > 1 else ""

    def get_all(self, name):
        name = name.lower()
        return [v.strip(" \t") for k, v in self.fields if k.lower() == name]

    def names(self):
        return [k.lower() for k, _ in self.fields]

    def __repr__(self):
        return "<Parsed %r %r body=%r>" % (self.request_line, self.fields, self.body[:80])


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        got = self.sock.recv(65536)
        if not got:
            raise EOFError
        self.buf += got
        return got

    def take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n") + 2
        return self.take(i)


class RecordingBackend:
    def __init__(self, port, answer=None, parse=False):
        self.port = port
        self.answer = answer
        self.parse = parse or answer is not None
        self._lock = threading.Lock()
        self._received = {}  # connection index (accept order) -> bytes received on it
        self._accepted = 0
        self._closed = set()  # indexes of the connections that ended
        self._requests = []  # Parsed, in the order they were read
        self._stop = threading.Event()
        self._sock = None
        self._thread = None

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                index = self._accepted
                self._accepted += 1
                self._received[index] = b""
            serve = self._serve_parsed if self.parse else self._serve
            threading.Thread(target=serve, args=(c, index), daemon=True).start()

    def _record(self, index, got):
        with self._lock:  # a connection kept across clear() starts again from nothing
            self._received[index] = self._received.get(index, b"") + got

    def _serve(self, c, index):
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                got = c.recv(65536)
                if not got:
                    break
                data += got
                self._record(index, got)
            if b"\r\n\r\n" in data:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except OSError:
            pass
        finally:
            c.close()

    def _serve_parsed(self, c, index):
        c.settimeout(5)
        conn = _Conn(c)
        recv = conn.fill

        def recording_fill():
            got = recv()
            self._record(index, got)
            return got
        conn.fill = recording_fill
        try:
            for _ in range(1000):  # requests per connection, bounded
                req = self._read_request(conn, index)
                if req is None:
                    return
                reply = self.answer(req) if self.answer else OK_KEEPALIVE
                action = "keep"
                if isinstance(reply, tuple):
                    reply, action = reply
                for piece in reply if isinstance(reply, list) else [reply]:
                    if isinstance(piece, float):
                        time.sleep(piece)  # a pause between writes
                    elif piece:
                        c.sendall(piece)
                if action == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if action == "close" or not req.complete:
                    return
        except (EOFError, OSError, ValueError):
            pass
        finally:
            c.close()
            with self._lock:
                self._closed.add(index)

    def _read_request(self, conn, index):
        while b"\r\n\r\n" not in conn.buf:
            try:
                conn.fill()
            except EOFError:
                return None
        head = conn.take(conn.buf.index(b"\r\n\r\n") + 4)
        req = Parsed(index, head)
        with self._lock:
            self._requests.append(req)
        te = ",".join(req.get_all("transfer-encoding")).lower()
        cl = req.get_all("content-length")
        if "chunked" in te:
            while True:
                size_line = conn.line()
                req.wire_body += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                while len(conn.buf) < size + 2:
                    conn.fill()
                data = conn.take(size + 2)
                req.wire_body += data
                req.body += data[:size]
            while True:  # trailer section
                t = conn.line()
                req.wire_body += t
                if t == b"\r\n":
                    break
        elif cl:
            n = int(cl[0])
            while len(conn.buf) < n:
                conn.fill()
            req.body = req.wire_body = conn.take(n)
        req.complete = True
        return req

    def data(self):
        """Everything received so far, all connections joined."""
        with self._lock:
            return b"".join(v for _, v in sorted(self._received.items()))

    def connections(self):
        """The bytes received on each connection since clear(), in accept order."""
        with self._lock:
            return [v for _, v in sorted(self._received.items())]

    def closed(self, index):
        """Whether connection `index` has ended (parsing mode)."""
        with self._lock:
            return index in self._closed

    def accepted(self):
        """Connections accepted since start (clear() does not reset it)."""
        with self._lock:
            return self._accepted

    def requests(self):
        """The requests parsed so far (parsing mode)."""
        with self._lock:
            return list(self._requests)

    def clear(self):
        with self._lock:
            self._received = {}
            self._requests = []

    def settle(self, seconds=0.3):
        """Waits a moment so bytes torii might still forward have arrived."""
        time.sleep(seconds)
        return self.data()

    def stop(self):
        self._stop.set()
        if self._sock:
            self._sock.close()
        if self._thread:
            self._thread.join(timeout=2)
