// A connected loopback TCP pair for tests that drive torii's sockets directly: the test's
// end (blocking) and torii's end (non-blocking), through an ephemeral listener.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace torii::test {

struct TcpPair {
    int app = -1;
    int torii = -1;
};

inline TcpPair tcp_pair() {
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(l, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
    REQUIRE(::listen(l, 1) == 0);
    socklen_t len = sizeof sin;
    ::getsockname(l, reinterpret_cast<sockaddr *>(&sin), &len);
    TcpPair p;
    p.app = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(p.app, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
    p.torii = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(p.torii >= 0);
    ::close(l);
    return p;
}

}  // namespace torii::test
