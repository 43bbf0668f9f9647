#include "modules/http2/h2_websocket.h"

#include <doctest/doctest.h>

#include "core/http/request.h"
#include "core/proxy/forwarded_headers.h"

using namespace torii;

TEST_CASE("the accept of RFC 6455's example matches its key, and nothing else") {
    CHECK(h2::websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    CHECK_FALSE(
        h2::websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="));
    CHECK_FALSE(h2::websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", ""));
    CHECK_FALSE(h2::websocket_accept_matches("", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

TEST_CASE("an extended CONNECT becomes the HTTP/1.1 handshake it stands for") {
    Request req;
    req.input.version = HttpVersion::http2;
    req.input.method = "CONNECT";
    req.input.target = "/chat";
    req.input.chunked = true;  // what an HTTP/2 head without END_STREAM says
    req.input.headers.add("sec-websocket-version", "13");
    std::string_view key = h2::websocket_handshake_from_connect(req);
    CHECK(req.input.method == "GET");
    CHECK_FALSE(req.input.has_body());  // the stream's DATA is the tunnel's
    CHECK(wants_websocket(req.input));
    CHECK(key.size() == 24);
    CHECK(req.input.headers.get("sec-websocket-key") == key);
    Request other;
    CHECK(h2::websocket_handshake_from_connect(other) != key);  // a fresh key each time
}
