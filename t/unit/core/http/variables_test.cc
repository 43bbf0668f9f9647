#include <doctest/doctest.h>

#include "core/http/request.h"
#include "core/http/request_id.h"
#include "core/http/variables.h"

#include <set>
#include <string>

using namespace torii;

static void fill(Request &req) {
    req.remote_addr = "10.1.2.3";
    req.input.method = "GET";
    req.input.scheme = "http";
    req.input.authority = "example.com:8080";
    req.path = "/api/users";
    req.query = "id=42&debug&name=x%20y";
    req.headers.add("X-User", "alice");
    req.headers.add("Cookie", "a=1; session=abc; b=2");
}

TEST_CASE("variables of SPEC section 4") {
    Request req;
    fill(req);
    std::string_view v;
    CHECK((get_variable(req, "remote_addr", &v) && v == "10.1.2.3"));
    CHECK((get_variable(req, "$host", &v) && v == "example.com"));
    CHECK((get_variable(req, "uri", &v) && v == "/api/users"));
    CHECK((get_variable(req, "args", &v) && v == "id=42&debug&name=x%20y"));
    CHECK((get_variable(req, "request_method", &v) && v == "GET"));
    CHECK((get_variable(req, "scheme", &v) && v == "http"));
    CHECK((get_variable(req, "http_x_user", &v) && v == "alice"));
    CHECK((get_variable(req, "arg_id", &v) && v == "42"));
    CHECK((get_variable(req, "arg_debug", &v) && v.empty()));
    CHECK((get_variable(req, "cookie_session", &v) && v == "abc"));
    CHECK_FALSE(get_variable(req, "http_x_missing", &v));
    CHECK_FALSE(get_variable(req, "arg_nope", &v));
    CHECK_FALSE(get_variable(req, "upstream_addr", &v));
    CHECK_FALSE(get_variable(req, "no_such_thing", &v));
}

TEST_CASE("templates mix text and variables; unknown names fail to compile") {
    Request req;
    fill(req);
    auto t = Template::compile("$remote_addr:${http_x_user}/$arg_missing!");
    REQUIRE(t.ok());
    CHECK(t.value().expand(req) == "10.1.2.3:alice/!");
    auto plain = Template::compile("no variables");
    REQUIRE(plain.ok());
    CHECK(plain.value().constant());
    CHECK(plain.value().expand(req) == "no variables");
    auto bad = Template::compile("$nonsense");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "unknown variable \"$nonsense\"");
    CHECK_FALSE(Template::compile("trailing $").ok());
    CHECK_FALSE(Template::compile("${unclosed").ok());
}

TEST_CASE("$request_id: 32 hex digits, fixed for the request, the client's when it sent one") {
    Request a, b;
    fill(a);
    fill(b);
    std::string_view v1, v2, v3;
    REQUIRE(get_variable(a, "request_id", &v1));
    CHECK(v1.size() == 32);
    CHECK(v1.find_first_not_of("0123456789abcdef") == std::string_view::npos);
    REQUIRE(get_variable(a, "$request_id", &v2));
    CHECK(v1 == v2);
    REQUIRE(get_variable(b, "request_id", &v3));
    CHECK(v3 != v1);
    Request c;
    fill(c);
    c.headers.add("X-Request-Id", "from-client");
    CHECK((get_variable(c, "request_id", &v1) && v1 == "from-client"));
}

TEST_CASE("the log words: $request, $request_uri, $body_bytes_sent, $server_protocol, times") {
    Request req;
    fill(req);
    req.input.target = "/api/users?id=42";
    req.input.version = HttpVersion::http2;
    req.bytes_sent = 77;
    std::string_view v;
    CHECK((get_variable(req, "request", &v) && v == "GET /api/users?id=42 HTTP/2.0"));
    CHECK((get_variable(req, "request_uri", &v) && v == "/api/users?id=42"));
    CHECK((get_variable(req, "body_bytes_sent", &v) && v == "77"));
    CHECK((get_variable(req, "bytes_sent", &v) && v == "77"));
    CHECK((get_variable(req, "server_protocol", &v) && v == "HTTP/2.0"));
    CHECK((get_variable(req, "time_local", &v) && v.size() == 26));
    CHECK((get_variable(req, "time_iso8601", &v) && v.size() == 25 && v[10] == 'T'));
    CHECK((get_variable(req, "msec", &v) && v.size() > 4 && v[v.size() - 4] == '.'));
    CHECK_FALSE(get_variable(req, "status", &v));  // no response yet
    req.response.status = 204;
    CHECK((get_variable(req, "status", &v) && v == "204"));
    CHECK(is_known_variable("request_id"));
    CHECK(is_known_variable("ssl_protocol"));
    CHECK_FALSE(is_known_variable("http_"));
}

TEST_CASE("request ids use every hex digit and do not repeat") {
    std::set<std::string> ids;
    std::set<char> digits;
    for (int i = 0; i < 1000; ++i) {
        Request req;
        std::string_view id = request_id(req);
        REQUIRE(id.size() == 32);
        for (char c : id) {
            CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
            digits.insert(c);
        }
        ids.emplace(id);
    }
    CHECK(ids.size() == 1000);
    CHECK(digits.size() == 16);
}

TEST_CASE("a request refused before its fields were copied still shows them to the log") {
    Request req;
    req.input.headers.add("User-Agent", "ua/1");
    std::string_view v;
    CHECK((get_variable(req, "http_user_agent", &v) && v == "ua/1"));
    req.headers.add("User-Agent", "rewritten");  // once copied, the working copy counts
    CHECK((get_variable(req, "http_user_agent", &v) && v == "rewritten"));
}
