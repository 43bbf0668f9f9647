#!/usr/bin/python3
"""A small HTTP/1.1 origin server for torii's integration tests.

Run as a subprocess:  /usr/bin/python3 backend.py --port N [--name NAME] [--mode MODE]

Plain sockets and threads with its own HTTP/1.1 framing, so the tests control exactly what is
on the wire. Request bodies (Content-Length or chunked, with trailers) are streamed and hashed,
never held whole. Prints "ready" on stdout once listening.

Endpoints (matched on the last path segments, so any prefix works: /api/bytes, /x/y/bytes):
  .../bytes?n=N[&chunked=1][&trailer=1]  N bytes of pattern() in 64 KiB writes
  .../status/CODE                        that status, short text body
  .../slow?ms=M                          sleep M ms, then the echo answer
  .../slowbody?ms=M                      head with Content-Length 10, sleep M ms, then the body
  .../close                              echo answer with Connection: close, then close
  .../early                              103 Early Hints (Link), then the echo answer
  .../cutbody, .../resetbody             10 of 100 promised bytes, then FIN / RST
  .../nolength?n=N                       N bytes of pattern() without Content-Length or
                                         chunked: the body ends when the connection closes
  .../trickle?n=N&ms=M                   head with Content-Length N, then one byte every M ms
  .../dropnext[?rst=1]                   echo answer (keep-alive); the next request on this
                                         connection is read, not answered: FIN (RST with rst=1)
  .../closeidle?ms=M[&rst=1]             echo answer (keep-alive); if no request follows
                                         within M ms, the connection closes (FIN, or RST)
  .../hop                                200 with hop-by-hop headers (see handle_hop), then close
  .../__connections                      {"accepted": TCP connections accepted so far}
  anything else (/echo...)               200 JSON echo of the request (see echo_document)

Modes for misbehaving upstreams:
  normal   the above
  garbage  reads the request head, answers bytes that are not HTTP, closes
  reset    reads the request head, closes with RST (SO_LINGER 0)
  silent   reads, never answers (keeps the connection until the peer closes, at most 120 s)
"""

import argparse
import hashlib
import json
import select
import socket
import ssl
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
MAX_HEAD = 1024 * 1024
IDLE_TIMEOUT = 120.0  # an idle or stuck connection is dropped after this

# ---------------------------------------------------------------------------------------------
# The deterministic body pattern, shared with the tests (harness.py imports these).
# Byte i is (i + i // 251) & 0xff: period 251 * 256 = 64256, which is not a divisor of any
# power of two, so a lost, repeated or reordered 4 KiB / 16 KiB / 64 KiB block changes the hash.

