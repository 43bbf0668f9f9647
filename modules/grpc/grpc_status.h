// Answers torii makes itself on a gRPC call go out in gRPC form: a trailers-only HTTP 200
// with `grpc-status` and `grpc-message` (Envoy does the same; nginx and HAProxy send an HTML
// or bare HTTP error that gRPC clients report as an opaque UNKNOWN or UNAVAILABLE).
//
//   401 UNAUTHENTICATED (16)   403 PERMISSION_DENIED (7)   404 UNIMPLEMENTED (12)
//   413, 429 RESOURCE_EXHAUSTED (8)   502, 503 UNAVAILABLE (14)   504 DEADLINE_EXCEEDED (4)
//   400, 500 INTERNAL (13)   anything else UNKNOWN (2)
#pragma once

#include <cstdint>
#include <string_view>

namespace torii {

class Arena;
struct Request;
struct RequestHead;

// A gRPC call: HTTP/2 with content-type application/grpc (or application/grpc+proto, ...).
bool is_grpc_request(const RequestHead &in);
int grpc_status_for_http(int status);
// Rewrites req.response (an error of torii's or a plugin's, with `message` as its text) into
// the trailers-only gRPC answer; the body becomes empty.
void make_grpc_error(Request &req, std::string_view message);

}  // namespace torii

namespace torii {

// grpc-timeout ("100m", "2S", "1H": digits and a unit of H M S m u n) in milliseconds
// (rounded up), or -1 when absent or malformed.
int64_t parse_grpc_timeout(std::string_view v);
// The same deadline written back for the upstream ("1234m").
std::string_view format_grpc_timeout(Arena &arena, int64_t ms);

}  // namespace torii
