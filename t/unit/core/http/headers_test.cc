#include <doctest.h>

#include <string>

#include "core/http/headers.h"

using namespace torii;

static bool reference_iequals(const std::string &a, const std::string &b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; };
        if (lower(static_cast<unsigned char>(a[i])) != lower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

TEST_CASE("iequals folds ASCII letters only, at every length and position") {
    // Every byte pair at every position of strings of 1..20 bytes: the word-at-a-time
    // compare must agree with the byte-wise definition (0x20 apart is a match only for
    // letters: '@'/'`', '['/'{', '\r'/'-', 0xc1/0xe1 are not).
    for (size_t len = 1; len <= 20; ++len) {
        for (size_t pos = 0; pos < len; pos += (len > 9 ? 3 : 1)) {
            for (int c = 0; c < 256; ++c) {
                for (int d : {c, c ^ 0x20, c ^ 0x01, c ^ 0x80}) {
                    std::string a(len, 'k'), b(len, 'K');
                    a[pos] = static_cast<char>(c);
                    b[pos] = static_cast<char>(d);
                    CHECK(iequals(a, b) == reference_iequals(a, b));
                }
            }
        }
    }
    CHECK(iequals("Keep-Alive", "keep-alive"));
    CHECK_FALSE(iequals("keep\ralive", "keep-alive"));
    CHECK_FALSE(iequals("close", "clos"));
    CHECK(iequals("", ""));
}

TEST_CASE("classify_header knows its fields in any case, and nothing else") {
    CHECK(classify_header("Host") == HeaderId::host);
    CHECK(classify_header("CONTENT-LENGTH") == HeaderId::content_length);
    CHECK(classify_header("transfer-encoding") == HeaderId::transfer_encoding);
    CHECK(classify_header("X-Forwarded-Proto") == HeaderId::x_forwarded_proto);
    CHECK(classify_header("Connection") == HeaderId::connection);
    CHECK(classify_header("Hosts") == HeaderId::other);
    CHECK(classify_header("Hos\x14") == HeaderId::other);
    CHECK(classify_header("content_length") == HeaderId::other);
}
