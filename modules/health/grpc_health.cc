#include "modules/health/grpc_health.h"

namespace torii {
namespace {

constexpr size_t kPrefix = 5;  // compression flag + 4-byte length

void put_varint(std::string &out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

// Reads a varint at `p`, advancing it; false when it runs past `end` or over 10 bytes.
bool get_varint(const unsigned char *&p, const unsigned char *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 70 && p < end; shift += 7) {
        const unsigned char b = *p++;
        *v |= static_cast<uint64_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

}  // namespace

std::string grpc_health_request(std::string_view service) {
    std::string message;
    if (!service.empty()) {       // proto3 leaves a default (empty) field out
        message.push_back(0x0a);  // field 1, length-delimited
        put_varint(message, service.size());
        message.append(service);
    }
    std::string body(kPrefix, '\0');
    const uint32_t len = static_cast<uint32_t>(message.size());
    for (int i = 0; i < 4; ++i)
        body[1 + i] = static_cast<char>(len >> (8 * (3 - i)));
    return body + message;
}

int64_t grpc_health_status(std::string_view body) {
    if (body.size() < kPrefix || body[0] != 0) return -1;  // short, or compressed
    uint32_t len = 0;
    for (int i = 1; i < 5; ++i)
        len = (len << 8) | static_cast<unsigned char>(body[i]);
    if (len != body.size() - kPrefix) return -1;  // one message, whole
    const auto *p = reinterpret_cast<const unsigned char *>(body.data()) + kPrefix;
    const auto *end = p + len;
    int64_t status = 0;  // absent: proto3's default, UNKNOWN
    while (p < end) {
        uint64_t key = 0, v = 0;
        if (!get_varint(p, end, &key) || key >> 3 == 0) return -1;  // field 0 does not exist
        switch (key & 7) {  // fields other than 1 are skipped, as a newer server may add them
            case 0:
                if (!get_varint(p, end, &v)) return -1;
                // An enum is an int32: protobuf keeps the low 32 bits, as a signed number.
                if (key >> 3 == 1) status = static_cast<int32_t>(static_cast<uint32_t>(v));
                break;
            case 1:
                if (key >> 3 == 1 || end - p < 8) return -1;  // field 1 is an enum (varint)
                p += 8;
                break;
            case 2:
                if (key >> 3 == 1 || !get_varint(p, end, &v) || v > static_cast<uint64_t>(end - p))
                    return -1;
                p += v;
                break;
            case 5:
                if (key >> 3 == 1 || end - p < 4) return -1;
                p += 4;
                break;
            default:
                return -1;  // groups (3, 4) and wire types 6, 7 are no HealthCheckResponse
        }
    }
    return status < 0 ? -1 : status;  // a negative enum value is no status torii knows
}

std::string grpc_health_status_name(int64_t status) {
    switch (status) {
        case 0:
            return "UNKNOWN";
        case 1:
            return "SERVING";
        case 2:
            return "NOT_SERVING";
        case 3:
            return "SERVICE_UNKNOWN";
        default:
            return "status " + std::to_string(status);
    }
}

}  // namespace torii
