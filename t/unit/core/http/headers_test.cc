#include <doctest.h>

#include <cctype>
#include <string>
#include <utility>

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

// classify_header compares words that overlap at the tail: a difference in any one byte of
// any known name, at every position, must make it another field.
TEST_CASE("classify_header: one byte changed anywhere in a known name is another field") {
    const std::pair<const char *, HeaderId> known[] = {
        {"te", HeaderId::te},
        {"via", HeaderId::via},
        {"host", HeaderId::host},
        {"expect", HeaderId::expect},
        {"upgrade", HeaderId::upgrade},
        {"trailer", HeaderId::trailer},
        {"x-real-ip", HeaderId::x_real_ip},
        {"connection", HeaderId::connection},
        {"keep-alive", HeaderId::keep_alive},
        {"x-request-id", HeaderId::x_request_id},
        {"content-length", HeaderId::content_length},
        {"x-forwarded-for", HeaderId::x_forwarded_for},
        {"proxy-connection", HeaderId::proxy_connection},
        {"transfer-encoding", HeaderId::transfer_encoding},
        {"x-forwarded-proto", HeaderId::x_forwarded_proto},
        {"proxy-authenticate", HeaderId::proxy_authenticate},
        {"proxy-authorization", HeaderId::proxy_authorization},
    };
    for (const auto &[name, id] : known) {
        std::string n = name;
        CHECK(classify_header(n) == id);
        std::string upper = n;
        for (char &c : upper)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        CHECK(classify_header(upper) == id);
        for (size_t i = 0; i < n.size(); ++i) {
            std::string changed = n;
            changed[i] = changed[i] == 'z' ? 'y' : 'z';
            CHECK(classify_header(changed) == HeaderId::other);
        }
    }
}
