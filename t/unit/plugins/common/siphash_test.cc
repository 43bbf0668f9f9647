// The shared plugin helpers that are header-only C, checked from C++.
#include <doctest/doctest.h>

#include <cstdint>

#include "plugins/common/siphash.h"

TEST_CASE("SipHash-2-4 gives the reference vectors") {
    unsigned char key[16], msg[64];
    for (int i = 0; i < 16; ++i)
        key[i] = static_cast<unsigned char>(i);
    for (int i = 0; i < 64; ++i)
        msg[i] = static_cast<unsigned char>(i);
    // The paper's Appendix A example (15 bytes) and the reference implementation's first
    // vectors (empty input, 1 byte, 8 bytes: a whole word and an empty last block).
    CHECK(pc_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK(pc_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(pc_siphash24(key, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(pc_siphash24(key, msg, 8) == 0x93f5f5799a932462ull);
    CHECK(pc_siphash24(key, msg, 63) == 0x958a324ceb064572ull);
    // Another key, another value.
    key[0] ^= 1;
    CHECK(pc_siphash24(key, msg, 15) != 0xa129ca6149be45e5ull);
}
