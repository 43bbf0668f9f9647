"""Request smuggling and message framing, both directions (docs/reliability.md, "Smuggling and
framing"). Raw client bytes go through torii to a recording upstream that reads them the way
a plain HTTP/1.1 origin does (recording_backend.py, parsing mode) and keeps each request it
parsed. Every case ends one of two ways:

  refused     the client gets the SPEC section 7 status and the connection closes; nothing
              reaches the upstream;
  normalised  the upstream parses exactly the requests torii meant, each with one framing
              (one Content-Length, or chunked re-encoded; never both, no obs-fold) and a
              request hidden in a body stays body.

HTTP/2 clients (raw frames, h2_raw.py) are checked for what reaches the HTTP/1.1 upstream;
the frame-level answers themselves are test_http2_conformance.py's. The response side: an
upstream's bad framing ends in a clean 502 or a truncated response and a closed connection,
never in a second response made of its leftover bytes, and that upstream connection is not
pooled.

Rows already asserted exactly elsewhere are not repeated: test_request_hardening.py (space in
a name or before a colon, two Hosts, HTTP/1.0 with Transfer-Encoding, xchunked, gzip+chunked,
absolute-form Host, obs-fold), test_bad_input.py (431 for a long field), and the HTTP/2 rows
of test_http2_conformance.py::test_ambiguous_request_is_not_forwarded."""

import time
import types

import pytest

import harness
from h2_raw import PROTOCOL_ERROR, H2Raw, get
from harness import RawConn, config, main_block, raw_request, server_block, upstream_block
from recording_backend import OK_KEEPALIVE, RecordingBackend

SETTLE = 0.05  # a refused request is refused before any upstream work starts
MAX_INTERIM = 16  # informational responses torii takes before one final answer


# ---- the response side: what the upstream answers, by the last path segment -----------------

SMUGGLE = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle"

RESPONSES = {
    "normal": OK_KEEPALIVE,
    "two_cl_differ": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\nok" + SMUGGLE,
    "two_cl_equal": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "cl_list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n",
    "te_and_cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n" + SMUGGLE,
    "cl_not_a_number": b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
    "bad_first_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    "chunk_size_overflow": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"1ffffffffffffffff\r\nok\r\n0\r\n\r\n",
    "chunk_without_crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"2\r\nokXX0\r\n\r\n",
    "bare_lf_head": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "bare_cr_in_value": b"HTTP/1.1 200 OK\r\nX-A: a\rX-Injected: 1\r\nContent-Length: 2\r\n\r\nok",
    "nul_in_value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 9\r\nContent-Length: 2\r\n\r\nok",
    "bad_status_line": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_over_599": b"HTTP/1.1 700 Odd\r\nContent-Length: 2\r\n\r\nok",
    "field_without_colon": b"HTTP/1.1 200 OK\r\nX-Injected\r\nContent-Length: 2\r\n\r\nok",
    "obs_fold_in_head": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "extra_after_cl_body": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + SMUGGLE,
    "extra_after_cl_body_later": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0.15,
                                  SMUGGLE],
    "extra_after_chunked_body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"2\r\nok\r\n0\r\n\r\n" + SMUGGLE,
    "status_204_with_body": b"HTTP/1.1 204 No Content\r\n\r\n" + SMUGGLE,
    "status_204_with_cl": b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nsmuggle",
    "status_304_with_body": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\nsmuggle",
    "head_with_body": b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle",
    # 72 KiB of fields: over the 64 KiB bound on an upstream's response head
    "head_too_large": b"HTTP/1.1 200 OK\r\n" + (b"X-Big: " + b"a" * 8000 + b"\r\n") * 9
                      + b"Content-Length: 2\r\n\r\nok",
    "storm_100": b"HTTP/1.1 100 Continue\r\n\r\n" * 500 + OK_KEEPALIVE,
    "storm_103": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 500
                 + OK_KEEPALIVE,
    "ws_refused": b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n",
    "unasked_101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
                   + SMUGGLE,
}


def answer(req):
    """The recording upstream's answer: RESPONSES by the target's last segment, else 200 ok."""
    name = req.target.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return RESPONSES.get(name, OK_KEEPALIVE)


@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    rec = RecordingBackend(harness.free_port(), answer=answer).start()
    port = harness.free_port()
    ups = dict(keepalive=16, retries=0, connect_timeout="1s", read_timeout="2s")
    t = p.torii(config(
        main_block(),
        upstream_block("rec", [rec.port], **ups),
        server_block([port], [
            {"path": "/rec/secret", "match": "exact", "return": {"status": 403, "body": "no\n"}},
            {"path": "/rec/", "upstream": "rec"},
            {"path": "/resp/", "upstream": "rec"},
            {"path": "/", "return": {"status": 200, "body": "ok\n"}},
        ], client_max_header_size="8k", client_header_timeout="2s", keepalive_timeout="5s"),
    ))
    harness.wait_until(lambda: len(t.pids()) >= 2, 5.0)
    yield types.SimpleNamespace(port=port, torii=t, rec=rec, pids=sorted(t.pids()))
    rec.stop()


