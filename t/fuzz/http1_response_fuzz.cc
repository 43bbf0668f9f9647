// HTTP/1 responses from an upstream through torii's llhttp glue (core/http/http1_parser.cc):
// status lines, bodies by Content-Length, chunked (with trailers) or until the connection
// closes, responses without a body (HEAD, 1xx, 204, 304), interim responses before the
// final one, and keep-alive reuse.
//
// Input: one option byte (piece size, whether the request was HEAD, a small body buffer
// limit), then the bytes the upstream sends before it closes. Parsed whole and in pieces,
// each way both from the input buffer and in place (a socket's read handed over as `fresh`,
// its memory freed as soon as feed() returns), with usual responses read without llhttp
// (core/http/http1_usual_response.h) and without: every transcript must match llhttp's own
// of the bytes whole.
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
    bool head_request;
    size_t body_limit;
    bool usual = true;  // usual responses skip llhttp (core/http/http1_usual_response.h)
};

constexpr int kMaxMessages = 16;

std::string run(std::string_view wire, const Options &o, bool in_place) {
    std::string out;
    Http1Parser p(Http1Parser::Kind::response);
    p.set_usual_responses(o.usual);
    EvbufferPtr in = make_evbuffer();
    EvbufferPtr body = make_evbuffer();
    Arena arena;
    ResponseHead head;
    std::string body_text;
    p.begin_response(&head, &arena, o.head_request);
    int messages = 0;
    bool stopped = false;
    auto drain_body = [&] {
        size_t n = evbuffer_get_length(body.get());
        std::string chunk(n, '\0');
        evbuffer_remove(body.get(), chunk.data(), n);
        body_text += chunk;
    };
    auto on_event = [&](ParseEvent ev) {
        switch (ev) {
            case ParseEvent::head_complete:
                FUZZ_CHECK(!(head.chunked && head.content_length >= 0) || head.no_body);
                for (const Header &f : head.headers)
                    FUZZ_CHECK(!f.name.empty());
                append_head(out, head);
                break;
            case ParseEvent::body_full:
                drain_body();
                break;
            case ParseEvent::message_complete:
                drain_body();
                FUZZ_CHECK(!head.no_body || body_text.empty());
                FUZZ_CHECK(head.content_length < 0 || head.no_body ||
                           body_text.size() == static_cast<uint64_t>(head.content_length));
                // Whether the owner may reuse the connection (a usual response says yes).
                out += p.keep_alive() ? "keep-alive " : "close ";
                out += "body " + std::to_string(body_text.size()) + ": " + body_text + "\n";
                for (const Header &f : head.trailers)
                    FUZZ_CHECK(!f.name.empty());
                append_fields(out, "  trailer ", head.trailers);
                body_text.clear();
                if (++messages == kMaxMessages) {
                    stopped = true;
                    break;
                }
                head.clear();
                arena.reset();
                p.begin_response(&head, &arena, o.head_request);
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
                stopped = true;
                break;
            case ParseEvent::need_more:
                break;
        }
    };
    for (size_t off = 0; off < wire.size() && !stopped; off += o.step) {
        fuzz::Piece piece(wire.substr(off, o.step), in.get(), in_place);
        for (int guard = 0; guard < 4 * kMaxMessages + 64 && !stopped; ++guard) {
            ParseEvent ev = piece.feed(p, body.get(), o.body_limit);
            if (ev == ParseEvent::need_more) break;
            on_event(ev);
        }
    }
    // The upstream closed: a body read until close ends here, anything else is cut short.
    if (!stopped) {
        ParseEvent ev = p.finish();
        out += "finish\n";
        if (ev != ParseEvent::need_more) on_event(ev);
    }
    return out;
}

}  // namespace

int torii_fuzz_http1_response(const uint8_t *data, size_t size) {
    fuzz::Input input(data, size);
    uint8_t opt = input.byte();
    Options o;
    o.step = (opt & 0x10) ? 1 + (opt & 0x0f) * 61u : 1 + (opt & 0x0f);
    o.head_request = opt & 0x20;
    o.body_limit = (opt & 0x40) ? 5 : SIZE_MAX;
    std::string_view wire = input.rest();
    Options whole = o;
    whole.step = wire.size() ? wire.size() : 1;
    // The reference: llhttp alone, the bytes whole. Usual responses must read the same.
    Options llhttp_whole = whole, llhttp_split = o;
    llhttp_whole.usual = llhttp_split.usual = false;
    std::string one = run(wire, llhttp_whole, false);
    fuzz::check_same_transcript(one, "llhttp only, split, in place", run(wire, llhttp_split, true),
                                o.step);
    fuzz::check_same_transcript(one, "whole", run(wire, whole, false), o.step);
    fuzz::check_same_transcript(one, "whole, in place", run(wire, whole, true), o.step);
    fuzz::check_same_transcript(one, "split", run(wire, o, false), o.step);
    fuzz::check_same_transcript(one, "split, in place", run(wire, o, true), o.step);
    return 0;
}
