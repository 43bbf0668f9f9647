// plugins/common/grow.h: the growable arrays of the bundled plugins (the breaker's admin
// view, the rate limiter's sweep, Basic auth's users).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>

#include "plugins/common/grow.h"

TEST_CASE("pc_grow doubles from the first capacity and keeps what the array held") {
    int *items = nullptr;
    size_t cap = 0, count = 0;
    for (int i = 0; i < 100; ++i) {
        int *p = static_cast<int *>(pc_grow(items, &cap, count, sizeof *items, 4));
        REQUIRE(p != nullptr);
        items = p;
        items[count++] = i;
    }
    CHECK(cap == 128);  // 4, 8, ..., 128
    for (int i = 0; i < 100; ++i)
        CHECK(items[i] == i);
    // With room left, the array is returned as it is.
    size_t before = cap;
    CHECK(pc_grow(items, &cap, 100, sizeof *items, 4) == items);
    CHECK(cap == before);
    free(items);
}

TEST_CASE("pc_grow refuses a capacity whose size would overflow, leaving the array alone") {
    void *items = malloc(8);
    size_t cap = SIZE_MAX / 8 + 1;
    CHECK(pc_grow(items, &cap, cap, 8, 4) == nullptr);
    CHECK(cap == SIZE_MAX / 8 + 1);
    free(items);
}
