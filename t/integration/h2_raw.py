"""A raw HTTP/2 client for conformance tests: frames are built with Debian's python3-hyperframe
and written as they are, so a test can send what a well-behaved library never would.

    c = H2Raw(port)                       # preface, SETTINGS exchanged and acknowledged
    c.send(c.headers(1, get("/")))        # frames or bytes
    c.expect_stream_error(1, PROTOCOL_ERROR)
    assert c.request(3) == 200            # the connection survived
    c.expect_connection_error(FRAME_SIZE_ERROR)

Header blocks are HPACK literals without indexing, written by hand (any name, any byte in a
value, no dynamic table), so each block means the same whatever came before it. Responses
are decoded with python3-hpack. Every wait is bounded.
"""

import socket
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 section 7
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

# SETTINGS identifiers
ENABLE_PUSH = 0x2
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
ENABLE_CONNECT_PROTOCOL = 0x8


def _hpack_int(value, prefix_bits, first_byte=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_string(s):
    return _hpack_int(len(s), 7) + s


def literal(name, value):
    """One field as an HPACK literal without indexing, with a literal name."""
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    return b"\x00" + _hpack_string(name) + _hpack_string(value)


def block(fields):
    return b"".join(literal(n, v) for n, v in fields)


def get(path="/", authority="h", extra=(), method="GET"):
    """The fields of a plain request, pseudo-headers first."""
    return [(":method", method), (":scheme", "http"), (":authority", authority),
            (":path", path)] + list(extra)


def raw_frame(ftype, flags, stream_id, payload):
    """A frame header and payload exactly as given (lengths hyperframe would refuse)."""
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
            (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + payload)


class Closed(Exception):
    pass


class H2Raw:
    def __init__(self, port, settings=None, timeout=5.0, handshake=True, auto_window=True):
        self.auto_window = auto_window  # give back every DATA byte read (WINDOW_UPDATE)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # A frame written right after another (a WINDOW_UPDATE for the DATA just read, then
        # the next HEADERS) would otherwise wait for the server's delayed ACK: 40 ms a time.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frames = []        # every frame received, in order
        self.closed = False     # the server closed the connection
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.server_settings = {}
        self._block = {}        # stream id -> header block being continued
        self.headers_of = {}    # stream id -> [decoded header lists], in order
        self.data_of = {}       # stream id -> body bytes received
        self.ended = set()      # streams the server ended (END_STREAM)
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
        if handshake:
            self.wait(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
            self.send(SettingsFrame(0, flags=["ACK"]))
            self.wait(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags)

    # -- sending ---------------------------------------------------------------------------

    def send(self, *items):
        data = b"".join(x if isinstance(x, bytes) else x.serialize() for x in items)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server ended the connection: what it sent first is still to be read

    def headers(self, sid, fields, end_stream=True, end_headers=True, **kw):
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(sid, block(fields), flags=flags, **kw)

    def data(self, sid, payload, end_stream=False):
        return DataFrame(sid, payload, flags=["END_STREAM"] if end_stream else [])

    # -- receiving -------------------------------------------------------------------------

    def _parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            frame, _ = Frame.parse_frame_header(memoryview(self.buf[:9]))
            frame.parse_body(memoryview(self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
            self._note(frame)
            self.frames.append(frame)

    def _note(self, f):
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.server_settings.update(f.settings)
        if isinstance(f, (HeadersFrame, ContinuationFrame)):
            self._block[f.stream_id] = self._block.get(f.stream_id, b"") + f.data
            if "END_HEADERS" in f.flags:
                fields = self.decoder.decode(self._block.pop(f.stream_id), raw=True)
                self.headers_of.setdefault(f.stream_id, []).append(fields)
        if isinstance(f, DataFrame):
            self.data_of[f.stream_id] = self.data_of.get(f.stream_id, b"") + f.data
            if f.data and self.auto_window:  # keep the server's windows open for what we read
                self.send(WindowUpdateFrame(0, window_increment=len(f.data)),
                          WindowUpdateFrame(f.stream_id, window_increment=len(f.data)))
        if isinstance(f, (HeadersFrame, DataFrame)) and "END_STREAM" in f.flags:
            self.ended.add(f.stream_id)

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.closed:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        self._parse()
        return True

    def wait(self, pred, timeout=5.0):
        """The first frame received (from now on or earlier) for which pred is true, or
        None when the connection closed or `timeout` passed."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for f in self.frames[seen:]:
                if pred(f):
                    return f
            seen = len(self.frames)
            if not self._read(deadline):
                for f in self.frames[seen:]:
                    if pred(f):
                        return f
                return None

    def goaway(self, timeout=5.0):
        return self.wait(lambda f: isinstance(f, GoAwayFrame), timeout)

    def rst(self, sid, timeout=5.0):
        return self.wait(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == sid, timeout)

    def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline)
        return self.closed

    def response(self, sid, timeout=5.0):
        """(status, headers dict, body) of stream sid once the server ended it; None if it
        was reset or nothing came in time."""
        f = self.wait(lambda f: (sid in self.ended) or
                      (isinstance(f, RstStreamFrame) and f.stream_id == sid), timeout)
        if f is None or sid not in self.ended:
            return None
        head = dict((n.decode(), v.decode(errors="replace")) for n, v in self.headers_of[sid][0])
        return int(head[":status"]), head, self.data_of.get(sid, b"")

    def request(self, sid, path="/", timeout=5.0):
        """Sends a GET on stream sid and returns its status (None if none came)."""
        self.send(self.headers(sid, get(path)))
        r = self.response(sid, timeout)
        return r[0] if r else None

    # -- assertions --------------------------------------------------------------------------

    def expect_connection_error(self, code, timeout=5.0):
        """RFC 9113 5.4.1: a GOAWAY with `code`, then the connection is closed."""
        g = self.goaway(timeout)
        assert g is not None, "no GOAWAY; frames: %r" % self.frames
        assert g.error_code == code, "GOAWAY code %d, expected %d" % (g.error_code, code)
        assert self.wait_closed(timeout), "the connection stayed open after GOAWAY"
        return g

    def expect_stream_error(self, sid, code, next_sid, timeout=5.0, escalated=False):
        """RFC 9113 5.4.2: RST_STREAM with `code` for sid; the connection lives on (a request
        on next_sid is answered) and no GOAWAY came.

        escalated=True: the answer is a connection error with that code instead, which 5.4.1
        allows ("an endpoint MAY choose to treat a stream error as a connection error") and
        libnghttp2 1.52 does for this case; a stream reset is still accepted."""
        f = self.wait(lambda f: isinstance(f, GoAwayFrame) or
                      (isinstance(f, RstStreamFrame) and f.stream_id == sid), timeout)
        assert f is not None, "no RST_STREAM on %d; frames: %r" % (sid, self.frames)
        if escalated and isinstance(f, GoAwayFrame):
            assert f.error_code == code, "GOAWAY code %d, expected %d" % (f.error_code, code)
            assert self.wait_closed(timeout), "the connection stayed open after GOAWAY"
            return
        assert isinstance(f, RstStreamFrame), "a connection error: %r" % self.frames
        assert f.error_code == code, "RST_STREAM code %d, expected %d" % (f.error_code, code)
        assert self.request(next_sid) == 200, "no answer on %d after the stream error: %r" % (
            next_sid, self.frames)
        assert not any(isinstance(f, GoAwayFrame) for f in self.frames), self.frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

