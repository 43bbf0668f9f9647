#include "core/base/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

namespace torii {

namespace {

Error address_error(std::string_view text, std::string_view why) {
    return make_error("invalid address \"" + std::string(text) + "\": " + std::string(why));
}

// "8080" -> 8080; anything but 1..65535 written as plain digits is refused.
bool parse_port(std::string_view text, uint16_t &port) {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return false;
    port = static_cast<uint16_t>(value);
    return true;
}

SocketAddress make_v4(in_addr addr, uint16_t port) {
    SocketAddress out;
    auto *sin = reinterpret_cast<sockaddr_in *>(&out.storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = addr;
    out.length = sizeof(sockaddr_in);
    return out;
}

void set_port(SocketAddress &address, uint16_t port) {
    if (address.family() == AF_INET) {
        reinterpret_cast<sockaddr_in *>(&address.storage)->sin_port = htons(port);
    } else if (address.family() == AF_INET6) {
        reinterpret_cast<sockaddr_in6 *>(&address.storage)->sin6_port = htons(port);
    }
}

// getaddrinfo for a host without port. Numeric-only for bracketed IPv6 (so a scope id such as
// "fe80::1%eth0" works); names are resolved, which is acceptable because addresses are parsed
// at config load, never on the request path.
Result<SocketAddress> resolve(std::string_view text, const std::string &host, bool numeric) {
    addrinfo hints{};
    hints.ai_family = numeric ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
    addrinfo *list = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
        if (numeric) return address_error(text, "bad IPv6 address");
        return address_error(text, "cannot resolve \"" + host + "\": " + gai_strerror(rc));
    }
    // Prefer IPv4: "localhost" may list ::1 first, while clients, health checks and tests
    // mostly dial 127.0.0.1.
    const addrinfo *chosen = nullptr;
    for (const addrinfo *ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            chosen = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && !chosen) chosen = ai;
    }
    if (!chosen) {
        freeaddrinfo(list);
        return address_error(text, "no IPv4 or IPv6 address for \"" + host + "\"");
    }
    SocketAddress out = SocketAddress::from_sockaddr(chosen->ai_addr, chosen->ai_addrlen);
    freeaddrinfo(list);
    return out;
}

}  // namespace

uint16_t SocketAddress::port() const {
    if (family() == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in *>(&storage)->sin_port);
    }
    if (family() == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6 *>(&storage)->sin6_port);
    }
    return 0;
}

size_t SocketAddress::format_host(char *buf) const {
    static_assert(kHostTextMax >= INET6_ADDRSTRLEN);
    buf[0] = '\0';
    if (family() == AF_INET) {
        const auto *b = reinterpret_cast<const unsigned char *>(
            &reinterpret_cast<const sockaddr_in *>(&storage)->sin_addr);
        char *p = buf;
        for (int i = 0; i < 4; ++i) {
            unsigned v = b[i];
            if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
            if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
            *p++ = static_cast<char>('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
        return static_cast<size_t>(p - buf - 1);
    }
    if (family() == AF_INET6 &&
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(&storage)->sin6_addr, buf,
                  kHostTextMax))
        return std::strlen(buf);
    buf[0] = '\0';
    return 0;
}

std::string SocketAddress::host_string() const {
    char buf[kHostTextMax];
    size_t n = format_host(buf);
    return std::string(buf, n);
}

bool SocketAddress::is_loopback() const {
    if (family() == AF_INET) {
        uint32_t a = ntohl(reinterpret_cast<const sockaddr_in *>(&storage)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (family() == AF_INET6) {
        const in6_addr &a = reinterpret_cast<const sockaddr_in6 *>(&storage)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
    }
    return false;
}

bool SocketAddress::is_wildcard() const {
    if (family() == AF_INET)
        return reinterpret_cast<const sockaddr_in *>(&storage)->sin_addr.s_addr == INADDR_ANY;
    if (family() == AF_INET6) {
        const in6_addr &a = reinterpret_cast<const sockaddr_in6 *>(&storage)->sin6_addr;
        return IN6_IS_ADDR_UNSPECIFIED(&a);
    }
    return false;
}

bool SocketAddress::same_host(const SocketAddress &other) const {
    if (family() != other.family()) return false;
    if (family() == AF_INET)
        return reinterpret_cast<const sockaddr_in *>(&storage)->sin_addr.s_addr ==
               reinterpret_cast<const sockaddr_in *>(&other.storage)->sin_addr.s_addr;
    if (family() == AF_INET6)
        return IN6_ARE_ADDR_EQUAL(
            &reinterpret_cast<const sockaddr_in6 *>(&storage)->sin6_addr,
            &reinterpret_cast<const sockaddr_in6 *>(&other.storage)->sin6_addr);
    return false;
}

std::string SocketAddress::to_string() const {
    if (family() != AF_INET && family() != AF_INET6) return {};
    // Appended piece by piece: g++ 12 at -O3 reports a false -Wrestrict on "[" + string.
    std::string out;
    bool v6 = family() == AF_INET6;
    if (v6) out += '[';
    out += host_string();
    out += v6 ? "]:" : ":";
    out += std::to_string(port());
    return out;
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr *sa, socklen_t len) {
    SocketAddress out;
    if (!sa || len == 0) return out;
    if (len > sizeof(out.storage)) len = sizeof(out.storage);
    std::memcpy(&out.storage, sa, len);
    out.length = len;
    return out;
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
    if (text.empty()) return address_error(text, "empty");

    std::string_view host;
    std::string_view port_text;
    bool bracketed = false;
    if (text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) return address_error(text, "missing \"]\"");
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':') {
            return address_error(text, "missing port (use [::1]:8080)");
        }
        port_text = rest.substr(1);
        bracketed = true;
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return address_error(text, "missing port (use 127.0.0.1:8080)");
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return address_error(text, "IPv6 addresses go in brackets, e.g. [::1]:8080");
        }
    }

    uint16_t port;
    if (!parse_port(port_text, port)) return address_error(text, "port must be 1..65535");
    if (host.empty()) return address_error(text, "missing host (use *:8080 for any)");

    if (!bracketed) {
        if (host == "*") return make_v4(in_addr{htonl(INADDR_ANY)}, port);
        in_addr v4;
        std::string host_z(host);
        if (inet_pton(AF_INET, host_z.c_str(), &v4) == 1) return make_v4(v4, port);
    }
    Result<SocketAddress> resolved = resolve(text, std::string(host), bracketed);
    if (!resolved) return resolved;
    set_port(*resolved, port);
    return resolved;
}

}  // namespace torii
