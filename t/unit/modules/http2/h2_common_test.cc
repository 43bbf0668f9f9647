#include "modules/http2/h2_common.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "core/base/arena.h"

using namespace torii;

static std::string nv_name(const nghttp2_nv &nv) {
    return std::string(reinterpret_cast<const char *>(nv.name), nv.namelen);
}

TEST_CASE("NvList::add_field lower-cases names as a byte loop would, every byte and length") {
    Arena arena;
    // Every byte value, at every offset of an 8-byte word and in the tail after it: the
    // word-at-a-time fold must touch A-Z only (not '@', '[', 0xC1 and the like).
    for (int b = 0; b < 256; ++b) {
        for (size_t len = 1; len <= 19; ++len) {
            for (size_t at = 0; at < len; ++at) {
                std::string name(len, 'K');
                name[at] = static_cast<char>(b);
                std::string want = name;
                for (char &c : want)
                    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
                h2::NvList nv(arena, 1);
                nv.add_field({name, "v", HeaderId::other});
                REQUIRE(nv.size() == 1);
                REQUIRE(nv_name(nv.data()[0]) == want);
            }
        }
    }
}

TEST_CASE("NvList::add_field leaves connection-specific fields out") {
    Arena arena;
    h2::NvList nv(arena, 2);
    nv.add_field({"Connection", "close", HeaderId::connection});
    nv.add_field({"Content-Type", "text/plain", HeaderId::other});
    REQUIRE(nv.size() == 1);
    CHECK(nv_name(nv.data()[0]) == "content-type");
}

// Reads everything `body` holds in slices of `slice` bytes; `eof` tells whether the end came.
static std::string read_all(h2::OutBody &body, Arena &arena, size_t slice, bool *eof) {
    std::string out;
    *eof = false;
    while (!*eof) {
        uint8_t buf[64];
        uint32_t flags = 0;
        ssize_t n = body.read(nullptr, 1, arena, buf, std::min(slice, sizeof buf), &flags);
        if (n == NGHTTP2_ERR_DEFERRED) break;
        out.append(reinterpret_cast<const char *>(buf), static_cast<size_t>(n));
        *eof = (flags & NGHTTP2_DATA_FLAG_EOF) != 0;
    }
    return out;
}

static void add_text(h2::OutBody &body, Arena *arena, const std::string &s) {
    EvbufferPtr data = make_evbuffer();
    evbuffer_add(data.get(), s.data(), s.size());
    body.add(nullptr, 1, data.get(), arena);
    REQUIRE(evbuffer_get_length(data.get()) == 0);  // taken, all of it
}

TEST_CASE("OutBody: bytes in the arena and in the evbuffer come out in order, then the end") {
    Arena arena;
    h2::OutBody body;
    std::string big(h2::OutBody::kArenaBody, 'b');
    add_text(body, &arena, "first ");   // into the arena
    add_text(body, &arena, "second ");  // the arena's bytes are unread: the evbuffer
    CHECK(body.pending() == 13);
    bool eof;
    CHECK(read_all(body, arena, 5, &eof) == "first second ");
    CHECK_FALSE(eof);                 // deferred: no end queued yet
    add_text(body, &arena, "third");  // nothing unread, but the evbuffer exists now
    add_text(body, &arena, big);
    body.end(nullptr, 1, nullptr);
    CHECK(read_all(body, arena, 64, &eof) == "third" + big);
    CHECK(eof);
    CHECK(body.pending() == 0);
}

TEST_CASE("OutBody: a message keeps at most kArenaBody bytes in its arena") {
    Arena arena;
    h2::OutBody body;
    std::string piece(h2::OutBody::kArenaBody / 2, 'p');
    bool eof;
    for (int i = 0; i < 4; ++i) {  // each read before the next piece: arena, arena, evbuffer...
        add_text(body, &arena, piece);
        CHECK(read_all(body, arena, 64, &eof) == piece);
        CHECK((body.buf != nullptr) == (i >= 2));
    }
    CHECK(body.arena_bytes == h2::OutBody::kArenaBody);
    h2::OutBody tunnel;
    add_text(tunnel, nullptr, "x");  // no arena: the evbuffer at once
    CHECK(tunnel.buf != nullptr);
}
