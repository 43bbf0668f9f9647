// Usual upstream responses read without llhttp (core/http/http1_usual_response.h): what
// is taken reads as llhttp reads it, what is not is left to llhttp untouched, and the
// parser around it keeps llhttp's events and keep-alive verdicts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/http/http1_parser.h"
#include "core/http/http1_usual_response.h"

using namespace torii;

namespace {

struct Read {
    std::vector<ParseEvent> events;
    std::string heads;  // status, reason, fields and length of each head, one line each
    std::string body;
    bool keep_alive = false;
};

// Feeds the responses in `wire` (pieces of `step` bytes, in place or from the input) until
// the input runs out, an error, or `messages` messages.
Read read_responses(const std::string &wire, bool usual, size_t step = SIZE_MAX,
                    bool in_place = false, size_t body_limit = SIZE_MAX, int messages = 8) {
    Read out;
    Http1Parser p(Http1Parser::Kind::response);
    p.set_usual_responses(usual);
    Arena arena;
    ResponseHead head;
    EvbufferPtr in = make_evbuffer(), body = make_evbuffer();
    p.begin_response(&head, &arena, false);
    bool stop = false;
    for (size_t off = 0; off < wire.size() && !stop; off += step) {
        std::string piece = wire.substr(off, step);
        std::string_view fresh;
        if (in_place)
            fresh = piece;
        else
            evbuffer_add(in.get(), piece.data(), piece.size());
        for (int guard = 0; guard < 100 && !stop; ++guard) {
            ParseEvent ev = p.feed(in.get(), body.get(), body_limit, fresh);
            fresh = {};
            piece.assign(piece.size(), 'X');  // the read buffer is reused
            if (ev == ParseEvent::need_more) break;
            out.events.push_back(ev);
            if (ev == ParseEvent::head_complete) {
                out.heads += std::to_string(head.status) + " " + std::string(head.reason);
                for (const Header &h : head.headers)
                    out.heads += " [" + std::string(h.name) + "=" + std::string(h.value) + "]";
                out.heads += " cl=" + std::to_string(head.content_length) + "\n";
            }
            if (ev == ParseEvent::body_full || ev == ParseEvent::message_complete) {
                std::string chunk(evbuffer_get_length(body.get()), '\0');
                evbuffer_remove(body.get(), chunk.data(), chunk.size());
                out.body += chunk;
            }
            if (ev == ParseEvent::message_complete) {
                out.keep_alive = p.keep_alive();
                if (--messages == 0) stop = true;
                head.clear();
                p.begin_response(&head, &arena, false);
            }
            if (ev == ParseEvent::error) stop = true;
        }
    }
    return out;
}

void same_as_llhttp(const std::string &wire) {
    Read ref = read_responses(wire, false);
    for (size_t step : {size_t{1}, size_t{7}, size_t{64}, SIZE_MAX}) {
        for (bool in_place : {false, true}) {
            CAPTURE(step);
            CAPTURE(in_place);
            Read got = read_responses(wire, true, step, in_place);
            CHECK(got.events == ref.events);
            CHECK(got.heads == ref.heads);
            CHECK(got.body == ref.body);
            CHECK(got.keep_alive == ref.keep_alive);
        }
    }
}

size_t usual_head_len(const std::string &head) {
    Arena arena;
    ResponseHead resp;
    return parse_usual_response_head(head.data(), head.size(), &resp, &arena);
}

}  // namespace

TEST_CASE("a usual response head is read in one pass, as llhttp reads it") {
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 11:00:00 GMT\r\n"
        "Content-Type: text/plain\r\nContent-Length: 23\r\nConnection: keep-alive\r\n"
        "X-Empty:\r\nX-Tab:\tv  w\r\n\r\n";
    std::string wire = head + "hello from the backend\n";
    Arena arena;
    ResponseHead resp;
    REQUIRE(parse_usual_response_head(wire.data(), wire.size(), &resp, &arena) == head.size());
    wire.assign(wire.size(), 'X');  // nothing may point into the read
    CHECK(resp.status == 200);
    CHECK(resp.reason == "OK");
    CHECK(resp.content_length == 23);
    CHECK(resp.headers.size() == 7);
    CHECK(resp.headers.get("server") == "nginx/1.22.1");
    CHECK(resp.headers.get(HeaderId::content_length) == "23");
    CHECK(resp.headers.get("x-empty").empty());
    CHECK(resp.headers.get("x-tab") == "v  w");
    same_as_llhttp(head + "hello from the backend\n");
}

