#include "core/server/query_mask.h"

#include <doctest/doctest.h>

namespace torii {

static std::string masked(std::string_view target) {
    std::string out = "[";
    append_masked_target(out, target);
    return out + "]";
}

TEST_CASE("targets without credentials are copied as they are") {
    CHECK(masked("/") == "[/]");
    CHECK(masked("/a/b") == "[/a/b]");
    CHECK(masked("/a?") == "[/a?]");
    CHECK(masked("/a?page=2&sort=name") == "[/a?page=2&sort=name]");
    CHECK(masked("/a?&&x&=y&") == "[/a?&&x&=y&]");
}

TEST_CASE("built-in credential names are masked, however they are spelled") {
    CHECK(masked("/a?apikey=k-1&page=2") == "[/a?apikey=***&page=2]");
    CHECK(masked("/a?page=2&access_token=eyJ.x.y") == "[/a?page=2&access_token=***]");
    CHECK(masked("/a?APIKEY=k&Password=p") == "[/a?APIKEY=***&Password=***]");
    CHECK(masked("/a?api%5Fkey=k&api%6Bey=k&%6B%65%79=k") ==
          "[/a?api%5Fkey=***&api%6Bey=***&%6B%65%79=***]");
    CHECK(masked("/a?apikey%00x=k") == "[/a?apikey%00x=***]");  // a C upstream reads "apikey"
    CHECK(masked("/a?apikey=a=b&x=1") == "[/a?apikey=***&x=1]");
    // no value, an empty one, or a name that only contains a credential name: kept
    CHECK(masked("/a?apikey&token=&apikeys=1&my_token=2") ==
          "[/a?apikey&token=&apikeys=1&my_token=2]");
    CHECK(masked("/a?api+key=1") == "[/a?api+key=1]");  // "api key"
}

TEST_CASE("names registered by plugins are masked too") {
    CHECK(masked("/a?sesame=open") == "[/a?sesame=open]");
    CHECK(query_mask_add("Sesame"));
    CHECK(query_mask_add("sesame"));  // again: harmless
    CHECK(masked("/a?sesame=open&SESAME=x&ses%61me=y") ==
          "[/a?sesame=***&SESAME=***&ses%61me=***]");
    CHECK(query_mask_add("my key"));
    CHECK(masked("/a?my+key=1&my%20key=2") == "[/a?my+key=***&my%20key=***]");
    CHECK_FALSE(query_mask_add(""));
    CHECK_FALSE(query_mask_add(std::string(65, 'q')));
    CHECK(query_mask_add(std::string(64, 'q')));
    CHECK(masked("/a?" + std::string(64, 'q') + "=1") == "[/a?" + std::string(64, 'q') + "=***]");
    CHECK(masked("/a?" + std::string(65, 'q') + "=1") == "[/a?" + std::string(65, 'q') + "=1]");
}

}  // namespace torii
