// SpliceTunnel on real loopback TCP connections, inside a real (listener-less) Worker:
// bytes both ways, backpressure bounded by the pipe, half-close passed on in each
// direction, the end once both sides have closed, and the idle timeout.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/config/config.h"
#include "core/http/request.h"
#include "core/plugin/plugin_set.h"
#include "core/tunnel/splice_tunnel.h"
#include "core/worker/worker.h"
#include "t/unit/support/tcp_pair.h"

using namespace torii;

namespace {

using test::tcp_pair;
using Pair = test::TcpPair;

struct Fixture {
    std::shared_ptr<const Config> config;
    std::unique_ptr<Worker> worker;
    Pair client, upstream;

    explicit Fixture(Millis idle = 60'000) {
        auto c = load_config_from_string("[main]\nworkers = 1\n", "t.toml");
        REQUIRE_MESSAGE(c.ok(), c.error());
        config = c.value();
        auto plugins = PluginSet::load(*config);
        REQUIRE(plugins.ok());
        worker =
            std::make_unique<Worker>(config, std::shared_ptr<PluginSet>(std::move(plugins.value())),
                                     std::vector<ListenSocket>{}, "t.toml");
        REQUIRE(worker->init().ok());
        client = tcp_pair();
        upstream = tcp_pair();
        SplicePipe up, down;
        REQUIRE(up.open());
        REQUIRE(down.open());
        Request *req = worker->acquire_request();
        req->remote_addr = "127.0.0.1";
        req->response.status = 200;
        auto *t = new SpliceTunnel(*worker, UniqueFd(client.torii), UniqueFd(upstream.torii),
                                   std::move(up), std::move(down), req,
                                   InFlight(&in_flight, &shared_in_flight), idle);
        worker->add_connection(t);
        t->start();
    }
    ~Fixture() {
        ::close(client.app);
        ::close(upstream.app);
        worker.reset();
    }

    void spin(int times = 20) {
        for (int i = 0; i < times; ++i)
            event_base_loop(worker->base(), EVLOOP_NONBLOCK);
    }
    // Reads exactly n bytes from fd while the loop runs.
    std::string read_n(int fd, size_t n) {
        std::string out;
        char buf[65536];
        for (int rounds = 0; out.size() < n && rounds < 10000; ++rounds) {
            spin(1);
            ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got > 0) out.append(buf, static_cast<size_t>(got));
            if (got == 0) break;
        }
        return out;
    }
    // True when fd reads EOF within a few loop turns.
    bool sees_eof(int fd) {
        char c;
        for (int rounds = 0; rounds < 2000; ++rounds) {
            spin(1);
            ssize_t got = ::recv(fd, &c, 1, MSG_DONTWAIT);
            if (got == 0) return true;
            if (got > 0) return false;
            usleep(100);
        }
        return false;
    }
    size_t open_connections() const { return worker->stats().connections_active; }

    uint32_t in_flight = 0;
    std::atomic<uint32_t> shared_in_flight{0};
};

}  // namespace

TEST_CASE("splice tunnel relays both ways and passes each FIN on") {
    Fixture f;
    CHECK(f.in_flight == 1);
    REQUIRE(::send(f.client.app, "hello upstream", 14, 0) == 14);
    CHECK(f.read_n(f.upstream.app, 14) == "hello upstream");
    REQUIRE(::send(f.upstream.app, "hello client", 12, 0) == 12);
    CHECK(f.read_n(f.client.app, 12) == "hello client");

    // The client shuts its write side: the upstream sees the FIN...
    ::shutdown(f.client.app, SHUT_WR);
    CHECK(f.sees_eof(f.upstream.app));
    // ...and the other direction keeps flowing.
    REQUIRE(::send(f.upstream.app, "after your fin", 14, 0) == 14);
    CHECK(f.read_n(f.client.app, 14) == "after your fin");
    CHECK(f.open_connections() == 1);

    // Once the upstream closes too, the client sees the FIN and the tunnel ends.
    ::shutdown(f.upstream.app, SHUT_WR);
    CHECK(f.sees_eof(f.client.app));
    f.spin();
    CHECK(f.open_connections() == 0);
    CHECK(f.in_flight == 0);
    CHECK(f.shared_in_flight.load() == 0);
}

TEST_CASE("splice tunnel holds back while the sink does not read, then delivers it all") {
    Fixture f;
    // The upstream reads nothing: the client can push only what the socket buffers and
    // one pipe hold (the pipe stops the tunnel reading); then the tunnel must resume
    // reading as the upstream drains, and lose nothing.
    int flags = fcntl(f.client.app, F_GETFL);
    fcntl(f.client.app, F_SETFL, flags | O_NONBLOCK);
    std::string block(65536, 'x');
    size_t pushed = 0;
    for (int i = 0; i < 2000; ++i) {
        ssize_t n = ::send(f.client.app, block.data(), block.size(), MSG_DONTWAIT);
        if (n > 0) pushed += static_cast<size_t>(n);
        f.spin(2);
        if (n < 0 && errno == EAGAIN) {
            f.spin(5);
            if (::send(f.client.app, block.data(), 1, MSG_DONTWAIT) < 0) break;
            pushed += 1;
        }
    }
    CHECK(pushed > 0);
    CHECK(pushed < 64u * 1024 * 1024);  // the client's socket filled up
    // Everything pushed arrives, in order, once the upstream reads.
    std::string got = f.read_n(f.upstream.app, pushed);
    CHECK(got.size() == pushed);
}

TEST_CASE("splice tunnel closes after tunnel_idle_timeout without a byte") {
    Fixture f(50);
    REQUIRE(::send(f.client.app, "x", 1, 0) == 1);
    CHECK(f.read_n(f.upstream.app, 1) == "x");
    for (int i = 0; i < 300 && f.open_connections() == 1; ++i) {
        usleep(1000);
        f.spin(1);
    }
    CHECK(f.open_connections() == 0);
    CHECK(f.sees_eof(f.client.app));
    CHECK(f.sees_eof(f.upstream.app));
}
