#include <doctest/doctest.h>

#include "core/proxy/forwarded_headers.h"

using namespace torii;

TEST_CASE("upstream request heads drop hop-by-hop fields and record the hop") {
    Request req;
    req.remote_addr = "10.0.0.9";
    req.input.scheme = "http";
    req.input.authority = "example.com";
    HeaderList &h = req.input.headers;
    h.add("Host", "example.com");
    h.add("Connection", "keep-alive, X-Hop");
    h.add("X-Hop", "1");
    h.add("Keep-Alive", "300");
    h.add("Proxy-Connection", "x");
    h.add("TE", "trailers");
    h.add("Upgrade", "h2c");
    h.add("X-Forwarded-For", "1.2.3.4");
    h.add("Via", "1.0 edge");
    h.add("Content-Length", "3");
    h.add("Accept", "*/*");
    copy_client_headers(req.input.headers, req.headers);
    HeaderList out;
    build_upstream_request_headers(req, out);
    for (const char *gone : {"connection", "x-hop", "keep-alive", "proxy-connection", "te",
                             "upgrade", "content-length"})
        CHECK_MESSAGE(!out.contains(gone), gone);
    CHECK(out.get("host") == "example.com");
    CHECK(out.get("accept") == "*/*");
    CHECK(out.get("x-forwarded-for") == "1.2.3.4, 10.0.0.9");
    CHECK(out.get("x-real-ip") == "10.0.0.9");
    CHECK(out.get("x-forwarded-proto") == "http");
    CHECK(out.get("via") == "1.0 edge, 1.1 torii");
}

TEST_CASE("a client's Connection header removes only its own fields, never a plugin's") {
    Request req;
    req.remote_addr = "10.0.0.9";
    req.input.scheme = "http";
    HeaderList &h = req.input.headers;
    h.add("Host", "example.com");
    h.add("Connection", "X-Consumer, Host, Authorization, X-Forwarded-For, Content-Length, X-Mine");
    h.add("X-Mine", "client");
    h.add("Authorization", "Bearer t");
    h.add("X-Forwarded-For", "1.2.3.4");
    copy_client_headers(req.input.headers, req.headers);
    CHECK(!req.headers.contains("x-mine"));
    CHECK(req.headers.get("host") == "example.com");
    CHECK(req.headers.get("authorization") == "Bearer t");
    // What a plugin sets after the copy (header_rewrite's request_set) reaches the upstream.
    req.headers.add("X-Consumer", "alice");
    HeaderList out;
    build_upstream_request_headers(req, out);
    CHECK(out.get("x-consumer") == "alice");
    CHECK(out.get("host") == "example.com");
    CHECK(out.get("authorization") == "Bearer t");
    CHECK(out.get("x-forwarded-for") == "1.2.3.4, 10.0.0.9");
    CHECK(!out.contains("x-mine"));
    CHECK(!out.contains("connection"));
}

TEST_CASE("response heads keep end-to-end fields only") {
    HeaderList from;
    from.add("Connection", "close, X-Secret");
    from.add("X-Secret", "s");
    from.add("Keep-Alive", "timeout=5");
    from.add("Transfer-Encoding", "chunked");
    from.add("Content-Length", "10");
    from.add("Trailer", "X-Checksum");
    from.add("X-End", "kept");
    HeaderList to;
    copy_response_headers(from, to);
    CHECK(to.size() == 2);
    CHECK(to.get("trailer") == "X-Checksum");
    CHECK(to.get("x-end") == "kept");
}

static size_t count(const HeaderList &h, std::string_view name) {
    size_t n = 0;
    for (const Header &f : h)
        n += iequals(f.name, name);
    return n;
}

TEST_CASE("the upstream gets one X-Request-Id: the client's, else $request_id") {
    SUBCASE("none sent: a new id, the one $request_id gives") {
        Request req;
        req.remote_addr = "10.0.0.9";
        req.input.headers.add("Host", "example.com");
        copy_client_headers(req.input.headers, req.headers);
        HeaderList out;
        build_upstream_request_headers(req, out);
        CHECK(count(out, "x-request-id") == 1);
        CHECK(out.get("x-request-id").size() == 32);
        CHECK(out.get("x-request-id") == req.request_id);
    }
    SUBCASE("the client's first non-empty one is kept, and only it") {
        Request req;
        req.remote_addr = "10.0.0.9";
        req.input.headers.add("X-Request-Id", "");
        req.input.headers.add("x-request-id", "abc-123");
        req.input.headers.add("X-Request-ID", "second");
        copy_client_headers(req.input.headers, req.headers);
        HeaderList out;
        build_upstream_request_headers(req, out);
        CHECK(count(out, "x-request-id") == 1);
        CHECK(out.get("x-request-id") == "abc-123");
        CHECK(req.request_id == "abc-123");
    }
}

TEST_CASE("trailers keep what may travel after the body, nothing that frames or routes") {
    HeaderList t;
    t.add("Content-Length", "50");
    t.add("Transfer-Encoding", "chunked");
    t.add("Host", "evil.example");
    t.add("X-Forwarded-For", "10.0.0.1");
    t.add("Connection", "close");
    t.add("Authorization", "Bearer x");
    t.add("Content-Type", "text/html");
    t.add("X-Checksum", "abc");
    t.add("grpc-status", "0");
    drop_disallowed_trailers(t);
    REQUIRE(t.size() == 2);
    CHECK(t.get("x-checksum") == "abc");
    CHECK(t.get("grpc-status") == "0");
}
