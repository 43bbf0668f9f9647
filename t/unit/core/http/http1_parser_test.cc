#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/http/http1_parser.h"

using namespace torii;

namespace {

struct Fed {
    std::vector<ParseEvent> events;
    std::string body;
};

// Feeds `wire` in pieces of `step` bytes and records every event until input runs out.
Fed feed_request(Http1Parser &p, RequestHead &head, Arena &arena, const std::string &wire,
                 size_t step = SIZE_MAX, uint64_t max_head = 32 * 1024) {
    Fed out;
    EvbufferPtr in = make_evbuffer();
    EvbufferPtr body = make_evbuffer();
    p.begin_request(&head, &arena, max_head);
    for (size_t off = 0; off < wire.size() || off == 0; off += step) {
        std::string piece = wire.substr(off, step);
        evbuffer_add(in.get(), piece.data(), piece.size());
        for (int guard = 0; guard < 100; ++guard) {
            ParseEvent ev = p.feed(in.get(), body.get());
            if (ev == ParseEvent::need_more) break;
            out.events.push_back(ev);
            if (ev == ParseEvent::error || ev == ParseEvent::message_complete) break;
        }
        if (!out.events.empty() && (out.events.back() == ParseEvent::error ||
                                    out.events.back() == ParseEvent::message_complete))
            break;
        if (step == SIZE_MAX) break;
    }
    size_t n = evbuffer_get_length(body.get());
    out.body.resize(n);
    evbuffer_remove(body.get(), out.body.data(), n);
    return out;
}

}  // namespace

TEST_CASE("a GET without body reports head_complete then message_complete") {
    Http1Parser p(Http1Parser::Kind::request);
    RequestHead head;
    Arena arena;
    Fed f = feed_request(p, head, arena, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n");
    REQUIRE(f.events.size() == 2);
    CHECK(f.events[0] == ParseEvent::head_complete);
    CHECK(f.events[1] == ParseEvent::message_complete);
    CHECK(head.method == "GET");
    CHECK(head.target == "/a?b=1");
    CHECK(head.authority == "x");
    CHECK(head.headers.get("x-a") == "1");
    CHECK(p.keep_alive());
}
