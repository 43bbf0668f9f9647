#include "modules/http2/h2_request_checks.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

using torii::h2::Field;
using torii::h2::RequestChecks;
using Fields = std::vector<std::pair<std::string, std::string>>;

// Feeds a head; false as soon as a field or the head's end is refused.
static bool head_ok(const Fields &fields, RequestChecks &c) {
    for (const auto &[n, v] : fields)
        if (c.on_field(n, v, false) == Field::malformed) return false;
    return c.on_head_end();
}

static bool head_ok(const Fields &fields) {
    RequestChecks c;
    return head_ok(fields, c);
}

static Fields get(Fields extra = {}) {
    Fields f = {
        {":method", "GET"}, {":scheme", "https"}, {":authority", "h.example"}, {":path", "/p"}};
    f.insert(f.end(), extra.begin(), extra.end());
    return f;
}

// The byte classes, every byte value: what nghttp2's checks allow, no more.
TEST_CASE("RequestChecks: field names and values, every byte value") {
    for (int b = 0; b < 256; ++b) {
        char c = static_cast<char>(b);
        bool lower_tchar = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                           std::string("!#$%&'*+-.^_`|~").find(c) != std::string::npos;
        CAPTURE(b);
        CHECK(head_ok(get({{std::string("x") + c + "y", "v"}})) == lower_tchar);
        bool value_ok = b == '\t' || (b >= 0x20 && b <= 0x7e) || b >= 0x80;
        CHECK(head_ok(get({{"x", std::string("a") + c + "b"}})) == value_ok);
        bool path_ok = (b > 0x20 && b <= 0x7e) || b >= 0x80;
        CHECK(head_ok({{":method", "GET"},
                       {":scheme", "https"},
                       {":authority", "h"},
                       {":path", std::string("/a") + c}}) == path_ok);
        // Not '@': userinfo is refused (RFC 9113 8.3.1), in host as in :authority.
        bool authority_ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                            (b >= '0' && b <= '9') ||
                            std::string("-._~!$&'()*+,;=:[]%").find(c) != std::string::npos;
        CHECK(head_ok({{":method", "GET"},
                       {":scheme", "https"},
                       {":authority", std::string("h") + c},
                       {":path", "/"}}) == authority_ok);
        CHECK(head_ok({{":method", "GET"},
                       {":scheme", "https"},
                       {":path", "/"},
                       {"host", std::string("h") + c}}) == authority_ok);
        bool scheme_ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                         (b >= '0' && b <= '9') || c == '+' || c == '-' || c == '.';
        CHECK(head_ok({{":method", "GET"},
                       {":scheme", std::string("s") + c},
                       {":authority", "h"},
                       {":path", "/"}}) == scheme_ok);
        std::string name = std::string("x") + c + "y";
        if (lower_tchar)
            CHECK(RequestChecks().on_field(name, "v", false) ==
                  (c == '_' ? Field::underscored : Field::regular));
    }
}

