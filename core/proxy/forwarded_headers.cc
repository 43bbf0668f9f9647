#include "core/proxy/forwarded_headers.h"

#include <cstring>

namespace torii {

bool is_hop_by_hop(std::string_view n) {
    switch (n.size()) {
        case 2:
            return iequals(n, "te");
        case 7:
            return iequals(n, "upgrade");  // Trailer stays: trailers are passed on
        case 10:
            return iequals(n, "connection") || iequals(n, "keep-alive");
        case 16:
            return iequals(n, "proxy-connection");
        case 17:
            return iequals(n, "transfer-encoding");
        case 18:
            return iequals(n, "proxy-authenticate");
        case 19:
            return iequals(n, "proxy-authorization");
        default:
            return false;
    }
}

// Fields named by the Connection header(s) are hop-by-hop for this message only.
static bool named_in_connection(const HeaderList &headers, std::string_view name) {
    for (const Header &h : headers) {
        if (iequals(h.name, "connection") && has_token(h.value, name)) return true;
    }
    return false;
}

static std::string_view join(Arena &arena, std::string_view a, std::string_view sep,
                             std::string_view b) {
    char *p = arena.alloc(a.size() + sep.size() + b.size());
    std::memcpy(p, a.data(), a.size());
    std::memcpy(p + a.size(), sep.data(), sep.size());
    std::memcpy(p + a.size() + sep.size(), b.data(), b.size());
    return {p, a.size() + sep.size() + b.size()};
}

void build_upstream_request_headers(Request &req, HeaderList &out) {
    const HeaderList &in = req.headers;  // the working copy: plugins may have changed it
    bool has_connection = in.contains("connection");
    std::string_view xff, via;
    bool has_host = false;
    out.reserve(in.size() + 4);
    for (const Header &h : in) {
        std::string_view n = h.name;
        if (is_hop_by_hop(n) || iequals(n, "content-length") || iequals(n, "expect")) continue;
        if (iequals(n, "x-forwarded-for")) {
            xff = xff.empty() ? h.value : join(req.arena, xff, ", ", h.value);
            continue;
        }
        if (iequals(n, "via")) {
            via = via.empty() ? h.value : join(req.arena, via, ", ", h.value);
            continue;
        }
        if (iequals(n, "x-real-ip") || iequals(n, "x-forwarded-proto")) continue;
        if (has_connection && named_in_connection(in, n)) continue;
        if (iequals(n, "host")) has_host = true;
        out.add(n, h.value);
    }
    if (!has_host && !req.input.authority.empty()) out.add("Host", req.input.authority);
    out.add("X-Forwarded-For",
            xff.empty() ? req.remote_addr : join(req.arena, xff, ", ", req.remote_addr));
    out.add("X-Real-IP", req.remote_addr);
    out.add("X-Forwarded-Proto", req.input.scheme);
    std::string_view hop = req.input.version == HttpVersion::http10 ? "1.0 torii" : "1.1 torii";
    out.add("Via", via.empty() ? hop : join(req.arena, via, ", ", hop));
}

void copy_response_headers(const HeaderList &from, HeaderList &to) {
    bool has_connection = from.contains("connection");
    to.reserve(from.size() + 2);
    for (const Header &h : from) {
        if (is_hop_by_hop(h.name) || iequals(h.name, "content-length")) continue;
        if (has_connection && named_in_connection(from, h.name)) continue;
        to.add(h.name, h.value);
    }
}

}  // namespace torii
