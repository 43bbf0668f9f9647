#include "modules/grpc/grpc_status.h"

#include "core/base/arena.h"
#include "core/base/format.h"
#include "core/http/request.h"

namespace torii {

bool is_grpc_request(const RequestHead &in) {
    if (in.version != HttpVersion::http2) return false;
    std::string_view ct = in.headers.get("content-type");
    if (ct.size() < 16) return false;
    std::string_view head = ct.substr(0, 16);
    return iequals(head, "application/grpc") &&
           (ct.size() == 16 || ct[16] == '+' || ct[16] == ';');
}

int64_t parse_grpc_timeout(std::string_view v) {
    // TimeoutValue is at most 8 digits (gRPC over HTTP/2 spec).
    if (v.size() < 2 || v.size() > 9) return -1;
    int64_t n = 0;
    for (char c : v.substr(0, v.size() - 1)) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
    }
    switch (v.back()) {
        case 'H': return n * 3'600'000;
        case 'M': return n * 60'000;
        case 'S': return n * 1000;
        case 'm': return n;
        case 'u': return (n + 999) / 1000;
        case 'n': return (n + 999'999) / 1'000'000;
        default: return -1;
    }
}

std::string_view format_grpc_timeout(Arena &arena, int64_t ms) {
    if (ms < 1) ms = 1;
    if (ms > 99'999'999) ms = 99'999'999;
    char *p = arena.alloc(12);
    size_t n = format_u64(p, static_cast<uint64_t>(ms));
    p[n++] = 'm';
    return {p, n};
}

int grpc_status_for_http(int status) {
    switch (status) {
        case 400:
        case 500:
            return 13;  // INTERNAL
        case 401:
            return 16;  // UNAUTHENTICATED
        case 403:
            return 7;  // PERMISSION_DENIED
        case 404:
            return 12;  // UNIMPLEMENTED
        case 413:
        case 429:
            return 8;  // RESOURCE_EXHAUSTED
        case 502:
        case 503:
            return 14;  // UNAVAILABLE
        case 504:
            return 4;  // DEADLINE_EXCEEDED
        default:
            return 2;  // UNKNOWN
    }
}

void make_grpc_error(Request &req, std::string_view message) {
    int http = req.response.status;
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r'))
        message.remove_suffix(1);
    // grpc-message is percent-encoded outside printable ASCII (and '%' itself).
    static const char kHex[] = "0123456789ABCDEF";
    char *msg = req.arena.alloc(message.size() * 3 + 1);
    size_t n = 0;
    for (char ch : message) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            msg[n++] = ch;
        } else {
            msg[n++] = '%';
            msg[n++] = kHex[c >> 4];
            msg[n++] = kHex[c & 15];
        }
    }
    char *code = req.arena.alloc(8);
    size_t cn = format_u64(code, static_cast<uint64_t>(grpc_status_for_http(http)));
    ResponseHead &r = req.response;
    r.headers.remove_if([](const Header &h) {
        return iequals(h.name, "content-type") || iequals(h.name, "content-length");
    });
    r.status = 200;
    r.headers.add("content-type", "application/grpc");
    r.headers.add("grpc-status", {code, cn});
    if (n) r.headers.add("grpc-message", {msg, n});
    r.content_length = 0;
}

}  // namespace torii
