// The gRPC health checking protocol's two messages (grpc.health.v1, the one call
// /grpc.health.v1.Health/Check), for health probes of type "grpc". Written by hand: two
// messages of one field each do not need a protobuf library.
//
//   message HealthCheckRequest  { string service = 1; }
//   message HealthCheckResponse { ServingStatus status = 1; }
//   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
//
// Both travel as gRPC length-prefixed messages: a compression flag byte, a 4-byte big-endian
// length, the protobuf bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace torii {

// The Check call's path.
inline constexpr std::string_view kGrpcHealthCheckPath = "/grpc.health.v1.Health/Check";

// The request body asking about `service` ("" asks about the server as a whole).
std::string grpc_health_request(std::string_view service);

// What a Check response body says: the serving status (0-3, or any other non-negative number
// a newer server sends), or -1 when the body is not one uncompressed HealthCheckResponse.
int64_t grpc_health_status(std::string_view body);

// "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", "UNKNOWN", or "status N" for other numbers.
std::string grpc_health_status_name(int64_t status);

}  // namespace torii
