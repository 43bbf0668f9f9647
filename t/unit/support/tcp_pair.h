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

// A listening socket on 127.0.0.1 at a port the kernel picks; *sin gets its address.
inline int listen_loopback(int backlog, sockaddr_in *sin) {
    int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(l >= 0);
    *sin = sockaddr_in{};
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(l, reinterpret_cast<sockaddr *>(sin), sizeof *sin) == 0);
    REQUIRE(::listen(l, backlog) == 0);
    socklen_t len = sizeof *sin;
    ::getsockname(l, reinterpret_cast<sockaddr *>(sin), &len);
    return l;
}

inline TcpPair tcp_pair() {
    sockaddr_in sin;
    int l = listen_loopback(1, &sin);
    TcpPair p;
    p.app = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(p.app, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
    p.torii = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(p.torii >= 0);
    ::close(l);
    return p;
}

}  // namespace torii::test
