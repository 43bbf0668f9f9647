#!/usr/bin/python3
"""Writes the seed corpora of t/fuzz/corpus/: small, hand-made inputs, valid and edge-case,
one file per input. Run with Debian's python (python3-h2 builds the HTTP/2 frames):
    /usr/bin/python3 t/fuzz/make_seeds.py
Files are named after what they hold; rerunning rewrites them byte for byte."""
import hashlib
import hmac
import os
import base64
import json
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# -- http1_request: option byte (piece size, '_' allowed, body limit, head limit), bytes --
req = {
    "get": (0x00, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"),
    "post_length_split4": (0x03, "POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"),
    "chunked_trailers": (0x11, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
    "chunked_body_limit": (0x41, "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n"),
    "pipelined": (0x07, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n"
                        "Connection: close\r\n\r\n"),
    "head_too_large": (0x80, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + "a" * 300 + "\r\n\r\n"),
    "cl_and_te": (0x00, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te_gzip_chunked": (0x00, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    "te_chunked_twice": (0x00, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "two_hosts": (0x00, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    "http10_no_host": (0x02, "GET /old HTTP/1.0\r\nX: y\r\n\r\n"),
    "underscore_name": (0x20, "GET / HTTP/1.1\r\nHost: h\r\nX_User: bob\r\nX-User: alice\r\n\r\n"),
    "underscore_dropped": (0x00, "GET / HTTP/1.1\r\nHost: h\r\nX_User: bob\r\n\r\n"),
    "websocket_upgrade": (0x00, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\nframes"),
    "expect_continue": (0x01, "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                              "Content-Length: 2\r\n\r\nok"),
    "connect": (0x05, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    "space_before_colon": (0x00, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For : 1.2.3.4\r\n\r\n"),
    "bare_lf": (0x00, "GET / HTTP/1.1\nHost: h\n\n"),
    "absolute_form": (0x04, "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    "long_value_split1": (0x00, "GET / HTTP/1.1\r\nHost: h\r\nCookie: " + "k=v; " * 40 + "\r\n\r\n"),
}
for name, (opt, wire) in req.items():
    write("http1_request", name, bytes([opt]) + wire.encode())

# -- http1_response: option byte (piece size, HEAD request, body limit), upstream bytes --
resp = {
    "length": (0x00, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"),
    "chunked_trailers": (0x12, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "4\r\nwiki\r\n0\r\ngrpc-status: 0\r\n\r\n"),
    "until_close": (0x03, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it until the end"),
    "head_with_length": (0x20, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    "no_content": (0x00, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"),
    "not_modified": (0x00, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
    "continue_then_ok": (0x01, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "switching": (0x00, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n\r\n\x81\x02hi"),
    "keepalive_two": (0x45, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!"
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    "empty_reason": (0x00, "HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n"),
    "cut_short": (0x00, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "http10": (0x00, "HTTP/1.0 200 OK\r\n\r\nbody"),
    "bad_status": (0x00, "HTTP/1.1 2000 OK\r\n\r\n"),
    "cl_and_chunked": (0x00, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0\r\n\r\n"),
}
for name, (opt, wire) in resp.items():
    write("http1_response", name, bytes([opt]) + wire.encode("latin-1"))

# -- proxy_protocol: the balancer's bytes --
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, block):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(block)) + block


v4_block = bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack("!HH", 56324, 443)
v6_block = bytes(range(16)) + bytes(range(16, 32)) + struct.pack("!HH", 1, 2)
pp = {
    "v1_tcp4": b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\n\x16\x03\x01",
    "v1_unknown_with_fields": b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 1 2\r\n",
    "v1_mapped": b"PROXY TCP6 ::ffff:192.0.2.1 ::ffff:10.0.0.1 80 8080\r\n",
    "v1_bad_port": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n",
    "v1_partial": b"PROXY TCP4 1.2.3.4 5.6.7",
    "v2_tcp4": v2(1, 0x11, v4_block) + b"\x16\x03\x01\x00",
    "v2_tcp6_tlvs": v2(1, 0x21, v6_block + b"\x01\x00\x02h2\x04\x00\x00") + b"GET",
    "v2_local": v2(0, 0x00, b""),
    "v2_unix": v2(1, 0x31, b"\x00" * 216),
    "v2_short_block": v2(1, 0x11, v4_block[:8]),
    "v2_truncated": v2(1, 0x11, v4_block)[:20],
    "v2_bad_version": SIG + b"\x31\x11\x00\x0c" + v4_block,
    "not_proxy": b"GET / HTTP/1.1\r\n\r\n",
}
for name, data in pp.items():
    write("proxy_protocol", name, data)

# -- config: TOML text --
configs = {
    "minimal": '[[server]]\nlisten = "127.0.0.1:8080"\n[[server.location]]\npath = "/"\n'
               'return = { status = 200, body = "hi\\n" }\n',
    "upstream_health": '''[main]
workers = 2
shutdown_timeout = "5s"
[upstream.api]
targets = [ { address = "127.0.0.1:9001", weight = 1 }, { address = "[::1]:9002", weight = 3 } ]
keepalive = 8
connect_timeout = "2s"
[upstream.api.health]
path = "/healthz"
interval = "1s"
[[server]]
listen = ["127.0.0.1:8080", "[::1]:8080"]
server_name = ["example.com", "*.example.org"]
[[server.location]]
path = "/api/"
upstream = "api"
strip_prefix = true
[[server.location]]
path = "^/v[0-9]+/"
match = "regex"
upstream = "api"
''',
    "plugins": '''[[plugin]]
name = "auth"
[[plugin]]
name = "header_rewrite"
[[server]]
listen = "127.0.0.1:8080"
[server.plugins.header_rewrite]
response_set = { X-Served-By = "torii" }
[[server.location]]
path = "/private/"
return = { status = 200 }
[server.location.plugins.auth]
type = "key"
keys = [ { key = "k-123", consumer = "alice" } ]
[server.location.plugins.header_rewrite]
request_set = { X-Consumer = "$consumer" }
path = { regex = "^/private/(.*)$", replace = "/$1" }
[[server.location]]
path = "/"
return = { status = 404 }
[server.location.plugins.header_rewrite]
enabled = false
''',
    "admin_tcp": '''[admin]
listen = "127.0.0.1:9901"
[upstream.db]
protocol = "tcp"
targets = [ { address = "127.0.0.1:5432" } ]
[[server]]
listen = "127.0.0.1:15432"
protocol = "tcp"
upstream = "db"
proxy_protocol = true
''',
    "bad_type": '[main]\nworkers = "many"\n',
    "unknown_key": '[[server]]\nlistn = "127.0.0.1:80"\n',
    "bad_toml": '[main\nworkers = 1\n',
}
for name, text in configs.items():
    write("config", name, text)
with open(os.path.join(HERE, "..", "..", "conf", "torii.toml"), "rb") as f:
    write("config", "default_conf", f.read())

# -- template: template, status byte, method, target, authority, remote address, headers --
def request_fields(status=0, method="GET", target="/api/users?id=42&debug&name=x%20y",
                   authority="example.com:8080", remote="10.1.2.3",
                   headers=("X-User: alice", "Cookie: a=1; session=abc; b=2")):
    return bytes([status]) + "\n".join([method, target, authority, remote, *headers]).encode()


templates = {
    "mixed": "$remote_addr:${http_x_user}/$arg_id!",
    "families": "$cookie_session $arg_debug $arg_missing $http_cookie",
    "numbers": "$status $remote_port $bytes_sent $request_length",
    "request": "$request|$request_uri|$uri|$args|$host|$scheme|$server_protocol",
    "constant": "no variables at all",
    "request_id": "$request_id-$request_id",
    "unclosed": "${http_x_user",
    "unknown": "$nonsense",
    "dollar_end": "trailing $",
    "ipv6_host": "$host",
}
for name, t in templates.items():
    extra = request_fields(authority="[::1]:8443") if name == "ipv6_host" else request_fields(status=50)
    write("template", name, t.encode() + b"\n" + extra)

# -- rewrite: option byte, regex, replace, 4 x (name, template), removed name, request --
def rewrite(opt, regex, replace, pairs, removed, **kw):
    lines = [regex, replace]
    for n, v in pairs:
        lines += [n, v]
    lines.append(removed)
    return bytes([opt]) + "\n".join(lines).encode() + b"\n" + request_fields(**kw)


pairs = [("X-Client", "$remote_addr"), ("X-Trace", "$http_x_user-$arg_id"),
         ("Cache-Control", "no-store"), ("X-Served-By", "$status")]
write("rewrite", "everything", rewrite(0x3f, "^/api/(.*)$", "/v2/$1", pairs, "Cookie"))
write("rewrite", "path_only", rewrite(0x20, "^/(a)?(.*)$", "/x$2$1", pairs, "X"))
write("rewrite", "bad_regex", rewrite(0x20, "(unclosed", "/", pairs, "X"))
write("rewrite", "remove_only", rewrite(0x10, "", "", pairs, "X-User"))
write("rewrite", "header_from_cookie", rewrite(0x01, "", "", [("X-Session", "$cookie_session")] * 4, ""))

# -- jwt: option byte (1 ES256 location, 2 sign here, 4 right key, 8 lower-case bearer) --
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


good_claims = {"sub": "alice", "scope": "read", "iss": "torii-fuzz", "aud": "api", "exp": 4102444800}
hdr = {"alg": "HS256", "typ": "JWT"}
write("jwt", "signed_valid", bytes([0x06]) + (json.dumps(hdr) + "\n" + json.dumps(good_claims)).encode())
write("jwt", "signed_wrong_key", bytes([0x02]) + (json.dumps(hdr) + "\n" + json.dumps(good_claims)).encode())
write("jwt", "signed_aud_array", bytes([0x0e]) + (json.dumps(hdr) + "\n" + json.dumps(
    dict(good_claims, aud=["x", "api"], nbf=1, sub="b\u00e9\U0001F600"))).encode())
write("jwt", "signed_expired", bytes([0x06]) + (json.dumps(hdr) + "\n" + json.dumps(
    dict(good_claims, exp=1000))).encode())
write("jwt", "signed_missing_scope", bytes([0x06]) + (json.dumps(hdr) + "\n" + json.dumps(
    {k: v for k, v in good_claims.items() if k != "scope"})).encode())
write("jwt", "signed_alg_none", bytes([0x06]) + (json.dumps({"alg": "none"}) + "\n" + json.dumps(good_claims)).encode())
write("jwt", "signed_crit", bytes([0x06]) + (json.dumps(dict(hdr, crit=["x"])) + "\n" + json.dumps(good_claims)).encode())
write("jwt", "signed_nested", bytes([0x06]) + (json.dumps(hdr) + "\n" + json.dumps(
    dict(good_claims, extra={"a": [1, 2.5e3, True, False, None, {"b": "c"}]}))).encode())
tok = b64(json.dumps(hdr).encode()) + "." + b64(json.dumps(good_claims).encode())
sig = hmac.new(b"some other key", tok.encode(), hashlib.sha256).digest()
write("jwt", "raw_hs256", bytes([0x00]) + (tok + "." + b64(sig)).encode())
es_hdr = b64(json.dumps({"alg": "ES256"}).encode())
write("jwt", "raw_es256", bytes([0x01]) + (es_hdr + "." + b64(json.dumps(good_claims).encode()) + "." + b64(b"\x01" * 64)).encode())
write("jwt", "raw_five_parts", bytes([0x00]) + b"a.b.c.d.e")
write("jwt", "raw_padding", bytes([0x00]) + b"eyJhbGciOiJIUzI1NiJ9==.e30=.AA==")

# -- http2_frames: option byte (1: no preface, HTTP/1.1 bytes), then the client's bytes --
import h2.config
import h2.connection
import h2.events  # noqa: F401  (h2 needs it loaded)
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)
from hpack import Encoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_client():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    return c


def get(path="/", authority="h", extra=(), method="GET"):
    return [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path), *extra]


def out(c):
    data = c.data_to_send()
    return data[len(PREFACE):] if data.startswith(PREFACE) else data


c = h2_client()
c.send_headers(1, get(), end_stream=True)
write("http2_frames", "get", b"\x00" + out(c))

c = h2_client()
c.send_headers(1, get("/a", extra=[("content-length", "5")], method="POST"))
c.send_data(1, b"hello", end_stream=True)
c.send_headers(3, get("/none/"), end_stream=True)
write("http2_frames", "post_and_get", b"\x00" + out(c))

c = h2_client()
data = out(c)
enc = Encoder()
block = enc.encode(get("/split", extra=[("x-long", "v" * 100)]))
data += HeadersFrame(1, data=block[:10], flags=["END_STREAM"]).serialize()
data += ContinuationFrame(1, data=block[10:], flags=["END_HEADERS"]).serialize()
data += PingFrame(0, opaque_data=b"12345678").serialize()
data += PriorityFrame(3, depends_on=1, stream_weight=16).serialize()
data += WindowUpdateFrame(0, window_increment=65535).serialize()
write("http2_frames", "continuation_ping_priority", b"\x00" + data)

c = h2_client()
data = out(c)
data += HeadersFrame(5, data=enc.encode(get()), flags=["END_HEADERS", "END_STREAM"]).serialize()
data += HeadersFrame(3, data=enc.encode(get()), flags=["END_HEADERS", "END_STREAM"]).serialize()
write("http2_frames", "skipped_stream_id", b"\x00" + data)

c = h2_client()
data = out(c)
data += HeadersFrame(1, data=enc.encode(get("/", extra=[("content-length", "100")], method="POST")),
                     flags=["END_HEADERS"]).serialize()
data += SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1}).serialize()
data += DataFrame(1, data=b"x" * 10).serialize()
data += RstStreamFrame(1, error_code=8).serialize()
data += GoAwayFrame(0, last_stream_id=0, error_code=0).serialize()
write("http2_frames", "window_rst_goaway", b"\x00" + data)

c = h2_client()
data = out(c)
data += HeadersFrame(1, data=enc.encode([(":method", "GET"), (":path", "/"), ("Upper", "x"),
                                         ("connection", "close")]), flags=["END_HEADERS", "END_STREAM"]).serialize()
data += DataFrame(1, data=b"", flags=["END_STREAM"]).serialize()
write("http2_frames", "bad_headers", b"\x00" + data)

c = h2_client()
data = out(c)
data += HeadersFrame(1, data=enc.encode(get("/", method="CONNECT") + [(":protocol", "websocket")]),
                     flags=["END_HEADERS"]).serialize()
write("http2_frames", "extended_connect", b"\x00" + data)

c = h2_client()
data = out(c)
for sid in range(1, 40, 2):
    data += HeadersFrame(sid, data=enc.encode(get("/s")), flags=["END_HEADERS"]).serialize()
write("http2_frames", "many_streams", b"\x00" + data)

write("http2_frames", "http1_pipelined", b"\x01GET / HTTP/1.1\r\nHost: h\r\n\r\n"
      b"POST /none/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
write("http2_frames", "http1_chunked_too_big", b"\x01POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      + b"1000\r\n" + b"x" * 4096 + b"\r\n10\r\n" + b"y" * 16 + b"\r\n0\r\n\r\n")