TEST_CASE("RequestChecks: the rules of a request head") {
    CHECK(head_ok(get()));
    {
        RequestChecks c;
        CHECK(c.on_field(":method", "GET", false) == Field::method);
        CHECK(c.on_field(":scheme", "http", false) == Field::scheme);
        CHECK(c.on_field(":authority", "h", false) == Field::authority);
        CHECK(c.on_field(":path", "/", false) == Field::path);
        CHECK(c.on_field("host", "h", false) == Field::host);
        CHECK(c.on_field("x", "y", false) == Field::regular);
        torii::HeaderId id;
        CHECK(c.on_field("x-forwarded-for", "1.2.3.4", false, id) == Field::regular);
        CHECK(id == torii::HeaderId::x_forwarded_for);
        CHECK(c.on_field("x_user", "u", false, id) == Field::underscored);
        CHECK(id == torii::HeaderId::other);
    }
    // "http" or "https" in any case asks for an origin-form path; another scheme does not.
    for (const char *scheme : {"http", "HTTPS", "hTtP", "https"})
        CHECK_FALSE(head_ok(
            {{":method", "GET"}, {":scheme", scheme}, {":authority", "h"}, {":path", "p"}}));
    for (const char *scheme : {"httpx", "htt", "http+", "https1", "hxtp"})
        CHECK(head_ok(
            {{":method", "GET"}, {":scheme", scheme}, {":authority", "h"}, {":path", "p"}}));
    CHECK(head_ok(get({{"te", "Trailers"}, {"content-length", "0"}})));
    CHECK(head_ok(
        {{":method", "OPTIONS"}, {":scheme", "http"}, {":authority", "h"}, {":path", "*"}}));
    CHECK(head_ok({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h"}}));
    CHECK(head_ok({{":method", "CONNECT"}, {":authority", "h:443"}}));
    CHECK(head_ok({{":method", "CONNECT"},
                   {":protocol", "websocket"},
                   {":scheme", "https"},
                   {":path", "/ws"},
                   {":authority", "h"}}));

    CHECK_FALSE(head_ok(get({{"x", " leading"}})));
    CHECK_FALSE(head_ok(get({{"x", "trailing\t"}})));
    CHECK_FALSE(head_ok(get({{"x", " "}})));
    CHECK(head_ok(get({{"x", ""}})));
    CHECK(head_ok(get({{"x", "a"}, {"y", "a b"}, {"z", "abcdefghijklmnopq\x80"}})));
    // Every length up to 40, a control byte at every place: classes_of's blocks and tail.
    for (size_t len = 1; len <= 40; ++len)
        for (size_t at = 0; at < len; ++at) {
            std::string v(len, 'v');
            CHECK(head_ok(get({{"x", v}})));
            v[at] = '\x01';
            CHECK_FALSE(head_ok(get({{"x", v}})));
        }
    CHECK_FALSE(head_ok(get({{"", "v"}})));
    CHECK_FALSE(head_ok(get({{"X-Upper", "v"}})));
    for (const char *n :
         {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
        CHECK_FALSE(head_ok(get({{n, "x"}})));
    CHECK_FALSE(head_ok(get({{"te", "gzip"}})));
    CHECK_FALSE(head_ok(get({{"content-length", "1x"}})));
    CHECK_FALSE(head_ok(get({{"content-length", ""}})));
    CHECK_FALSE(head_ok(get({{"content-length", "99999999999999999999"}})));
    CHECK_FALSE(head_ok(get({{"content-length", "1"}, {"content-length", "1"}})));
    CHECK_FALSE(head_ok(get({{"host", "a"}, {"host", "a"}})));
    CHECK_FALSE(head_ok(get({{"host", ""}})));
    CHECK_FALSE(head_ok(get({{":path", "/again"}})));  // twice
    CHECK_FALSE(head_ok(get({{"x", "v"}, {":foo", "v"}})));
    CHECK_FALSE(head_ok({{":method", "GET"},
                         {":scheme", "http"},
                         {":authority", "h"},
                         {":path", "/"},
                         {":status", "200"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", ""}}));
    CHECK_FALSE(
        head_ok({{":method", ""}, {":scheme", "http"}, {":authority", "h"}, {":path", "/"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "1http"}, {":authority", "h"}, {":path", "/"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "http"}, {":authority", ""}, {":path", "/"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "*"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "p"}}));
    CHECK(head_ok({{":method", "GET"}, {":scheme", "foo"}, {":authority", "h"}, {":path", "p"}}));
    CHECK_FALSE(
        head_ok({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}));  // no authority
    CHECK_FALSE(head_ok({{":method", "GET"}, {":authority", "h"}, {":path", "/"}}));   // no scheme
    CHECK_FALSE(head_ok({{":scheme", "http"}, {":authority", "h"}, {":path", "/"}}));  // no method
    CHECK_FALSE(head_ok({{":method", "CONNECT"}}));  // no authority
    CHECK_FALSE(head_ok({{":method", "CONNECT"}, {":authority", "h"}, {":path", "/"}}));  // a path
    CHECK_FALSE(head_ok({{":method", "CONNECT"}, {":authority", "h"}, {":scheme", "http"}}));
    CHECK_FALSE(head_ok(get({{":protocol", "websocket"}})));  // :protocol without CONNECT
    CHECK_FALSE(head_ok({{":method", "CONNECT"},
                         {":protocol", "websocket"},
                         {":scheme", "https"},
                         {":path", "/ws"},
                         {"host", "h"}}));  // extended CONNECT without :authority
}

TEST_CASE("RequestChecks: trailers and the body's length") {
    RequestChecks c;
    REQUIRE(head_ok(get({{"content-length", "5"}}), c));
    CHECK(c.content_length() == 5);
    CHECK(c.on_data(2));
    CHECK_FALSE(c.on_end());  // 2 of 5
    CHECK(c.on_data(3));
    CHECK(c.on_end());
    CHECK_FALSE(c.on_data(1));  // 6 of 5

    CHECK(c.on_field("x-t", "1", true) == Field::regular);
    CHECK(c.on_field(":path", "/", true) == Field::malformed);  // no pseudo-header in trailers
    CHECK(c.on_field("x-t", "a\nb", true) == Field::malformed);

    RequestChecks connect;
    REQUIRE(head_ok({{":method", "CONNECT"}, {":authority", "h:443"}, {"content-length", "1"}},
                    connect));
    CHECK(connect.content_length() == -1);  // a tunnel's bytes have no declared length
    CHECK(connect.on_data(100));
    CHECK(connect.on_end());
}
