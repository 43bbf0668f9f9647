#include "modules/admin/admin_host.h"

#include <arpa/inet.h>

#include <string>

#include "core/http/headers.h"

namespace torii {

namespace {

bool all_digits(std::string_view s) {
    if (s.empty() || s.size() > 5) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// "name[:port]" or "[v6][:port]" → the host without brackets; false on any other shape.
bool split_host(std::string_view authority, std::string_view &host, bool &bracketed) {
    std::string_view port;
    bracketed = !authority.empty() && authority.front() == '[';
    if (bracketed) {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = authority.substr(1, close - 1);
        std::string_view rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return false;
            port = rest.substr(1);
            if (!all_digits(port)) return false;
        }
    } else {
        size_t colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos && !all_digits(authority.substr(colon + 1)))
            return false;
    }
    return !host.empty();
}

}  // namespace

bool admin_host_allowed(std::string_view authority, const AdminConfig &admin) {
    std::string_view host;
    bool bracketed;
    if (!split_host(authority, host, bracketed)) return false;

    // An IP literal: inet_pton takes only the strict forms (no "127.1", no octal), which
    // is what browsers send after normalising a URL.
    SocketAddress literal;
    std::string text(host);
    if (bracketed) {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&literal.storage);
        if (inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) != 1) return false;
        sin6->sin6_family = AF_INET6;
        literal.length = sizeof(sockaddr_in6);
    } else {
        auto *sin = reinterpret_cast<sockaddr_in *>(&literal.storage);
        if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            literal.length = sizeof(sockaddr_in);
        }
    }
    if (literal.length != 0) {
        // Bound to every address: which of the machine's addresses the client dialled is
        // not known here, and a literal cannot be rebound by DNS, so any literal will do.
        return admin.listen.is_wildcard() || admin.listen.same_host(literal);
    }
    // A DNS name: only those that do not come from an attacker's DNS.
    return iequals(host, "localhost") || (!admin.name.empty() && iequals(host, admin.name));
}

}  // namespace torii