TEST_CASE("anything but the usual form is left to llhttp, the head untouched") {
    const char *declined[] = {
        "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",   // another version
        "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",      // no space after the code
        "HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx",  // four digits
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",  // no body by status
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil close",  // no length
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nUpgrade: h2c\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 \r\n\r\nx",                   // trailing white space
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nx",      // obs-fold
        "HTTP/1.1 200 OK\r\nX: a\nContent-Length: 1\r\n\r\nx",              // a bare LF
        "HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 1\r\n\r\nx",           // space before colon
        "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 1\r\n\r\nx",             // empty name
        "HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nx",  // obs-text
        "HTTP/1.1 200 O\x01K\r\nContent-Length: 1\r\n\r\nx",                // control in reason
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",                         // head not whole yet
    };
    for (const char *wire : declined) {
        CAPTURE(wire);
        std::string w = wire;
        Arena arena;
        ResponseHead resp;
        resp.headers.add("x-before", "1");
        CHECK(parse_usual_response_head(w.data(), w.size(), &resp, &arena) == 0);
        CHECK(resp.headers.size() == 1);
        CHECK(resp.status == 0);
        same_as_llhttp(w);  // llhttp reads it (or refuses it) as before, however it arrives
    }
    CHECK(usual_head_len("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == 38);
}

TEST_CASE("usual responses in a row with others: llhttp's events, bodies and verdicts") {
    // Usual, chunked (llhttp), an empty usual body, then Connection: close (llhttp) after
    // which llhttp refuses more bytes, and so must the usual path.
    same_as_llhttp(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"
        "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    Read r = read_responses("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
    CHECK(r.keep_alive);
}

TEST_CASE("a usual body stops at body_limit and goes on when drained") {
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!";
    for (bool in_place : {false, true}) {
        CAPTURE(in_place);
        Read r = read_responses(wire, true, 45, in_place, 5);
        CHECK(r.body == "hello world!");
        CHECK(r.events.front() == ParseEvent::head_complete);
        CHECK(r.events.back() == ParseEvent::message_complete);
    }
}

TEST_CASE("a usual body cut short by the upstream is an error, as with llhttp") {
    Http1Parser p(Http1Parser::Kind::response);
    Arena arena;
    ResponseHead head;
    EvbufferPtr in = make_evbuffer(), body = make_evbuffer();
    p.begin_response(&head, &arena, false);
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    CHECK(p.feed(in.get(), body.get(), SIZE_MAX, wire) == ParseEvent::head_complete);
    CHECK(p.feed(in.get(), body.get()) == ParseEvent::need_more);
    CHECK(p.in_body());
    CHECK(p.body_bytes() == 3);
    CHECK(p.finish() == ParseEvent::error);
    CHECK(p.error_status() == 502);
}

TEST_CASE("the response to a HEAD request is llhttp's: its length announces no body") {
    Http1Parser p(Http1Parser::Kind::response);
    Arena arena;
    ResponseHead head;
    EvbufferPtr in = make_evbuffer(), body = make_evbuffer();
    p.begin_response(&head, &arena, true);
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    CHECK(p.feed(in.get(), body.get(), SIZE_MAX, wire) == ParseEvent::head_complete);
    CHECK(head.no_body);
    CHECK(p.feed(in.get(), body.get()) == ParseEvent::message_complete);
}

TEST_CASE("an upstream's response head over 64 KiB is refused, whichever way it is read") {
    std::string fields;
    while (fields.size() <= kMaxResponseHeadSize)
        fields += "X-Big: " + std::string(1000, 'a') + "\r\n";
    std::string wire = "HTTP/1.1 200 OK\r\n" + fields + "Content-Length: 2\r\n\r\nok";
    for (bool usual : {false, true}) {
        for (bool in_place : {false, true}) {
            CAPTURE(usual);
            CAPTURE(in_place);
            Read r = read_responses(wire, usual, 16384, in_place);
            REQUIRE(!r.events.empty());
            CHECK(r.events.back() == ParseEvent::error);
            CHECK(r.heads.empty());
        }
    }
    // Just under the bound it is a response like any other.
    std::string small = "HTTP/1.1 200 OK\r\n" + fields.substr(0, 59 * 1009) + "X-Last: 1\r\n" +
                        "Content-Length: 2\r\n\r\nok";
    same_as_llhttp(small);
}
