#include <doctest/doctest.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/net/listener.h"
#include "core/worker/accept_gate.h"

using namespace torii;

namespace {

// A loopback listening socket, a Listener + AcceptGate on it, and helpers to connect and
// to run the loop for a moment.
struct Bench {
    EventBasePtr base{event_base_new()};
    int lfd = -1;
    uint16_t port = 0;
    std::vector<int> accepted;
    std::vector<int> clients;
    AcceptGate gate;
    std::unique_ptr<Listener> listener;

    explicit Bench(size_t limit) : gate(base.get(), limit) {
        sockaddr_in any{};  // port 0: the kernel picks one
        any.sin_family = AF_INET;
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        auto fd = open_listen_socket(
            SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&any), sizeof any));
        REQUIRE(fd.ok());
        lfd = fd.value();
        sockaddr_in sin{};
        socklen_t len = sizeof sin;
        getsockname(lfd, reinterpret_cast<sockaddr *>(&sin), &len);
        port = ntohs(sin.sin_port);
        listener = std::make_unique<Listener>(
            base.get(), lfd,
            [this](int cfd, const SocketAddress &) {
                accepted.push_back(cfd);
                gate.on_opened(accepted.size());
            },
            [this](int err) { gate.on_exhausted(err, accepted.size()); });
        gate.add(listener.get());
    }
    ~Bench() {
        listener.reset();
        for (int fd : accepted)
            ::close(fd);
        for (int fd : clients)
            ::close(fd);
        ::close(lfd);
    }
    void connect_clients(int n) {
        for (int i = 0; i < n; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            sin.sin_port = htons(port);
            sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(::connect(fd, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
            clients.push_back(fd);
        }
    }
    void spin(int ms) {
        timeval tv = to_timeval(ms);
        event_base_loopexit(base.get(), &tv);
        event_base_dispatch(base.get());
    }
    void close_one() {
        ::close(accepted.back());
        accepted.pop_back();
        gate.on_closed(accepted.size());
    }
};

}  // namespace

TEST_CASE("a full worker stops accepting until a connection closes") {
    Bench b(3);
    b.connect_clients(5);
    b.spin(50);
    CHECK(b.accepted.size() == 3);  // the rest stay queued for other workers
    b.spin(50);
    CHECK(b.accepted.size() == 3);
    b.close_one();
    b.spin(50);
    CHECK(b.accepted.size() == 3);  // one slot freed, one more taken
    b.close_one();
    b.close_one();
    b.spin(50);
    CHECK(b.accepted.size() == 2);  // the last queued one taken
    b.close_one();
    b.spin(50);
    CHECK(b.accepted.size() == 1);  // nothing left in the queue
}

TEST_CASE("out of fds, a worker pauses accepting and retries after a moment") {
    Bench b(100);
    b.gate.on_exhausted(EMFILE, 0);  // as the listener reports it
    b.connect_clients(2);
    b.spin(30);
    CHECK(b.accepted.empty());  // paused: the queued connections wait
    b.spin(150);
    CHECK(b.accepted.size() == 2);  // the 100 ms retry resumed accepting

    b.gate.on_exhausted(EMFILE, 2);
    b.connect_clients(1);
    b.spin(30);
    CHECK(b.accepted.size() == 2);
    b.close_one();  // a closed connection frees an fd: accept at once
    b.spin(30);
    CHECK(b.accepted.size() == 2);
}

TEST_CASE("a closed gate never opens again") {
    Bench b(1);
    b.gate.close();
    b.connect_clients(1);
    b.spin(30);
    CHECK(b.accepted.empty());
    b.gate.on_closed(0);
    b.gate.on_exhausted(EMFILE, 0);
    b.spin(150);
    CHECK(b.accepted.empty());
}
