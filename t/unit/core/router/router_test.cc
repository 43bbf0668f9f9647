#include <doctest/doctest.h>

#include "core/router/router.h"

using namespace torii;

static LocationConfig loc(std::string path, MatchType match = MatchType::prefix) {
    LocationConfig l;
    l.path = std::move(path);
    l.match = match;
    return l;
}

TEST_CASE("longest prefix wins, whatever the config order") {
    std::vector<LocationConfig> locs = {loc("/"), loc("/api/"), loc("/api/v2/")};
    auto r = Router::build(locs);
    REQUIRE(r.ok());
    CHECK(r.value()->match("/api/v2/users")->path == "/api/v2/");
    CHECK(r.value()->match("/api/v1/users")->path == "/api/");
    CHECK(r.value()->match("/other")->path == "/");
}

TEST_CASE("exact beats everything, regex beats prefix, no match is null") {
    std::vector<LocationConfig> locs = {loc("/api/"), loc("/api/health", MatchType::exact),
                                        loc("^/api/.*\\.png$", MatchType::regex)};
    auto r = Router::build(locs);
    REQUIRE(r.ok());
    CHECK(r.value()->match("/api/health")->match == MatchType::exact);
    CHECK(r.value()->match("/api/health/x")->path == "/api/");
    CHECK(r.value()->match("/api/img/a.png")->match == MatchType::regex);
    CHECK(r.value()->match("/api/img/a.jpg")->path == "/api/");
    CHECK(r.value()->match("/elsewhere") == nullptr);
}

TEST_CASE("a bad regex is reported with the location's position") {
    std::vector<LocationConfig> locs = {loc("^/(unclosed", MatchType::regex)};
    locs[0].pos = SourcePos{"t.toml", 7, 1};
    auto r = Router::build(locs);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("t.toml:7:1: location \"^/(unclosed\": bad regex:", 0) == 0);
}
