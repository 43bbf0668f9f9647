#include "core/proxy/forwarded_headers.h"

#include <cstring>

#include "core/http/request_id.h"

namespace torii {

bool is_hop_by_hop(HeaderId id) {
    switch (id) {
        case HeaderId::connection:
        case HeaderId::keep_alive:
        case HeaderId::proxy_connection:
        case HeaderId::te:
        case HeaderId::upgrade:
        case HeaderId::transfer_encoding:
        case HeaderId::proxy_authenticate:
        case HeaderId::proxy_authorization:
            return true;
        default:
            return false;
    }
}

// A field without a role in the proxy's framing or forwarding: one that Connection may name.
static bool end_to_end(HeaderId id) {
    return id == HeaderId::other || id == HeaderId::x_request_id;
}

// Fields named by the Connection header(s) are hop-by-hop for this message only.
static bool named_in_connection(const HeaderList &headers, std::string_view name) {
    for (const Header &h : headers) {
        if (h.id == HeaderId::connection && has_token(h.value, name)) return true;
    }
    return false;
}

// Connection's usual values name no other field: skip the per-field scan for them.
static bool names_other_fields(const HeaderList &headers) {
    for (const Header &h : headers) {
        if (h.id != HeaderId::connection) continue;
        std::string_view v = h.value;
        if (!iequals(v, "keep-alive") && !iequals(v, "close") && !iequals(v, "upgrade"))
            return true;
    }
    return false;
}

// A client's Connection header may not remove these: they decide routing and framing,
// record the hop, or carry credentials that plugins check.
static bool protected_from_connection(const Header &h) {
    switch (h.id) {
        case HeaderId::host:
        case HeaderId::content_length:
        case HeaderId::transfer_encoding:
        case HeaderId::x_forwarded_for:
        case HeaderId::x_forwarded_proto:
        case HeaderId::x_real_ip:
        case HeaderId::via:
            return true;
        case HeaderId::other:
            return iequals(h.name, "authorization") || iequals(h.name, "forwarded") ||
                   iequals(h.name, "x-forwarded-host") || iequals(h.name, "x-forwarded-port") ||
                   iequals(h.name, "cookie");
        default:
            return false;
    }
}

void copy_client_headers(const HeaderList &in, HeaderList &out) {
    if (!names_other_fields(in)) {
        out = in;
        return;
    }
    out.clear();
    out.reserve(in.size());
    for (const Header &h : in) {
        if (end_to_end(h.id) && named_in_connection(in, h.name) && !protected_from_connection(h))
            continue;
        out.add(h.name, h.value, h.id);
    }
}

static std::string_view join(Arena &arena, std::string_view a, std::string_view sep,
                             std::string_view b) {
    char *p = arena.alloc(a.size() + sep.size() + b.size());
    std::memcpy(p, a.data(), a.size());
    std::memcpy(p + a.size(), sep.data(), sep.size());
    std::memcpy(p + a.size() + sep.size(), b.data(), b.size());
    return {p, a.size() + sep.size() + b.size()};
}

bool wants_websocket(const RequestHead &in) {
    return in.upgrade && in.method == "GET" &&
           has_token(in.headers.get(HeaderId::upgrade), "websocket");
}

void build_upstream_request_headers(Request &req, HeaderList &out) {
    // The working copy: the client's Connection-named fields already left it
    // (copy_client_headers); what plugins added stays.
    const HeaderList &in = req.headers;
    std::string_view xff, via, sent_id;
    bool has_host = false;
    out.reserve(in.size() + 5);
    for (const Header &h : in) {
        switch (h.id) {
            case HeaderId::other:
            case HeaderId::trailer:
                out.add(h.name, h.value, h.id);
                continue;
            case HeaderId::host:
                has_host = true;
                out.add(h.name, h.value, h.id);
                continue;
            case HeaderId::x_forwarded_for:
                xff = xff.empty() ? h.value : join(req.arena, xff, ", ", h.value);
                continue;
            case HeaderId::via:
                via = via.empty() ? h.value : join(req.arena, via, ", ", h.value);
                continue;
            case HeaderId::x_request_id:  // sent once below, as $request_id
                if (sent_id.empty()) sent_id = h.value;
                continue;
            default:  // hop-by-hop, framing (re-added by the caller), Expect, and the X-
                      // fields rewritten below
                continue;
        }
    }
    if (!has_host && !req.input.authority.empty())
        out.add("Host", req.input.authority, HeaderId::host);
    out.add("X-Forwarded-For",
            xff.empty() ? req.remote_addr : join(req.arena, xff, ", ", req.remote_addr),
            HeaderId::x_forwarded_for);
    out.add("X-Real-IP", req.remote_addr, HeaderId::x_real_ip);
    out.add("X-Forwarded-Proto", req.input.scheme, HeaderId::x_forwarded_proto);
    std::string_view hop = req.input.version == HttpVersion::http10 ? "1.0 torii" : "1.1 torii";
    out.add("Via", via.empty() ? hop : join(req.arena, via, ", ", hop), HeaderId::via);
    // Exactly one X-Request-Id, the one the access log writes: the client's (its first
    // non-empty one) or a new one.
    out.add("X-Request-Id", request_id(req, sent_id), HeaderId::x_request_id);
    if (wants_websocket(req.input)) {  // the handshake's hop-by-hop pair goes on
        out.add("Upgrade", "websocket", HeaderId::upgrade);
        out.add("Connection", "upgrade", HeaderId::connection);
    }
}

void copy_response_headers(const HeaderList &from, HeaderList &to) {
    bool check_connection = names_other_fields(from);
    to.reserve(from.size() + 2);
    for (const Header &h : from) {
        if (is_hop_by_hop(h.id) || h.id == HeaderId::content_length) continue;
        if (check_connection && end_to_end(h.id) && named_in_connection(from, h.name)) continue;
        to.add(h.name, h.value, h.id);
    }
}

// RFC 9110 6.5.1: fields that frame, route, authenticate or describe the content are not
// trailer fields. A recipient that merges trailers into the head (some servers and
// frameworks do) would otherwise read a second Content-Length or Host, or an
// X-Forwarded-For that torii never set, from the part of the message sent last.
static bool trailer_allowed(const Header &h) {
    switch (h.id) {
        case HeaderId::other:
            return !iequals(h.name, "authorization") && !iequals(h.name, "cookie") &&
                   !iequals(h.name, "set-cookie") && !iequals(h.name, "content-type") &&
                   !iequals(h.name, "content-encoding") && !iequals(h.name, "content-range") &&
                   !iequals(h.name, "www-authenticate") && !iequals(h.name, "forwarded") &&
                   !iequals(h.name, "x-forwarded-host") && !iequals(h.name, "x-forwarded-port");
        default:  // framing, Host, hop-by-hop, Expect, Trailer, the forwarding fields
            return false;
    }
}

void drop_disallowed_trailers(HeaderList &trailers) {
    if (trailers.empty()) return;
    trailers.remove_if([](const Header &h) { return !trailer_allowed(h); });
}

}  // namespace torii
