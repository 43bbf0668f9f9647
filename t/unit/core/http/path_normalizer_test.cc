#include <doctest/doctest.h>

#include <string>

#include "core/http/path_normalizer.h"

using namespace torii;

namespace {
// The normalised path, or "400" for a refused one.
std::string norm(std::string_view in) {
    Arena arena;
    std::string_view out;
    const char *why = nullptr;
    if (int status = normalize_path(in, arena, &out, &why)) {
        CHECK(why != nullptr);
        return std::to_string(status);
    }
    return std::string(out);
}
}  // namespace

TEST_CASE("plain paths come back as the same view, without a copy") {
    Arena arena;
    std::string_view in = "/api/v1.2/users/";
    std::string_view out;
    const char *why = nullptr;
    REQUIRE(normalize_path(in, arena, &out, &why) == 0);
    CHECK(out.data() == in.data());
    CHECK(norm("/") == "/");
    CHECK(norm("/.well-known/x") == "/.well-known/x");
}

TEST_CASE("the spellings that walked past a protected location all become it") {
    CHECK(norm("/wsgi/%61dmin/x") == "/wsgi/admin/x");
    CHECK(norm("//key/") == "/key/");
    CHECK(norm("/./key/") == "/key/");
    CHECK(norm("/x/../key/") == "/key/");
    CHECK(norm("/%6Bey/") == "/key/");
    CHECK(norm("/%6bey/") == "/key/");
    CHECK(norm("/a/%2e%2E/key/") == "/key/");
    CHECK(norm("/a//b///c") == "/a/b/c");
}

TEST_CASE("dot segments at the end keep the directory form") {
    CHECK(norm("/a/b/.") == "/a/b/");
    CHECK(norm("/a/b/..") == "/a/");
    CHECK(norm("/a/..") == "/");
    CHECK(norm("/.") == "/");
    CHECK(norm("/a/./b") == "/a/b");
    CHECK(norm("/a/.b/..c") == "/a/.b/..c");  // names that start with dots are names
}

TEST_CASE("reserved characters stay encoded; hex digits become upper case") {
    CHECK(norm("/a%2Fb") == "/a%2Fb");
    CHECK(norm("/a%2fb") == "/a%2Fb");
    CHECK(norm("/a%3Fb%20c") == "/a%3Fb%20c");
    CHECK(norm("/%7Euser") == "/~user");
}

TEST_CASE("climbing above the root, an encoded NUL and broken escapes are refused") {
    CHECK(norm("/..") == "400");
    CHECK(norm("/../a") == "400");
    CHECK(norm("/a/../../b") == "400");
    CHECK(norm("/%2e%2e/a") == "400");
    CHECK(norm("/a%00b") == "400");
    CHECK(norm("/a%zzb") == "400");
    CHECK(norm("/a%4") == "400");
    CHECK(norm("/a%") == "400");
}
