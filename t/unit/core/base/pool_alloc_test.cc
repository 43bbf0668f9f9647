#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/base/pool_alloc.h"

using namespace torii;

TEST_CASE("pool: blocks of every class and beyond hold what was written, aligned") {
    std::vector<void *> blocks;
    for (size_t n : {0ul, 1ul, 47ul, 48ul, 49ul, 200ul, 1000ul, 4080ul, 16000ul, 32752ul,
                     32753ul, 100000ul}) {
        auto *p = static_cast<unsigned char *>(pool::alloc(n));
        REQUIRE(p);
        CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0);
        std::memset(p, 0xab, n);
        blocks.push_back(p);
    }
    for (void *p : blocks)
        pool::free(p);
    pool::free(nullptr);
}

TEST_CASE("pool: a freed block comes back for the next allocation of its class") {
    void *a = pool::alloc(100);
    pool::free(a);
    void *b = pool::alloc(90);  // same class (128 with the header)
    CHECK(b == a);
    pool::free(b);
}

TEST_CASE("pool: realloc keeps the bytes across classes and into large blocks; calloc zeroes") {
    auto *p = static_cast<char *>(pool::alloc(10));
    std::memcpy(p, "0123456789", 10);
    p = static_cast<char *>(pool::realloc(p, 20));  // fits its 64-byte block: same place
    CHECK(std::memcmp(p, "0123456789", 10) == 0);
    p = static_cast<char *>(pool::realloc(p, 3000));
    CHECK(std::memcmp(p, "0123456789", 10) == 0);
    p = static_cast<char *>(pool::realloc(p, 200000));  // past the largest class
    CHECK(std::memcmp(p, "0123456789", 10) == 0);
    p = static_cast<char *>(pool::realloc(p, 300000));
    CHECK(std::memcmp(p, "0123456789", 10) == 0);
    pool::free(p);
    auto *z = static_cast<unsigned char *>(pool::calloc(50, 3));
    for (int i = 0; i < 150; ++i)
        REQUIRE(z[i] == 0);
    pool::free(z);
    CHECK(pool::calloc(SIZE_MAX / 2, 4) == nullptr);  // overflow refused
}
