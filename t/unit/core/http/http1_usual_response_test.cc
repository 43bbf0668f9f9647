// Usual upstream responses read without llhttp (core/http/http1_usual_response.h): what
// is taken reads as llhttp reads it, what is not is left to llhttp untouched, and the
// parser around it keeps llhttp's events and keep-alive verdicts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/http/http1_parser.h"
#include "t/unit/support/read_piece.h"
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
        test::ReadPiece piece(std::string_view(wire).substr(off, step), in.get(), in_place);
        for (int guard = 0; guard < 100 && !stop; ++guard) {
            ParseEvent ev = piece.feed(p, body.get(), body_limit);
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

// Every way of reading `wire` with the usual path gives what llhttp alone gives it whole;
// `cut` is one more piece size worth trying (0: none).
void same_as_llhttp(const std::string &wire, size_t cut = 0) {
    Read ref = read_responses(wire, false);
    for (size_t step : {size_t{1}, size_t{7}, size_t{64}, SIZE_MAX, cut ? cut : SIZE_MAX}) {
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
    return parse_usual_response_head(head.data(), head.size(), UINT64_MAX, &resp, &arena);
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
    REQUIRE(parse_usual_response_head(wire.data(), wire.size(), UINT64_MAX, &resp, &arena) ==
            head.size());
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
        CHECK(parse_usual_response_head(w.data(), w.size(), UINT64_MAX, &resp, &arena) == 0);
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

namespace {

// One response awaited by a parser with usual responses on; feed() hands it a read.
struct OneResponse {
    Http1Parser p{Http1Parser::Kind::response};
    Arena arena;
    ResponseHead head;
    EvbufferPtr in = make_evbuffer(), body = make_evbuffer();

    explicit OneResponse(bool head_request) { p.begin_response(&head, &arena, head_request); }
    ParseEvent feed(std::string_view read = {}) {
        return p.feed(in.get(), body.get(), SIZE_MAX, read);
    }
};

}  // namespace

TEST_CASE("a usual body cut short by the upstream is an error, as with llhttp") {
    OneResponse r(false);
    CHECK(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") == ParseEvent::head_complete);
    CHECK(r.feed() == ParseEvent::need_more);
    CHECK(r.p.in_body());
    CHECK(r.p.body_bytes() == 3);
    CHECK(r.p.finish() == ParseEvent::error);
    CHECK(r.p.error_status() == 502);
}

TEST_CASE("the response to a HEAD request is llhttp's: its length announces no body") {
    OneResponse r(true);
    CHECK(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") == ParseEvent::head_complete);
    CHECK(r.head.no_body);
    CHECK(r.feed() == ParseEvent::message_complete);
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

// Found in review of the usual path.
TEST_CASE("a 1xx that says close ends the connection for the usual path too, however it is cut") {
    std::string interim = "HTTP/1.1 100 Continue\r\nConnection: close\r\nX-Pad: aaaaaaaaa\r\n\r\n";
    std::string wire = interim + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    Read ref = read_responses(wire, false);
    REQUIRE(!ref.events.empty());
    CHECK(ref.events.back() == ParseEvent::error);  // llhttp: data after Connection: close
    same_as_llhttp(wire, interim.size());           // the 200 in a read of its own
}

TEST_CASE("the 64 KiB bound counts a usual head as llhttp's path does, whole in one read") {
    // Fields without a space after the colon: the raw head is smaller than what is counted
    // (4 bytes a field), so the raw size alone would let it through.
    std::string fields;
    while (fields.size() < kMaxResponseHeadSize - 300)
        fields += "X:" + std::string(250, 'v') + "\r\n";
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length:0\r\n" + fields + "\r\n";
    REQUIRE(wire.size() <= kMaxResponseHeadSize);
    Read ref = read_responses(wire, false);
    REQUIRE(!ref.events.empty());
    CHECK(ref.events.back() == ParseEvent::error);
    same_as_llhttp(wire);
}

TEST_CASE("white space before values is never copied: a head's memory follows its count") {
    // 200 fields of "A:", 20,000 spaces and "b": each counts 6 bytes, and must cost about
    // that much arena, not 20 KB, whether the head is a request or a response, in one read.
    std::string fields;
    for (int i = 0; i < 200; ++i)
        fields += "A" + std::to_string(i) + ":" + std::string(20000, ' ') + "b\r\n";
    std::string request = "GET / HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n";
    std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + fields + "\r\n";
    for (bool in_place : {false, true}) {
        CAPTURE(in_place);
        EvbufferPtr in = make_evbuffer(), body = make_evbuffer();
        {
            Http1Parser p(Http1Parser::Kind::request);
            Arena arena;
            RequestHead head;
            p.begin_request(&head, &arena, 32 * 1024);
            if (!in_place) evbuffer_add(in.get(), request.data(), request.size());
            ParseEvent ev = p.feed(in.get(), body.get(), SIZE_MAX,
                                   in_place ? std::string_view(request) : std::string_view());
            CHECK(ev == ParseEvent::head_complete);
            CHECK(head.headers.size() == 201);
            CHECK(head.headers.get("a199") == "b");
            CHECK(arena.bytes_allocated() < 64 * 1024);
            evbuffer_drain(in.get(), evbuffer_get_length(in.get()));
        }
        {
            Http1Parser p(Http1Parser::Kind::response);
            Arena arena;
            ResponseHead head;
            p.begin_response(&head, &arena, false);
            if (!in_place) evbuffer_add(in.get(), response.data(), response.size());
            ParseEvent ev = p.feed(in.get(), body.get(), SIZE_MAX,
                                   in_place ? std::string_view(response) : std::string_view());
            CHECK(ev == ParseEvent::head_complete);
            CHECK(head.headers.get("a199") == "b");
            CHECK(arena.bytes_allocated() < 64 * 1024);
            evbuffer_drain(in.get(), evbuffer_get_length(in.get()));
        }
    }
}

TEST_CASE("a response's trailers have a bound of their own") {
    std::string head_fields, trailer_fields;
    while (head_fields.size() < 40000)
        head_fields += "X-H: " + std::string(200, 'h') + "\r\n";
    while (trailer_fields.size() < 30000)
        trailer_fields += "X-T: " + std::string(200, 't') + "\r\n";
    std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + head_fields +
                       "\r\n2\r\nok\r\n0\r\n" + trailer_fields + "\r\n";
    Read r = read_responses(wire, true, 4096);
    REQUIRE(!r.events.empty());
    CHECK(r.events.back() == ParseEvent::message_complete);
    CHECK(r.body == "ok");
}
