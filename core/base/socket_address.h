// An IPv4 or IPv6 address with port, parsed from "127.0.0.1:8080", "[::1]:8080", "*:8080" or
// "localhost:8080" (resolved once, at config load, never on the request path).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "core/base/result.h"

namespace torii {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    const sockaddr *sa() const { return reinterpret_cast<const sockaddr *>(&storage); }
    int family() const { return storage.ss_family; }
    uint16_t port() const;
    // "127.0.0.1:8080" / "[::1]:8080"
    std::string to_string() const;
    // Just the host part, no brackets: "127.0.0.1" / "::1"
    std::string host_string() const;
    // The same into buf (kHostTextMax bytes), NUL-terminated; returns the length (0 for
    // neither family). Every accepted connection writes its client's text once: IPv4 is
    // formatted here, without inet_ntop's sprintf (about 1,800 instructions a connection).
    static constexpr size_t kHostTextMax = 46;  // INET6_ADDRSTRLEN
    size_t format_host(char *buf) const;
    // 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address: reachable from this machine only.
    bool is_loopback() const;
    // 0.0.0.0 or :: (every address of the machine).
    bool is_wildcard() const;
    // Same family and address, ports ignored.
    bool same_host(const SocketAddress &other) const;

    static Result<SocketAddress> parse(std::string_view text);
    static SocketAddress from_sockaddr(const sockaddr *sa, socklen_t len);
};

}  // namespace torii
