// The gRPC health protocol's messages (modules/health/grpc_health.h): the request torii
// sends, byte for byte, and what it makes of the responses a server may send.
#include <doctest/doctest.h>

#include <string>

#include "modules/health/grpc_health.h"

using namespace torii;

namespace {

std::string framed(const std::string &message, char compressed = 0) {
    std::string out(1, compressed);
    const auto n = static_cast<uint32_t>(message.size());
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>(n >> shift));
    return out + message;
}

}  // namespace

TEST_CASE("grpc health: the Check request, with and without a service") {
    // proto3 leaves an empty string out: the whole server is asked about with no bytes.
    CHECK(grpc_health_request("") == std::string("\0\0\0\0\0", 5));
    CHECK(grpc_health_request("test.Echo") == framed(std::string("\x0a\x09test.Echo")));
    // A name of 200 bytes takes a two-byte length (varint 200 = 0xc8 0x01).
    const std::string name(200, 'a');
    CHECK(grpc_health_request(name) == framed(std::string("\x0a\xc8\x01") + name));
}

TEST_CASE("grpc health: the serving status of a response") {
    CHECK(grpc_health_status(framed("\x08\x01")) == 1);
    CHECK(grpc_health_status(framed("\x08\x02")) == 2);
    CHECK(grpc_health_status(framed("\x08\x03")) == 3);
    CHECK(grpc_health_status(framed("")) == 0);  // UNKNOWN, left out as proto3 does
    // A newer server's extra fields are skipped, whatever their wire type.
    CHECK(grpc_health_status(framed(std::string("\x10\x05\x08\x01", 4))) == 1);
    CHECK(grpc_health_status(framed(std::string("\x12\x02hi\x08\x01", 6))) == 1);
    CHECK(grpc_health_status(framed(std::string("\x19", 1) + std::string(8, 'x') + "\x08\x01")) ==
          1);
    CHECK(grpc_health_status(framed(std::string("\x1d", 1) + std::string(4, 'x') + "\x08\x01")) ==
          1);
    // The last value of a repeated field wins, as protobuf parsers do.
    CHECK(grpc_health_status(framed("\x08\x02\x08\x01")) == 1);
    // An enum value this torii does not know is kept as a number, and named so.
    CHECK(grpc_health_status(framed("\x08\x07")) == 7);
    CHECK(grpc_health_status_name(7) == "status 7");
    CHECK(grpc_health_status_name(1) == "SERVING");
    CHECK(grpc_health_status_name(2) == "NOT_SERVING");
}

TEST_CASE("grpc health: what is no HealthCheckResponse") {
    CHECK(grpc_health_status("") == -1);
    CHECK(grpc_health_status(std::string("\0\0\0", 3)) == -1);         // short prefix
    CHECK(grpc_health_status(framed("\x08\x01", 1)) == -1);            // compressed
    CHECK(grpc_health_status(framed("\x08\x01") + "x") == -1);         // bytes after it
    CHECK(grpc_health_status(framed("\x08\x01").substr(0, 6)) == -1);  // cut short
    CHECK(grpc_health_status(framed("\x08")) == -1);                   // value missing
    CHECK(grpc_health_status(framed("\x08\x81")) == -1);               // varint cut
    CHECK(grpc_health_status(framed("\x0a\x01x")) == -1);              // field 1 as bytes
    CHECK(grpc_health_status(framed("\x12\x05hi")) == -1);             // length past end
    CHECK(grpc_health_status(framed("\x1b")) == -1);                   // a group
    CHECK(grpc_health_status(framed(std::string(11, '\xff'))) == -1);  // varint over 10
    CHECK(grpc_health_status(framed(framed("\x08\x01") + framed("\x08\x01")).substr(5)) == -1);
    CHECK(grpc_health_status(framed(std::string("\x00\x01", 2))) == -1);  // field number 0
    // Field 1 is a varint-encoded enum: as fixed32 or fixed64 it is something else.
    CHECK(grpc_health_status(framed(std::string("\x0d\x01\x00\x00\x00", 5))) == -1);
    CHECK(grpc_health_status(framed(std::string("\x09", 1) + std::string(8, '\0'))) == -1);
    // An enum is an int32: 0x80000001 is negative, not SERVING (1) with the top bit lost.
    CHECK(grpc_health_status(framed("\x08\x81\x80\x80\x80\x08")) == -1);
    // A 64-bit varint keeps its low 32 bits, as protobuf's int32 does: 2^32 + 1 is 1.
    CHECK(grpc_health_status(framed("\x08\x81\x80\x80\x80\x10")) == 1);
}
