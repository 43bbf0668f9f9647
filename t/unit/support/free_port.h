// A loopback port for a test's peer: below the ephemeral range (where client sockets get
// theirs), free for both TCP and UDP right now, and not handed out before in this process.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <set>

namespace torii::test {

inline bool loopback_port_free(uint16_t port) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0;
        ::close(fd);
        if (!ok) return false;
    }
    return true;
}

inline uint16_t free_port() {
    static std::set<uint16_t> given;
    static std::minstd_rand random(std::random_device{}());
    for (int attempt = 0; attempt < 1000; ++attempt) {
        auto port = static_cast<uint16_t>(20'000 + random() % 12'000);
        if (given.count(port) || !loopback_port_free(port)) continue;
        given.insert(port);
        return port;
    }
    FAIL("no free port");
    return 0;
}

}  // namespace torii::test