def settled(rec, seconds=SETTLE):
    time.sleep(seconds)
    return rec.requests()


# ---- requests torii refuses: nothing reaches the upstream ------------------------------------

def post(fields, body=b"", target=b"/rec/refused", version=b"HTTP/1.1"):
    return (b"POST " + target + b" " + version + b"\r\nHost: h\r\n" + b"".join(
        f + b"\r\n" for f in fields) + b"\r\n" + body)


# A request hidden behind the framing a backend might choose instead of torii's.
HIDDEN = b"GET /rec/smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
CHUNKED = [b"Transfer-Encoding: chunked"]

REFUSED = {
    # CL.TE / TE.CL: both fields (RFC 9112 6.1: a server MAY reject; torii does, as nginx)
    "cl_te": (post([b"Content-Length: 6"] + CHUNKED, b"0\r\n\r\n" + HIDDEN), 400),
    "te_cl": (post(CHUNKED + [b"Content-Length: 4"], b"%x\r\n%s\r\n0\r\n\r\n"
                   % (len(HIDDEN), HIDDEN)), 400),
    # Content-Length spellings (RFC 9110 8.6: 1*DIGIT)
    "cl_duplicate_equal": (post([b"Content-Length: 5", b"Content-Length: 5"], b"hello"), 400),
    "cl_duplicate_differ": (post([b"Content-Length: 5", b"Content-Length: 45"], b"hello" + HIDDEN),
                            400),
    "cl_list": (post([b"Content-Length: 5, 5"], b"hello"), 400),
    "cl_plus": (post([b"Content-Length: +5"], b"hello"), 400),
    "cl_negative": (post([b"Content-Length: -1"], b"hello"), 400),
    "cl_hex": (post([b"Content-Length: 0x5"], b"hello"), 400),
    "cl_inner_space": (post([b"Content-Length: 1 0"], b"hello"), 400),
    "cl_empty": (post([b"Content-Length:"], b"hello"), 400),
    "cl_overflow": (post([b"Content-Length: 184467440737095516160"], b"hello"), 400),
    "cl_obs_folded": (post([b"Content-Length: 5", b" 0"], b"hello"), 400),
    # Transfer-Encoding spellings: only "chunked" is known; anything else cannot be framed
    "te_chunked_identity": (post([b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"), 400),
    "te_identity_chunked": (post([b"Transfer-Encoding: identity, chunked"], b"0\r\n\r\n"), 501),
    "te_identity": (post([b"Transfer-Encoding: identity"], b"hello"), 501),
    "te_chunked_twice": (post([b"Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n"), 400),
    "te_two_fields": (post(CHUNKED + CHUNKED, b"0\r\n\r\n"), 400),
    "te_two_fields_identity_last": (post(CHUNKED + [b"Transfer-Encoding: identity"],
                                         b"0\r\n\r\n"), 400),
    "te_empty": (post([b"Transfer-Encoding:"], b"0\r\n\r\n"), 400),
    "te_comma_only": (post([b"Transfer-Encoding: ,"], b"0\r\n\r\n"), 400),
    "te_quoted": (post([b'Transfer-Encoding: "chunked"'], b"0\r\n\r\n"), 501),
    "te_with_parameter": (post([b"Transfer-Encoding: chunked;q=1"], b"0\r\n\r\n"), 501),
    "te_vertical_tab": (post([b"Transfer-Encoding: \x0bchunked"], b"0\r\n\r\n"), 400),
    "te_obs_folded": (post([b"Transfer-Encoding: identity", b" chunked"], b"0\r\n\r\n"), 501),
    "te_leading_space_first_field": (b"POST /rec/refused HTTP/1.1\r\n Transfer-Encoding: chunked"
                                     b"\r\nHost: h\r\n\r\n0\r\n\r\n", 400),
    "te_tab_before_colon": (post([b"Transfer-Encoding\t: chunked"], b"0\r\n\r\n"), 400),
    # line endings: bare CR is never a line end (RFC 9112 2.2: reject or replace by SP)
    "bare_cr_in_value": (b"GET /rec/refused HTTP/1.1\r\nHost: h\r\nX-A: a\rX-Injected: 1\r\n\r\n",
                         400),
    "bare_cr_line_end": (b"GET /rec/refused HTTP/1.1\r\nHost: h\rX-Injected: 1\r\n\r\n", 400),
    "bare_cr_request_line": (b"GET /rec/refused HTTP/1.1\rHost: h\r\n\r\n", 400),
    "bare_lf_line_end": (b"GET /rec/refused HTTP/1.1\r\nHost: h\nX-Injected: 1\r\n\r\n", 400),
    "bare_lf_request": (b"GET /rec/refused HTTP/1.1\nHost: h\n\n", 400),
    "bare_lf_chunk_size": (post(CHUNKED, b"5\nhello\r\n0\r\n\r\n"), 400),
    "bare_lf_after_chunk": (post(CHUNKED, b"5\r\nhello\n0\r\n\r\n"), 400),
    # white space where a token belongs
    "tab_in_request_line": (b"GET\t/rec/refused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "space_after_version": (b"GET /rec/refused HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
    "space_in_target": (b"GET /rec/ref used HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "lowercase_version": (b"GET /rec/refused http/1.1\r\nHost: h\r\n\r\n", 400),
    "version_1_2": (b"GET /rec/refused HTTP/1.2\r\nHost: h\r\n\r\n", 400),
    "leading_tab_first_field": (b"GET /rec/refused HTTP/1.1\r\n\tX-A: b\r\nHost: h\r\n\r\n", 400),
    "host_obs_folded": (b"GET /rec/refused HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400),
    "host_with_space": (b"GET /rec/refused HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "host_with_userinfo": (b"GET /rec/refused HTTP/1.1\r\nHost: u@h\r\n\r\n", 400),
    "host_missing": (b"GET /rec/refused HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    # chunk sizes and extensions (RFC 9112 7.1)
    "chunk_size_0x": (post(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_size_negative": (post(CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_size_plus": (post(CHUNKED, b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_size_leading_space": (post(CHUNKED, b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_size_empty": (post(CHUNKED, b"\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_size_overflow": (post(CHUNKED, b"1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_longer_than_size": (post(CHUNKED, b"3\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_shorter_than_size": (post(CHUNKED, b"8\r\nhello\r\n0\r\n\r\n" + HIDDEN), 400),
    "chunk_ext_bare_cr": (post(CHUNKED, b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_ext_nul": (post(CHUNKED, b"5;a=\x00\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk_ext_bad_quote": (post(CHUNKED, b'5;a="b\r\nhello\r\n0\r\n\r\n'), 400),
    "last_chunk_bad_trailer": (post(CHUNKED, b"0\r\nX-T : 1\r\n\r\n"), 400),
    "last_chunk_te_trailer": (post(CHUNKED, b"0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
    # absolute-form targets (RFC 9112 3.2.2)
    "absolute_userinfo": (b"GET http://u@h/rec/refused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "absolute_empty_host": (b"GET http:///rec/refused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "absolute_other_scheme": (b"GET ftp://h/rec/refused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "absolute_no_host_field": (b"GET http://h/rec/refused HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    "authority_form_get": (b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    # a fragment is no part of a request target (RFC 9112 3.2): torii routed on
    # "/rec/secret#x" (not the exact location "/rec/secret") while a backend that drops
    # the fragment (Go's net/http does) served /rec/secret
    "fragment_in_target": (b"GET /rec/secret#x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "fragment_after_query": (b"GET /rec/secret?a=1#x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "fragment_in_absolute_form": (b"GET http://h/rec/secret#x HTTP/1.1\r\nHost: h\r\n\r\n",
                                  400),
    # NUL and control bytes
    "nul_in_value": (b"GET /rec/refused HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400),
    "nul_in_name": (b"GET /rec/refused HTTP/1.1\r\nHost: h\r\nX-\x00A: b\r\n\r\n", 400),
    "nul_in_target": (b"GET /rec/ref\x00used HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "ctl_in_value": (b"GET /rec/refused HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n", 400),
    "del_in_value": (b"GET /rec/refused HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n", 400),
    "esc_in_target": (b"GET /rec/ref\x1bused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "nul_in_method": (b"G\x00T /rec/refused HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    # over-long lines (client_max_header_size 8k counts the request line too)
    "long_request_line": (b"GET /rec/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 431),
}


# Errors inside a chunked body are found after the head was dispatched: torii streams
# bodies, so a pooled upstream connection may already have the head. That request never
# completes at the upstream (no last chunk), and its connection is closed.
BODY_ERRORS = {n for n in REFUSED if n.startswith(("chunk_", "bare_lf_chunk", "bare_lf_after",
                                                    "last_chunk"))}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_and_nothing_forwarded(gw, name):
    wire, status = REFUSED[name]
    if name in BODY_ERRORS:  # the worst case: a pooled connection takes the head at once
        assert harness.request(gw.port, "GET", "/rec/warm").status == 200
    gw.rec.clear()
    res = raw_request(gw.port, wire, timeout=5)
    assert res, "no answer"
    r = harness.parse_response(res)
    assert r.status == status, (r.status, res[:300])
    assert res.closed, "connection left open after %d" % status
    assert len(harness.parse_responses(res)) == 1, res  # nothing after the refusal
    got = settled(gw.rec)
    if name not in BODY_ERRORS:
        assert got == [] and gw.rec.data() == b"", "the upstream parsed a refused request"
        return
    assert all(not q.complete for q in got), got
    assert harness.wait_until(lambda: all(gw.rec.closed(q.conn) for q in got), 2.0), \
        "the upstream connection of the broken request was kept"
    assert b"smuggled" not in gw.rec.data()


# ---- requests torii forwards: exactly one normalised request per request ---------------------

def framing(req):
    """(Content-Length values, Transfer-Encoding values) of a request as the upstream read it."""
    return req.get_all("content-length"), req.get_all("transfer-encoding")


def assert_clean_head(req):
    lines = req.head.split(b"\r\n")
    assert not any(ln.startswith((b" ", b"\t")) for ln in lines), req.head  # no obs-fold
    assert b"\n" not in req.head.replace(b"\r\n", b""), req.head               # no bare LF
    assert b"\r" not in req.head.replace(b"\r\n", b""), req.head               # no bare CR
    cl, te = framing(req)
    assert not (cl and te), "both framings forwarded: %r" % req.head
    assert len(cl) <= 1 and len(te) <= 1, req.head


# name: (wire, [(request line, content-length values, transfer-encoding values, body)])
FORWARDED = {
    "te_mixed_case": (post([b"Transfer-Encoding: ChUnKeD"], b"5\r\nhello\r\n0\r\n\r\n",
                           target=b"/rec/f"),
                      [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    "te_white_space": (post([b"Transfer-Encoding:  chunked  "], b"5\r\nhello\r\n0\r\n\r\n",
                            target=b"/rec/f"),
                       [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    # empty list elements are allowed (RFC 9110 5.6.1): they change nothing
    "te_leading_comma": (post([b"Transfer-Encoding: ,chunked"], b"5\r\nhello\r\n0\r\n\r\n",
                              target=b"/rec/f"),
                         [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    "te_empty_second_field": (post(CHUNKED + [b"Transfer-Encoding:"], b"5\r\nhello\r\n0\r\n\r\n",
                                   target=b"/rec/f"),
                              [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    "chunk_extensions_dropped": (post(CHUNKED, b'5;a;c\r\nhello\r\n3;n=v\r\nabc\r\n0;z="q"\r\n\r\n',
                                      target=b"/rec/f"),
                                 [("POST /rec/f HTTP/1.1", [], ["chunked"], b"helloabc")]),
    "chunk_size_leading_zeros": (post(CHUNKED, b"0005\r\nhello\r\n000\r\n\r\n", target=b"/rec/f"),
                                 [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    "cl_leading_zeros": (post([b"Content-Length: 005"], b"hello", target=b"/rec/f"),
                         [("POST /rec/f HTTP/1.1", ["5"], [], b"hello")]),
    "cl_white_space": (post([b"Content-Length: \t5 "], b"hello", target=b"/rec/f"),
                       [("POST /rec/f HTTP/1.1", ["5"], [], b"hello")]),
    "get_with_body": (b"GET /rec/f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
                      [("GET /rec/f HTTP/1.1", ["5"], [], b"hello")]),
    "two_spaces_in_request_line": (b"GET  /rec/f HTTP/1.1\r\nHost: h\r\n\r\n",
                                   [("GET /rec/f HTTP/1.1", [], [], b"")]),
    # obs-fold is replaced by white space (RFC 9112 5.2) before torii reads the field, so
    # a folded line is never a field of its own, and a folded "chunked" is just chunked
    "te_obs_folded_only": (post([b"Transfer-Encoding:", b" chunked"], b"5\r\nhello\r\n0\r\n\r\n",
                                target=b"/rec/f"),
                           [("POST /rec/f HTTP/1.1", [], ["chunked"], b"hello")]),
    "te_folded_into_another_field": (post([b"Content-Length: 6", b"X-A: b",
                                           b" Transfer-Encoding: chunked"], b"hello!",
                                          target=b"/rec/f"),
                                     [("POST /rec/f HTTP/1.1", ["6"], [], b"hello!")]),
    "obs_fold_other_field": (b"GET /rec/f HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
                             [("GET /rec/f HTTP/1.1", [], [], b"")]),
    # a request in a body stays body
    "hidden_in_cl_body": (post([b"Content-Length: %d" % len(HIDDEN)], HIDDEN, target=b"/rec/f"),
                          [("POST /rec/f HTTP/1.1", [str(len(HIDDEN))], [], HIDDEN)]),
    "hidden_in_chunked_body": (post(CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN),
                                    target=b"/rec/f"),
                               [("POST /rec/f HTTP/1.1", [], ["chunked"], HIDDEN)]),
    "terminator_in_chunked_body": (post(CHUNKED, b"6\r\n0\r\n\r\nX\r\n0\r\n\r\n", target=b"/rec/f"),
                                   [("POST /rec/f HTTP/1.1", [], ["chunked"], b"0\r\n\r\nX")]),
    # pipelining: each request on its own, in order
    "pipelined_gets": (b"GET /rec/p1 HTTP/1.1\r\nHost: h\r\n\r\nGET /rec/p2 HTTP/1.1\r\nHost: h\r\n\r\n",
                       [("GET /rec/p1 HTTP/1.1", [], [], b""), ("GET /rec/p2 HTTP/1.1", [], [], b"")]),
    "pipelined_after_chunked": (post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", target=b"/rec/p1")
                                + b"GET /rec/p2 HTTP/1.1\r\nHost: h\r\n\r\n",
                                [("POST /rec/p1 HTTP/1.1", [], ["chunked"], b"hello"),
                                 ("GET /rec/p2 HTTP/1.1", [], [], b"")]),
    "pipelined_after_cl": (post([b"Content-Length: 5"], b"hello", target=b"/rec/p1")
                           + b"GET /rec/p2 HTTP/1.1\r\nHost: h\r\n\r\n",
                           [("POST /rec/p1 HTTP/1.1", ["5"], [], b"hello"),
                            ("GET /rec/p2 HTTP/1.1", [], [], b"")]),
    # HTTP/1.0: no body without Content-Length; keep-alive only when asked for
    "http10_keepalive_pipelined": (b"GET /rec/p1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                   b"GET /rec/p2 HTTP/1.0\r\n\r\n",
                                   [("GET /rec/p1 HTTP/1.1", [], [], b""),
                                    ("GET /rec/p2 HTTP/1.1", [], [], b"")]),
    "http10_post_without_length": (b"POST /rec/p1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                   b"GET /rec/p2 HTTP/1.0\r\n\r\n",
                                   [("POST /rec/p1 HTTP/1.1", [], [], b""),
                                    ("GET /rec/p2 HTTP/1.1", [], [], b"")]),
    "http10_post_with_length": (b"POST /rec/p1 HTTP/1.0\r\nContent-Length: 5\r\n"
                                b"Connection: keep-alive\r\n\r\nhello",
                                [("POST /rec/p1 HTTP/1.1", ["5"], [], b"hello")]),
    "http10_close_then_more": (b"GET /rec/p1 HTTP/1.0\r\n\r\nGET /rec/p2 HTTP/1.0\r\n\r\n",
                               [("GET /rec/p1 HTTP/1.1", [], [], b"")]),
    "close_then_more": (b"GET /rec/p1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                        b"GET /rec/p2 HTTP/1.1\r\nHost: h\r\n\r\n",
                        [("GET /rec/p1 HTTP/1.1", [], [], b"")]),
    # a bad request behind a good one: the good one is served, the bad one refused
    "good_then_cl_te": (b"GET /rec/p1 HTTP/1.1\r\nHost: h\r\n\r\n"
                        + post([b"Content-Length: 6"] + CHUNKED, b"0\r\n\r\n" + HIDDEN),
                        [("GET /rec/p1 HTTP/1.1", [], [], b"")]),
}


def collect(port, wire, expect, timeout=5.0):
    """Sends `wire` on one connection, reads `expect` responses, then whatever else comes
    within 0.1 s: (responses, closed, the bytes after them)."""
    out = []
    with RawConn(port, timeout=timeout) as c:
        c.send(wire)
        for _ in range(expect):
            out.append(c.read_response())
        closed, rest, _ = c.wait_closed(0.1)
    return out, closed, rest


@pytest.mark.parametrize("name", sorted(FORWARDED))
def test_forwarded_normalised(gw, name):
    wire, expected = FORWARDED[name]
    gw.rec.clear()
    two = name == "good_then_cl_te"
    responses, closed, rest = collect(gw.port, wire, 2 if two else len(expected))
    statuses = [r.status for r in responses]
    if two:
        assert statuses == [200, 400] and closed, (statuses, rest)
    else:
        assert statuses == [200] * len(expected), statuses
        assert rest == b"", rest  # no extra answer
        if name.endswith("close_then_more"):
            assert closed, "the connection went on after its last request"
    got = harness.wait_until(lambda: len(gw.rec.requests()) >= len(expected) or None, 3.0)
    got = settled(gw.rec)
    assert [r.request_line for r in got] == [e[0] for e in expected], got
    for req, (_, cl, te, body) in zip(got, expected):
        assert req.complete, req
        assert_clean_head(req)
        assert framing(req) == (cl, te), req.head
        assert req.body == body, req
        assert b"/rec/smuggled" not in req.head


@pytest.mark.parametrize("framing_fields,body", [
    ([b"Content-Length: %d" % len(HIDDEN)], HIDDEN),
    (CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN)),
], ids=["content-length", "chunked"])
def test_body_of_a_request_answered_without_upstream_is_not_a_request(gw, framing_fields, body):
    # CL.0: a location that answers by itself ignores the body, but must still read past it,
    # or the request hidden in it is the next one on the connection.
    gw.rec.clear()
    wire = post(framing_fields, body, target=b"/") + b"GET /rec/p2 HTTP/1.1\r\nHost: h\r\n\r\n"
    responses, _, rest = collect(gw.port, wire, 2)
    assert [(r.status, r.body) for r in responses] == [(200, b"ok\n"), (200, b"ok\n")]
    assert rest == b""
    got = settled(gw.rec)
    assert [q.request_line for q in got] == ["GET /rec/p2 HTTP/1.1"], got


def test_obs_fold_is_one_line_at_the_upstream(gw):
    gw.rec.clear()
    collect(gw.port, b"GET /rec/fold HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\t two\r\n\r\n", 1)
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert len(req.get_all("x-a")) == 1 and req.get_all("x-a")[0].split() == ["one", "two"], req


def test_trailers_cannot_carry_framing_or_routing(gw):
    # RFC 9110 6.5.1: framing, routing and the like are not trailer fields; an upstream that
    # merges trailers into the head (some do) would read a second Content-Length or Host.
    gw.rec.clear()
    wire = post(CHUNKED + [b"Trailer: X-Sum"], b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n"
                b"Host: evil.example\r\nX-Forwarded-For: 10.0.0.1\r\nX-Sum: 1\r\n\r\n",
                target=b"/rec/trailers")
    responses, _, _ = collect(gw.port, wire, 1)
    assert [r.status for r in responses] == [200]
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert req.body == b"hello"
    trailer = req.wire_body.split(b"0\r\n", 1)[1]
    assert trailer == b"X-Sum: 1\r\n\r\n", req.wire_body


def test_absolute_form_and_host_reach_the_upstream_as_one_host(gw):
    gw.rec.clear()
    wire = (b"GET http://Good.Example:8080/rec/abs?q=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    responses, _, _ = collect(gw.port, wire, 1)
    assert [r.status for r in responses] == [200]
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert req.request_line == "GET /rec/abs?q=1 HTTP/1.1"
    assert req.get_all("host") == ["Good.Example:8080"], req.head


# ---- h2c upgrade smuggling (HTTP/1.1 Upgrade: h2c) -------------------------------------------

H2C_UPGRADE = (b"GET /rec/h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")


def test_h2c_upgrade_is_neither_forwarded_nor_taken(gw):
    gw.rec.clear()
    with RawConn(gw.port, timeout=5) as c:
        c.send(H2C_UPGRADE)
        r = c.read_response()
        assert r.status == 200, r  # answered over HTTP/1.1: no 101 from torii
        assert r.header("upgrade") is None
        # whatever the client sends next is not HTTP/2 to torii nor to the upstream
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        closed, rest, _ = c.wait_closed(2.0)
    assert closed
    assert not rest.startswith(b"\x00"), rest  # no HTTP/2 frame (SETTINGS) came back
    got = settled(gw.rec, 0.1)
    assert [q.request_line for q in got] == ["GET /rec/h2c HTTP/1.1"], got
    names = got[0].names()
    assert "upgrade" not in names and "http2-settings" not in names, got[0].head
    assert not any("upgrade" in v.lower() for v in got[0].get_all("connection")), got[0].head
    assert b"PRI * HTTP/2.0" not in gw.rec.data()


def test_upstream_switching_to_h2c_unasked_is_a_502(gw):
    # The upstream answers 101 (as one that honours h2c would): not forwarded, no tunnel.
    gw.rec.clear()
    with RawConn(gw.port, timeout=5) as c:
        c.send(H2C_UPGRADE.replace(b"/rec/h2c", b"/resp/unasked_101"))
        r = c.read_response()
        closed, rest, _ = c.wait_closed(1.0)
    assert r.status == 502, r
    assert b"smuggle" not in rest


def test_websocket_upgrade_refused_by_the_upstream_opens_no_tunnel(gw):
    # The upstream declines the upgrade (426): torii must not treat the connection as a
    # tunnel, or what the client sends next would reach the upstream raw, past torii's rules.
    gw.rec.clear()
    with RawConn(gw.port, timeout=5) as c:
        c.send(b"GET /resp/ws_refused HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        assert r.status == 426, r
        try:
            c.send(HIDDEN)
        except (BrokenPipeError, ConnectionResetError):
            pass
        c.wait_closed(1.0)
    got = settled(gw.rec, 0.1)
    assert got and got[0].target == "/resp/ws_refused", got
    for q in got:  # anything else came through torii (its Via), never raw through a tunnel
        assert q.get_all("via") == ["1.1 torii"], q
    assert b"GET /rec/smuggled HTTP/1.1\r\nHost: h\r\n\r\n" not in gw.rec.data()


# ---- HTTP/2 clients to an HTTP/1.1 upstream --------------------------------------------------

H2_REFUSED = {
    "connection": get("/rec/h2", extra=[("connection", "close")]),
    "keep-alive": get("/rec/h2", extra=[("keep-alive", "timeout=5")]),
    "proxy-connection": get("/rec/h2", extra=[("proxy-connection", "keep-alive")]),
    "upgrade": get("/rec/h2", extra=[("upgrade", "h2c")]),
    "te gzip": get("/rec/h2", extra=[("te", "gzip")]),
    "transfer-encoding with content-length": get("/rec/h2", method="POST", extra=[
        ("content-length", "5"), ("transfer-encoding", "chunked")]),
    "uppercase name": get("/rec/h2", extra=[("X-Upper", "v")]),
    "NUL in a value": get("/rec/h2", extra=[("x-a", "a\x00b")]),
    "CR in a value": get("/rec/h2", extra=[("x-a", "a\rb")]),
    "duplicate :path": get("/rec/h2") + [(":path", "/rec/other")],
    "duplicate :authority": get("/rec/h2") + [(":authority", "evil.example")],
    "unknown pseudo": get("/rec/h2", extra=[(":x", "y")]),
    "pseudo after regular": [(":method", "GET"), (":scheme", "http"), ("x-a", "b"),
                             (":path", "/rec/h2"), (":authority", "h")],
    ":authority and host differ": get("/rec/h2", authority="good.example",
                                      extra=[("host", "evil.example")]),
    "content-length not a number": get("/rec/h2", method="POST",
                                       extra=[("content-length", "5x")]),
    "two content-lengths": get("/rec/h2", method="POST",
                               extra=[("content-length", "5"), ("content-length", "6")]),
}


@pytest.fixture
def h2c(gw):
    conn = H2Raw(gw.port)
    yield conn
    conn.close()


@pytest.mark.parametrize("name", list(H2_REFUSED))
def test_h2_malformed_is_reset_and_not_forwarded(gw, h2c, name):
    gw.rec.clear()
    h2c.send(h2c.headers(1, H2_REFUSED[name], end_stream=False))
    h2c.send(h2c.data(1, b"hello", end_stream=True))
    r = h2c.rst(1)
    assert r is not None and r.error_code == PROTOCOL_ERROR, h2c.frames
    assert settled(gw.rec) == [] and gw.rec.data() == b""


def test_h2_fragment_in_path_is_400_and_not_forwarded(gw, h2c):
    gw.rec.clear()
    r = h2_request(h2c, 1, get("/rec/secret#x"))
    assert r and r[0] == 400, h2c.frames
    assert settled(gw.rec) == [] and gw.rec.data() == b""


def h2_request(h2c, sid, fields, body_frames=(), end_stream=None):
    end = end_stream if end_stream is not None else not body_frames
    h2c.send(h2c.headers(sid, fields, end_stream=end))
    for i, piece in enumerate(body_frames):
        h2c.send(h2c.data(sid, piece, end_stream=i == len(body_frames) - 1))
    return h2c.response(sid)


def test_h2_body_without_length_is_chunked_upstream(gw, h2c):
    gw.rec.clear()
    r = h2_request(h2c, 1, get("/rec/h2", method="POST"), [b"hel", HIDDEN, b"0\r\n\r\n"])
    assert r and r[0] == 200, h2c.frames
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert_clean_head(req)
    assert framing(req) == ([], ["chunked"])
    assert req.body == b"hel" + HIDDEN + b"0\r\n\r\n"
    assert len(settled(gw.rec)) == 1


def test_h2_body_with_length_keeps_one_content_length(gw, h2c):
    gw.rec.clear()
    r = h2_request(h2c, 1, get("/rec/h2", method="POST", extra=[("content-length", "5")]),
                   [b"he", b"llo"])
    assert r and r[0] == 200, h2c.frames
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert framing(req) == (["5"], []) and req.body == b"hello", req


def test_h2_te_trailers_and_authority_become_host(gw, h2c):
    gw.rec.clear()
    r = h2_request(h2c, 1, get("/rec/h2", authority="a.example", extra=[("te", "trailers")]))
    assert r and r[0] == 200, h2c.frames
    (req,) = harness.wait_until(lambda: gw.rec.requests() or None, 3.0)
    assert req.get_all("host") == ["a.example"] and "te" not in req.names(), req.head


def test_h2_body_shorter_than_content_length_is_never_a_complete_request(gw, h2c):
    gw.rec.clear()
    h2c.send(h2c.headers(1, get("/rec/h2short", method="POST", extra=[("content-length", "50")]),
                         end_stream=False))
    h2c.send(h2c.data(1, b"hello" + HIDDEN, end_stream=True))
    r = h2c.rst(1)
    assert r is not None and r.error_code == PROTOCOL_ERROR, h2c.frames
    got = settled(gw.rec, 0.2)
    assert all(not q.complete for q in got), got  # the upstream waits for bytes that never come
    assert not any("smuggled" in q.request_line for q in got), got
    assert h2c.request(3, "/") == 200  # the connection goes on


# ---- the response side -----------------------------------------------------------------------

def next_request_is_fresh(gw, c=None, fresh=True):
    """A normal request (on `c`, else a new client connection) answered by the upstream on a
    connection of its own (the bad one was not pooled), unless `fresh` is False."""
    before = gw.rec.accepted()
    if c is None:
        with RawConn(gw.port, timeout=5) as c2:
            c2.send(b"GET /resp/normal HTTP/1.1\r\nHost: h\r\n\r\n")
            r = c2.read_response()
    else:
        c.send(b"GET /resp/normal HTTP/1.1\r\nHost: h\r\n\r\n")
        r = c.read_response()
    assert (r.status, r.body) == (200, b"ok\n"), r
    if fresh:
        assert gw.rec.accepted() == before + 1, "the upstream connection was reused after bad framing"


# name: "502" (a clean 502 before any head), "truncated" (head sent, then closed without the
# end of the body) or (status, body) forwarded normalised, the client connection kept (a
# folded line reaches the client as one line: the harness refuses a continuation line).
RESPONSE_CASES = {
    "two_cl_differ": "502",
    "two_cl_equal": "502",
    "cl_list": "502",
    "cl_and_te": "502",
    "te_and_cl": "502",
    "cl_not_a_number": "502",
    "bad_first_chunk": "truncated",
    "chunk_size_overflow": "truncated",
    "chunk_without_crlf": "truncated",
    "bare_lf_head": "502",
    "bare_cr_in_value": "502",
    "nul_in_value": "502",
    "space_before_colon": "502",
    "bad_status_line": "502",
    "status_over_599": "502",
    "field_without_colon": "502",
    "obs_fold_in_head": (200, b"ok"),
    "extra_after_cl_body": (200, b"ok"),
    "extra_after_cl_body_later": (200, b"ok"),
    "extra_after_chunked_body": (200, b"ok"),
    "status_204_with_body": (204, b""),
    "status_204_with_cl": (204, b""),
    "status_304_with_body": (304, b""),
    "head_with_body": (200, b""),
    "storm_100": "502",
    "storm_103": "502",
    "head_too_large": "502",
}


@pytest.mark.parametrize("name", sorted(RESPONSE_CASES))
def test_bad_upstream_framing_never_poisons_the_client(gw, name):
    want = RESPONSE_CASES[name]
    method = b"HEAD" if name == "head_with_body" else b"GET"
    with RawConn(gw.port, timeout=5) as c:
        c.send(method + b" /resp/" + name.encode() + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        if want == "truncated":
            closed, data, elapsed = c.wait_closed(3.0)
            assert closed and elapsed < 2.0, (closed, elapsed, data)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK"), data
            assert not body.endswith(b"0\r\n\r\n"), data  # no last chunk: visibly cut
            assert b"smuggle" not in data
        elif want == "502":
            r = c.read_response()
            assert r.status == 502, r
            assert len(r.interim) <= MAX_INTERIM, len(r.interim)
            if r.header("connection") != "close":
                # the next answer on this connection is the next request's, not leftovers
                next_request_is_fresh(gw, c)
                return
            closed, rest, _ = c.wait_closed(1.0)
            assert closed and rest == b"", rest
        else:
            r = c.read_response(head=method == b"HEAD")
            if name.endswith("_later"):
                time.sleep(0.4)  # the rest arrives while the connection idles in the pool
            assert (r.status, r.body) == want, r
            # the same client connection goes on, and its next answer is a fresh one (an
            # obs-fold is a valid, normalised answer: that connection may be pooled)
            next_request_is_fresh(gw, c, fresh=name != "obs_fold_in_head")
            return
    next_request_is_fresh(gw)


def test_torii_survived(gw):
    assert gw.torii.alive()
    assert sorted(gw.torii.pids()) == gw.pids, "a worker died"
    r = harness.request(gw.port, "GET", "/rec/alive")
    assert r.status == 200
