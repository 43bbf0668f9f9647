#include <doctest/doctest.h>

#include "core/http/request.h"
#include "core/http/variables.h"

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
