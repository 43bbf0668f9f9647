#include "core/http/request_target.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "core/http/path_normalizer.h"
#include "core/http/request.h"

namespace torii {

// RFC 3986 3.2.2 host (reg-name, IPv4, IP-literal) and an optional port: unreserved,
// sub-delims, '%', ':', '[', ']'.
static constexpr auto kAuthorityChar = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c)
        t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c)
        t[c] = t[c - 32] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=%:[]"))
        t[static_cast<unsigned char>(c)] = true;
    return t;
}();

// Stricter than the grammar in one way, as nginx is: no ".." (a host is never a path).
static bool valid_authority(std::string_view a) {
    // No branch per byte (hosts are short and nearly always valid): `dots` remembers
    // whether the previous byte was a '.', `bad` collects every failure.
    const unsigned char *p = reinterpret_cast<const unsigned char *>(a.data());
    unsigned bad = 0, dot = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned is_dot = p[i] == '.';
        bad |= (kAuthorityChar[p[i]] ^ 1u) | (dot & is_dot);
        dot = is_dot;
    }
    return bad == 0;
}

// Keep-alive clients send the same Host request after request: the last one that passed
// is remembered (per worker process: one thread), so the scan runs once per new value.
static bool known_valid_authority(std::string_view a) {
    if (a.empty()) return true;  // HTTP/1.0 without Host (and no null pointer for memcmp)
    static char last[64];
    static size_t last_len = SIZE_MAX;
    if (a.size() == last_len && std::memcmp(a.data(), last, a.size()) == 0) return true;
    if (!valid_authority(a)) return false;
    if (a.size() <= sizeof last) {
        std::memcpy(last, a.data(), a.size());
        last_len = a.size();
    }
    return true;
}

int prepare_request_target(Request &req, const char **why) {
    RequestHead &in = req.input;
    std::string_view target = in.target;
    // A fragment is never part of a request target (RFC 9112 3.2, RFC 9113 8.3.1): torii
    // would route on "/secret#x" while a backend that drops the fragment serves /secret.
    if (target.find('#') != std::string_view::npos) {
        *why = "fragment in the request target";
        return 400;
    }
    if (target.front() != '/') {
        size_t scheme_end = target.find("://");
        if (target == "*" && in.method == "OPTIONS") {
            target = "/";
        } else if (scheme_end == std::string_view::npos) {
            *why = "request target is neither a path nor an absolute URI";
            return 400;
        } else {
            std::string_view scheme = target.substr(0, scheme_end);
            if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
                *why = "absolute URI with a scheme other than http or https";
                return 400;
            }
            size_t path_start = target.find_first_of("/?", scheme_end + 3);
            std::string_view authority = target.substr(
                scheme_end + 3, path_start == std::string_view::npos ? std::string_view::npos
                                                                     : path_start - scheme_end - 3);
            if (authority.empty() || authority.find('@') != std::string_view::npos) {
                *why = "absolute URI without a host, or with user information";
                return 400;
            }
            in.authority = authority;
            // The authority in the target replaces Host (RFC 9112 3.2.2): the upstream and
            // every plugin see the host torii routed on.
            req.headers.remove_if([](const Header &h) { return h.id == HeaderId::host; });
            req.headers.add("Host", authority, HeaderId::host);
            if (path_start == std::string_view::npos) {
                target = "/";
            } else if (target[path_start] == '?') {
                // "http://h?q": the path is "/"; keep the query.
                size_t n = target.size() - path_start + 1;
                char *p = req.arena.alloc(n);
                p[0] = '/';
                for (size_t i = path_start; i < target.size(); ++i)
                    p[i - path_start + 1] = target[i];
                target = {p, n};
            } else {
                target = target.substr(path_start);
            }
            in.target = target;
        }
    }
    if (!known_valid_authority(in.authority)) {
        *why = "invalid Host";
        return 400;
    }
    size_t q = target.find('?');
    std::string_view raw_path = target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    return normalize_path(raw_path, req.arena, &req.path, why);
}

}  // namespace torii
