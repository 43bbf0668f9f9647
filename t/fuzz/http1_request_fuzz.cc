// HTTP/1 requests through torii's llhttp glue (core/http/http1_parser.cc): heads, chunked
// and Content-Length bodies, trailers, pipelining, the head size limit and the framing
// checks against smuggling (RFC 9112 6.1/6.3).
//
// Input: one option byte, then the bytes a client sends. The option byte picks the size of
// the pieces the bytes arrive in, whether '_' names are allowed, a small body buffer limit
// (body_full) and a small head limit (431). The bytes are parsed whole and in pieces, each
// way both from the input buffer and in place (a socket's read handed over as `fresh`, its
// memory freed as soon as feed() returns): all four must give the same transcript. A head that
// passed must also be one a backend reads one way only: never Content-Length with chunked, at most
// one Host.
#include <string>

#include "core/base/libevent_ptr.h"
#include "core/http/http1_parser.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_targets.h"
#include "t/fuzz/http1_transcript.h"

using namespace torii;
using fuzz::append_fields;
using fuzz::append_head;

namespace {

struct Options {
    size_t step;
    bool allow_underscores;
    size_t body_limit;
    uint64_t max_head;
};

// At most this many messages per input: pipelining is covered by a few.
constexpr int kMaxMessages = 16;

void check_head(const RequestHead &h) {
    // The framing checks of http1_parser.cc: what passes is unambiguous.
    FUZZ_CHECK(!(h.chunked && h.content_length >= 0));
    FUZZ_CHECK(!h.target.empty());
    FUZZ_CHECK(h.version != HttpVersion::http10 || !h.chunked);
    int hosts = 0;
    for (const Header &f : h.headers) {
        hosts += f.id == HeaderId::host;
        FUZZ_CHECK(!f.name.empty());
        FUZZ_CHECK(f.value.data() != nullptr);
    }
    FUZZ_CHECK(hosts <= 1);
    FUZZ_CHECK(h.version != HttpVersion::http11 || hosts == 1);
}

std::string run(std::string_view wire, const Options &o, bool in_place) {
    std::string out;
    Http1Parser p(Http1Parser::Kind::request);
    p.set_allow_underscores(o.allow_underscores);
    EvbufferPtr in = make_evbuffer();
    EvbufferPtr body = make_evbuffer();
    Arena arena;
    RequestHead head;
    std::string body_text;
    p.begin_request(&head, &arena, o.max_head);
    int messages = 0;
    bool stopped = false;
    auto drain_body = [&] {
        size_t n = evbuffer_get_length(body.get());
        std::string chunk(n, '\0');
        evbuffer_remove(body.get(), chunk.data(), n);
        body_text += chunk;
    };
    for (size_t off = 0; off < wire.size() && !stopped; off += o.step) {
        fuzz::Piece piece(wire.substr(off, o.step), in.get(), in_place);
        for (int guard = 0; guard < 4 * kMaxMessages + 64 && !stopped; ++guard) {
            ParseEvent ev = piece.feed(p, body.get(), o.body_limit);
            if (ev == ParseEvent::need_more) break;
            switch (ev) {
                case ParseEvent::head_complete:
                    check_head(head);
                    append_head(out, head);
                    break;
                case ParseEvent::body_full:
                    FUZZ_CHECK(evbuffer_get_length(body.get()) >= o.body_limit);
                    drain_body();
                    break;
                case ParseEvent::message_complete:
                    drain_body();
                    out += "body " + std::to_string(body_text.size()) + ": " + body_text + "\n";
                    for (const Header &f : head.trailers)
                        FUZZ_CHECK(!f.name.empty());
                    append_fields(out, "  trailer ", head.trailers);
                    FUZZ_CHECK(p.body_bytes() == body_text.size());
                    body_text.clear();
                    if (++messages == kMaxMessages) {
                        stopped = true;
                        break;
                    }
                    // The next pipelined request, with the arena and head reused as a
                    // keep-alive connection does.
                    head.clear();
                    arena.reset();
                    p.begin_request(&head, &arena, o.max_head);
                    break;
                case ParseEvent::upgrade:
                    out += "upgrade\n";
                    stopped = true;
                    break;
                case ParseEvent::error:
                    // Which refusal (400, 431, 501) may depend on where the bytes were cut: a
                    // head both too long and malformed is refused for whichever llhttp meets
                    // first. That it is refused may not.
                    out += "error\n";
                    FUZZ_CHECK(p.error_status() >= 400 && p.error_status() <= 599);
                    stopped = true;
                    break;
                case ParseEvent::need_more:
                    break;
            }
        }
    }
    if (!stopped && p.in_head()) out += "incomplete head\n";
    return out;
}

}  // namespace

int torii_fuzz_http1_request(const uint8_t *data, size_t size) {
    fuzz::Input input(data, size);
    uint8_t opt = input.byte();
    Options o;
    o.step = (opt & 0x10) ? 1 + (opt & 0x0f) * 61u : 1 + (opt & 0x0f);
    o.allow_underscores = opt & 0x20;
    o.body_limit = (opt & 0x40) ? 5 : SIZE_MAX;
    o.max_head = (opt & 0x80) ? 200 : 32 * 1024;
    std::string_view wire = input.rest();
    Options whole = o;
    whole.step = wire.size() ? wire.size() : 1;
    std::string one = run(wire, whole, false);
    fuzz::check_same_transcript(one, "whole, in place", run(wire, whole, true), o.step);
    fuzz::check_same_transcript(one, "split", run(wire, o, false), o.step);
    fuzz::check_same_transcript(one, "split, in place", run(wire, o, true), o.step);
    return 0;
}
