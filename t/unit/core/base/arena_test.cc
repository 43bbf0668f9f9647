#include <doctest/doctest.h>

#include <string>

#include "core/base/arena.h"

using namespace torii;

TEST_CASE("append grows a string across pieces and blocks, earlier views stay valid") {
    Arena a;
    std::string_view first = a.copy("first");
    std::string_view s;
    std::string expect;
    for (int i = 0; i < 2000; ++i) {
        std::string piece = std::to_string(i) + ",";
        a.append(s, piece.data(), piece.size());
        expect += piece;
    }
    CHECK(s == expect);
    CHECK(first == "first");
    a.reset();
    std::string_view again = a.copy("again");
    CHECK(again == "again");
}
