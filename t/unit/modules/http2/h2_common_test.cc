#include "modules/http2/h2_common.h"

#include <doctest/doctest.h>

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
