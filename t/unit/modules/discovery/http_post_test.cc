#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "modules/discovery/http_post.h"
#include "t/unit/modules/discovery/etcd_test_support.h"

using namespace torii;
using namespace torii::etcd_test;

namespace {

struct Recorder final : HttpPostHandler {
    void on_post_head(int s) override {
        status = s;
        if (stop_on_head) stop_on_head->stop();
    }
    void on_post_body(evbuffer *body) override { take_lines(body); }
    void on_post_end(evbuffer *body) override {
        take_lines(body);
        rest.resize(evbuffer_get_length(body));
        evbuffer_remove(body, rest.data(), rest.size());
        ended = true;
    }
    void on_post_error(const std::string &why) override { error = why; }
    void take_lines(evbuffer *body) {
        size_t n;
        while (char *line = evbuffer_readln(body, &n, EVBUFFER_EOL_LF)) {
            lines.emplace_back(line, n);
            free(line);
        }
    }
    bool over() const { return ended || !error.empty(); }

    int status = 0;
    std::vector<std::string> lines;
    std::string rest;
    bool ended = false;
    std::string error;
    HttpPost *stop_on_head = nullptr;
};

DiscoveryEndpoint endpoint(uint16_t port) {
    Result<DiscoveryEndpoint> e =
        DiscoveryEndpoint::parse("http://127.0.0.1:" + std::to_string(port));
    REQUIRE(e.ok());
    return *e;
}

struct Client {
    EventBasePtr base{event_base_new()};
    Recorder rec;
    HttpPost post{rec};

    void start(uint16_t port, const HttpPostLimits &limits = {}) {
        REQUIRE(post.start(base.get(), endpoint(port), "/v3/watch", R"({"k":1})", limits).ok());
    }
    bool wait(int ms = 3'000) {
        return run_until(
            base.get(), [this] { return rec.over(); }, ms);
    }
};

}  // namespace

TEST_CASE("etcd http client: a chunked stream, messages split across chunks") {
    ScriptedServer server({{{kChunkedHead, chunk("{\"a\":1}\n{\"b\""), chunk(":2}\n"),
                             chunk("{\"c\":3}\n"), "0\r\n\r\n"}}});
    Client c;
    c.start(server.port);
    REQUIRE(c.wait());
    CHECK(c.rec.error == "");
    CHECK(c.rec.ended);
    CHECK(c.rec.status == 200);
    CHECK(c.rec.lines == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"});
    CHECK(c.rec.rest.empty());
    CHECK(!c.post.active());
    std::vector<std::string> requests = server.requests();
    REQUIRE(requests.size() == 1);
    std::string port = std::to_string(server.port);
    CHECK(requests[0] == "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1:" + port +
                             "\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                             "{\"k\":1}");
}

TEST_CASE("etcd http client: a Content-Length response, and an error status") {
    ScriptedServer server({{{json_response(200, "{\"x\":1}")}},
                           {{json_response(404, "{\"error\":\"nope\"}")}, true}});
    Client c;
    c.start(server.port);
    REQUIRE(c.wait());
    CHECK(c.rec.ended);
    CHECK(c.rec.rest == "{\"x\":1}");  // no newline: left to the handler at the end
    Client d;
    d.start(server.port);
    REQUIRE(d.wait());
    CHECK(d.rec.ended);  // held open, yet over: the length said so
    CHECK(d.rec.status == 404);
    CHECK(d.rec.rest == "{\"error\":\"nope\"}");
}

TEST_CASE("etcd http client: what is not used of the body is bounded") {
    ScriptedServer server(
        {{{kChunkedHead, chunk(std::string(50, 'x')), chunk(std::string(50, 'y'))}, true}});
    Client c;
    HttpPostLimits limits;
    limits.max_buffered = 64;
    c.start(server.port, limits);
    REQUIRE(c.wait());
    CHECK(c.rec.error == "a message over 64 bytes");
}

TEST_CASE("etcd http client: closed connections, timeouts, refusals, garbage") {
    SUBCASE("closed in the middle of a chunked body") {
        ScriptedServer server({{{kChunkedHead, chunk("{}\n")}}});
        Client c;
        c.start(server.port);
        REQUIRE(c.wait());
        CHECK(c.rec.lines == std::vector<std::string>{"{}"});
        CHECK(c.rec.error == "the server closed the connection in the middle of the response");
    }
    SUBCASE("closed before responding") {
        ScriptedServer server({});
        Client c;
        c.start(server.port);
        REQUIRE(c.wait());
        CHECK(c.rec.error == "the server closed the connection before responding");
    }
    SUBCASE("no head in time") {
        ScriptedServer server({{{}, true}});
        Client c;
        HttpPostLimits limits;
        limits.head_ms = 200;
        c.start(server.port, limits);
        REQUIRE(c.wait());
        CHECK(c.rec.error == "timeout waiting for the response");
    }
    SUBCASE("a body that goes silent") {
        ScriptedServer server({{{kChunkedHead, chunk("{}\n")}, true}});
        Client c;
        HttpPostLimits limits;
        limits.body_ms = 300;
        limits.tcp_keepalive = true;
        c.start(server.port, limits);
        REQUIRE(c.wait());
        CHECK(c.rec.lines == std::vector<std::string>{"{}"});
        CHECK(c.rec.error == "nothing received for 300 ms");
    }
    SUBCASE("refused") {
        // Bound, not listening: a connect gets a reset.
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
        socklen_t len = sizeof sin;
        getsockname(fd, reinterpret_cast<sockaddr *>(&sin), &len);
        Client c;
        c.start(ntohs(sin.sin_port));
        REQUIRE(c.wait());
        CHECK(c.rec.error == "cannot connect: Connection refused");
        ::close(fd);
    }
    SUBCASE("not HTTP") {
        ScriptedServer server({{{"SSH-2.0-OpenSSH\r\n"}, true}});
        Client c;
        c.start(server.port);
        REQUIRE(c.wait());
        CHECK(c.rec.error.starts_with("bad response: "));
    }
    SUBCASE("a head without end") {
        std::string head = "HTTP/1.1 200 OK\r\n";
        for (int i = 0; i < 200; ++i)
            head += "X-Filler-" + std::to_string(i) + ": " + std::string(400, 'f') + "\r\n";
        ScriptedServer server({{{head}, true}});
        Client c;
        c.start(server.port);
        REQUIRE(c.wait());
        CHECK(c.rec.error == "bad response: response head over 64 KiB");  // the parser's bound
    }
}

TEST_CASE("etcd http client: stop() inside a callback silences the call") {
    ScriptedServer server({{{kChunkedHead, chunk("{}\n"), "0\r\n\r\n"}}});
    Client c;
    c.rec.stop_on_head = &c.post;
    c.start(server.port);
    CHECK(run_until(
        c.base.get(), [&] { return c.rec.status != 0; }, 3'000));
    run_for(c.base.get(), 200);  // the rest of the response arrives: nobody hears it
    CHECK(c.rec.status == 200);
    CHECK(c.rec.lines.empty());
    CHECK(!c.rec.over());
    CHECK(!c.post.active());
}