PATTERN_PERIOD = 251 * 256
_PATTERN = bytes(((i + i // 251) & 0xFF) for i in range(PATTERN_PERIOD + CHUNK))


def pattern_slice(offset, length):
    """Bytes [offset, offset + length) of the pattern; length <= CHUNK."""
    assert 0 <= length <= CHUNK
    start = offset % PATTERN_PERIOD
    return memoryview(_PATTERN)[start:start + length]


def pattern_chunks(n, chunk=CHUNK):
    """Yields the first n bytes of the pattern as memoryviews of at most `chunk` bytes."""
    chunk = min(chunk, CHUNK)
    off = 0
    while off < n:
        k = min(chunk, n - off)
        yield pattern_slice(off, k)
        off += k


def pattern_sha256(n):
    h = hashlib.sha256()
    for piece in pattern_chunks(n):
        h.update(piece)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 418: "I'm a teapot",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class ClientGone(Exception):
    pass


class BadRequest(Exception):
    pass


class Reader:
    """Buffered reads off a socket: lines and exact byte counts."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        try:
            data = self.sock.recv(256 * 1024)
        except (ConnectionError, socket.timeout, OSError) as e:
            raise ClientGone(str(e))
        if not data:
            raise ClientGone("eof")
        self.buf += data

    def readline(self, limit=MAX_LINE):
        """One line including its LF; raises BadRequest past `limit`."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if start > limit:
                raise BadRequest("line too long")
            self._fill()

    def read_some(self, n):
        """Up to n bytes (at least 1)."""
        if not self.buf:
            self._fill()
        k = min(n, len(self.buf))
        data = bytes(self.buf[:k])
        del self.buf[:k]
        return data


class Request:
    def __init__(self):
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []  # [(name, value)] as received
        self.body_len = 0
        self.body_sha = hashlib.sha256()
        self.chunked = False
        self.trailers = []

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def connection_tokens(self):
        toks = set()
        for v in self.header_all("connection"):
            toks.update(t.strip().lower() for t in v.split(",") if t.strip())
        return toks

    def wants_close(self):
        toks = self.connection_tokens()
        if "close" in toks:
            return True
        if self.version == "HTTP/1.0" and "keep-alive" not in toks:
            return True
        return False


class Backend:
    def __init__(self, name, mode, tls=None):
        self.name = name
        self.mode = mode
        self.tls = tls  # an ssl.SSLContext: serve HTTPS
        self.lock = threading.Lock()
        self.accepted = 0

    # -- connection loop ------------------------------------------------------------------

    def serve_connection(self, sock, conn_id):
        sock.settimeout(IDLE_TIMEOUT)
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            if self.mode == "normal":
                self.serve_http(sock, conn_id)
            elif self.mode == "garbage":
                self.serve_garbage(sock)
            elif self.mode == "reset":
                self.serve_reset(sock)
            elif self.mode == "silent":
                self.serve_silent(sock)
        except (ClientGone, ConnectionError, socket.timeout, OSError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def read_head_loosely(self, sock, timeout=2.0):
        """For the bad modes: read until an empty line, EOF or `timeout`."""
        sock.settimeout(timeout)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        return data

    def serve_garbage(self, sock):
        self.read_head_loosely(sock)
        sock.sendall(b"\x00\xffTHIS IS NOT HTTP AT ALL\r\n\x01\x02\x03 garbage garbage\r\n\r\n")
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        time.sleep(0.2)

    def serve_reset(self, sock):
        self.read_head_loosely(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def serve_silent(self, sock):
        sock.settimeout(IDLE_TIMEOUT)
        deadline = time.monotonic() + IDLE_TIMEOUT
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return

    def serve_http(self, sock, conn_id):
        reader = Reader(sock)
        drop_next = None
        for _ in range(100000):  # requests per connection, bounded
            try:
                req = self.read_request_head(reader)
            except ClientGone:
                return
            except BadRequest as e:
                self.send_simple(sock, 400, "bad request: %s\n" % e, close=True)
                return
            if req is None:
                return
            if drop_next:  # marked by .../dropnext: ends without an answer
                if drop_next == "rst":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            req.sock = sock  # for the echo's "tls" part
            try:
                # Expect: 100-continue reaches us only if the proxy forwarded it.
                expect = req.header("expect")
                if expect is not None and expect.strip().lower() == "100-continue":
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.read_body(reader, req)
            except BadRequest as e:
                self.send_simple(sock, 400, "bad request body: %s\n" % e, close=True)
                return
            keep = self.respond(sock, req, conn_id)
            if not keep or req.wants_close():
                return
            drop_next = getattr(req, "drop_next", None)
            idle_ms = getattr(req, "close_idle_ms", None)
            if idle_ms is not None and not reader.buf and \
                    not select.select([sock], [], [], idle_ms / 1000.0)[0]:
                if getattr(req, "close_idle_rst", False):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return

    def read_request_head(self, reader):
        # Skip empty lines before a request line (RFC 9112 section 2.2).
        line = b""
        for _ in range(16):
            line = reader.readline()
            if line.strip():
                break
        else:
            raise BadRequest("only empty lines")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise BadRequest("request line %r" % line[:100])
        req = Request()
        req.method, req.target, req.version = parts
        total = len(line)
        while True:
            h = reader.readline()
            total += len(h)
            if total > MAX_HEAD:
                raise BadRequest("head too large")
            if h in (b"\r\n", b"\n"):
                break
            text = h.decode("latin-1").rstrip("\r\n")
            if ":" not in text:
                raise BadRequest("header line %r" % text[:100])
            k, v = text.split(":", 1)
            req.headers.append((k, v.strip(" \t")))
        return req

    def read_body(self, reader, req):
        te = ",".join(req.header_all("transfer-encoding")).lower()
        if te:
            if te.replace(" ", "").split(",")[-1] != "chunked":
                raise BadRequest("unsupported transfer-encoding %r" % te)
            req.chunked = True
            self.read_chunked(reader, req)
            return
        cls = req.header_all("content-length")
        if not cls:
            return
        if len(set(v.strip() for v in cls)) != 1 or not cls[0].strip().isdigit():
            raise BadRequest("content-length %r" % cls)
        remaining = int(cls[0].strip())
        while remaining > 0:
            data = reader.read_some(min(remaining, 256 * 1024))
            req.body_sha.update(data)
            req.body_len += len(data)
            remaining -= len(data)

    def read_chunked(self, reader, req):
        while True:
            line = reader.readline(limit=4096).decode("latin-1").strip()
            size_text = line.split(";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("chunk size %r" % line[:50])
            if size < 0:
                raise BadRequest("negative chunk size")
            if size == 0:
                break
            remaining = size
            while remaining > 0:
                data = reader.read_some(min(remaining, 256 * 1024))
                req.body_sha.update(data)
                req.body_len += len(data)
                remaining -= len(data)
            if reader.readline(limit=16) not in (b"\r\n", b"\n"):
                raise BadRequest("no CRLF after chunk data")
        for _ in range(1000):
            t = reader.readline()
            if t in (b"\r\n", b"\n"):
                return
            text = t.decode("latin-1").rstrip("\r\n")
            if ":" not in text:
                raise BadRequest("trailer line %r" % text[:100])
            k, v = text.split(":", 1)
            req.trailers.append((k, v.strip(" \t")))
        raise BadRequest("too many trailers")

    # -- responses ------------------------------------------------------------------------

    def head_bytes(self, status, headers):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_simple(self, sock, status, body, close=False, head_only=False, extra=()):
        body = body.encode() if isinstance(body, str) else body
        headers = [("Server", "backend/" + self.name), ("X-Backend", self.name)]
        headers += list(extra)
        if status not in (204, 304):
            headers.append(("Content-Type", "text/plain"))
            headers.append(("Content-Length", str(len(body))))
        else:
            body = b""
        if close:
            headers.append(("Connection", "close"))
        try:
            sock.sendall(self.head_bytes(status, headers) + (b"" if head_only else body))
        except OSError:
            raise ClientGone("send")

    def echo_document(self, req, conn_id):
        expect = req.header("expect")
        return {
            "backend": self.name,
            "method": req.method,
            "path": req.target,
            "http_version": req.version,
            "headers": [[k, v] for k, v in req.headers],
            "body_len": req.body_len,
            "body_sha256": req.body_sha.hexdigest(),
            "chunked": req.chunked,
            "trailers": [[k, v] for k, v in req.trailers],
            "expect": expect,
            "conn_id": conn_id,
            "tls": self.tls_document(req),
        }

    def tls_document(self, req):
        sock = getattr(req, "sock", None)
        if not hasattr(sock, "version"):
            return None
        cert = sock.getpeercert()
        subject = ",".join("%s=%s" % kv for rdn in cert.get("subject", ()) for kv in rdn) \
            if cert else None
        return {"version": sock.version(), "client_subject": subject,
                "server_name": getattr(sock, "sni", None), "session_reused": sock.session_reused}

    def send_json(self, sock, req, doc, status=200, close=False, extra=()):
        body = (json.dumps(doc) + "\n").encode()
        headers = [("Server", "backend/" + self.name), ("X-Backend", self.name),
                   ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += list(extra)
        if close:
            headers.append(("Connection", "close"))
        data = self.head_bytes(status, headers)
        if req.method != "HEAD":
            data += body
        try:
            sock.sendall(data)
        except OSError:
            raise ClientGone("send")

    def respond(self, sock, req, conn_id):
        """Answers one request; returns False when the connection must close."""
        split = urlsplit(req.target)
        segs = [s for s in split.path.split("/") if s]
        last = segs[-1] if segs else ""
        q = parse_qs(split.query)

        def qint(name, default):
            try:
                return int(q.get(name, [str(default)])[0])
            except ValueError:
                return default

        head_only = req.method == "HEAD"
        if last == "__connections":
            with self.lock:
                accepted = self.accepted
            self.send_json(sock, req, {"backend": self.name, "accepted": accepted})
            return True
        if len(segs) >= 2 and segs[-2] == "status" and last.isdigit():
            code = int(last)
            if code < 200 or code > 999:
                code = 400
            self.send_simple(sock, code, "status %d from %s\n" % (code, self.name),
                             head_only=head_only)
            return True
        if last == "bytes":
            return self.send_bytes(sock, req, qint("n", 0), q.get("chunked") == ["1"],
                                   q.get("trailer") == ["1"])
        if last == "slow":
            time.sleep(max(0, qint("ms", 0)) / 1000.0)
            self.send_json(sock, req, self.echo_document(req, conn_id))
            return True
        if last == "slowbody":
            headers = [("Server", "backend/" + self.name), ("Content-Type", "text/plain"),
                       ("Content-Length", "10")]
            sock.sendall(self.head_bytes(200, headers))
            time.sleep(max(0, qint("ms", 0)) / 1000.0)
            if not head_only:
                sock.sendall(b"0123456789")
            return True
        if last == "close":
            self.send_json(sock, req, self.echo_document(req, conn_id), close=True)
            return False
        if last in ("cutbody", "resetbody"):
            # 10 of the 100 bytes the head promises, then a close (FIN) or a reset (RST)
            headers = [("Server", "backend/" + self.name), ("Content-Length", "100")]
            sock.sendall(self.head_bytes(200, headers) + b"0123456789")
            time.sleep(0.05)
            if last == "resetbody":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if last == "nolength":
            headers = [("Server", "backend/" + self.name), ("Content-Type", "text/plain")]
            sock.sendall(self.head_bytes(200, headers))
            if not head_only:
                for piece in pattern_chunks(max(0, qint("n", 0))):
                    sock.sendall(piece)
            return False
        if last == "trickle":
            n = max(0, qint("n", 0))
            headers = [("Server", "backend/" + self.name), ("Content-Length", str(n))]
            sock.sendall(self.head_bytes(200, headers))
            for piece in pattern_chunks(n, chunk=1):
                time.sleep(max(0, qint("ms", 0)) / 1000.0)
                sock.sendall(piece)
            return True
        if last in ("dropnext", "closeidle"):
            rst = q.get("rst") == ["1"]
            if last == "dropnext":
                req.drop_next = "rst" if rst else "fin"
            else:
                req.close_idle_ms = max(0, qint("ms", 0))
                req.close_idle_rst = rst
            self.send_json(sock, req, self.echo_document(req, conn_id))
            return True
        if last == "early":
            # 103 Early Hints (with a field a proxy must drop), then the echo answer
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n"
                         b"Connection: X-Hint-Secret\r\nX-Hint-Secret: s\r\n\r\n")
            self.send_json(sock, req, self.echo_document(req, conn_id))
            return True
        if last == "switch101":
            # 101 without the Upgrade and Connection: upgrade it needs (RFC 9110 15.2.2), so
            # not an upgrade: a body by Content-Length that reads like a second response
            body = (b"HTTP/1.1 200 OK\r\nX-Injected: from-the-body\r\n"
                    b"Content-Length: 0\r\n\r\n")
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            return False
        if last == "hop":
            extra = [("Connection", "close, X-Hop-Resp"), ("Keep-Alive", "timeout=5"),
                     ("X-Hop-Resp", "secret"), ("X-End", "kept")]
            body = b"hop\n"
            headers = [("Server", "backend/" + self.name), ("Content-Type", "text/plain"),
                       ("Content-Length", str(len(body)))] + extra
            sock.sendall(self.head_bytes(200, headers) + (b"" if head_only else body))
            return False
        self.send_json(sock, req, self.echo_document(req, conn_id))
        return True

    def send_bytes(self, sock, req, n, chunked, trailer):
        n = max(0, n)
        headers = [("Server", "backend/" + self.name), ("X-Backend", self.name),
                   ("Content-Type", "application/octet-stream")]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
            if trailer:
                headers.append(("Trailer", "X-Checksum"))
        else:
            headers.append(("Content-Length", str(n)))
        sock.sendall(self.head_bytes(200, headers))
        if req.method == "HEAD":
            return True
        h = hashlib.sha256()
        for piece in pattern_chunks(n):
            if trailer:
                h.update(piece)
            if chunked:
                sock.sendall(b"%x\r\n" % len(piece))
                sock.sendall(piece)
                sock.sendall(b"\r\n")
            else:
                sock.sendall(piece)
        if chunked:
            end = b"0\r\n"
            if trailer:
                end += b"X-Checksum: " + h.hexdigest().encode() + b"\r\n"
            sock.sendall(end + b"\r\n")
        return True

    # -- accept loop ----------------------------------------------------------------------

    def run(self, port, host):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind((host, port))
        except OSError as e:
            print("backend: cannot bind %s:%d: %s" % (host, port, e), file=sys.stderr, flush=True)
            sys.exit(3)
        ls.listen(512)
        print("ready", flush=True)
        while True:
            try:
                sock, _ = ls.accept()
            except InterruptedError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.accepted += 1
                conn_id = self.accepted
            t = threading.Thread(target=self.serve_connection, args=(sock, conn_id), daemon=True)
            t.start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="backend")
    ap.add_argument("--mode", default="normal", choices=["normal", "garbage", "reset", "silent"])
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (and --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca", help="require a client certificate from this CA")
    args = ap.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.load_verify_locations(args.tls_client_ca)
            tls.verify_mode = ssl.CERT_REQUIRED

        def remember_sni(sslsock, name, _ctx):
            sslsock.sni = name
        tls.sni_callback = remember_sni
    try:
        Backend(args.name, args.mode, tls).run(args.port, args.host)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
