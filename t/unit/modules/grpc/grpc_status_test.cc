#include "modules/grpc/grpc_status.h"

#include <doctest/doctest.h>

#include "core/http/request.h"

using namespace torii;

TEST_CASE("HTTP statuses map to gRPC statuses as Envoy maps them") {
    CHECK(grpc_status_for_http(401) == 16);
    CHECK(grpc_status_for_http(403) == 7);
    CHECK(grpc_status_for_http(404) == 12);
    CHECK(grpc_status_for_http(413) == 8);
    CHECK(grpc_status_for_http(429) == 8);
    CHECK(grpc_status_for_http(502) == 14);
    CHECK(grpc_status_for_http(503) == 14);
    CHECK(grpc_status_for_http(504) == 4);
    CHECK(grpc_status_for_http(500) == 13);
    CHECK(grpc_status_for_http(418) == 2);
}

TEST_CASE("only HTTP/2 requests with a gRPC content type are gRPC calls") {
    RequestHead in;
    in.version = HttpVersion::http2;
    in.headers.add("content-type", "application/grpc");
    CHECK(is_grpc_request(in));
    in.headers.set("content-type", "application/grpc+proto");
    CHECK(is_grpc_request(in));
    in.headers.set("content-type", "application/grpc-web");
    CHECK_FALSE(is_grpc_request(in));
    in.headers.set("content-type", "application/json");
    CHECK_FALSE(is_grpc_request(in));
    in.version = HttpVersion::http11;
    in.headers.set("content-type", "application/grpc");
    CHECK_FALSE(is_grpc_request(in));
}

TEST_CASE("an error becomes a trailers-only answer with an encoded message") {
    Request req;
    req.response.status = 503;
    req.response.headers.add("Content-Type", "text/plain");
    make_grpc_error(req, "no healthy target: 100%\n");
    CHECK(req.response.status == 200);
    CHECK(req.response.content_length == 0);
    CHECK(req.response.headers.get("content-type") == "application/grpc");
    CHECK(req.response.headers.get("grpc-status") == "14");
    CHECK(req.response.headers.get("grpc-message") == "no healthy target: 100%25");
}

TEST_CASE("grpc-timeout is read in every unit and written back in milliseconds") {
    CHECK(parse_grpc_timeout("100m") == 100);
    CHECK(parse_grpc_timeout("2S") == 2000);
    CHECK(parse_grpc_timeout("1M") == 60000);
    CHECK(parse_grpc_timeout("1H") == 3600000);
    CHECK(parse_grpc_timeout("1500u") == 2);      // rounded up: never earlier than asked
    CHECK(parse_grpc_timeout("1000000n") == 1);
    CHECK(parse_grpc_timeout("") == -1);
    CHECK(parse_grpc_timeout("10") == -1);        // no unit
    CHECK(parse_grpc_timeout("1x") == -1);
    CHECK(parse_grpc_timeout("123456789S") == -1);  // more than 8 digits
    Arena arena;
    CHECK(format_grpc_timeout(arena, 1234) == "1234m");
    CHECK(format_grpc_timeout(arena, 0) == "1m");
}
