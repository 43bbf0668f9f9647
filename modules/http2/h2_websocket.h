// WebSocket over HTTP/2 (RFC 8441) as the rest of torii sees it: an extended CONNECT with
// `:protocol = websocket` becomes the HTTP/1.1 handshake it stands for (GET, Upgrade:
// websocket, a Sec-WebSocket-Key of torii's own), so every phase, plugin and upstream treats
// it like a WebSocket upgrade over HTTP/1.1; the upstream's 101 becomes the 200 that opens
// the stream's tunnel (modules/http2/http2_tunnel).
#pragma once

#include <string_view>

namespace torii {

struct Request;

namespace h2 {

// Rewrites the extended CONNECT's head in `req.input` into the HTTP/1.1 handshake: method
// GET, Upgrade: websocket, a fresh Sec-WebSocket-Key (an HTTP/2 client sends none: RFC 8441
// section 5). The key is returned for checking the answer (in the request's arena).
std::string_view websocket_handshake_from_connect(Request &req);

// The upstream's Sec-WebSocket-Accept proves it read this handshake (RFC 6455 4.2.2).
bool websocket_accept_matches(std::string_view key, std::string_view accept);

}  // namespace h2
}  // namespace torii
