// A client connection of a real worker (core/worker) fed from a socketpair: the HTTP/1.1
// codec's h2c sniffing, then modules/http2 (nghttp2's server session behind torii's glue in
// http2_connection.cc and http2_stream.cc: header validation into a request head, the
// checks of http2_frame_checks.cc, the glitch budget, flow control, GOAWAY), each request
// routed and answered by the core (a `return` location) and written back to the client.
//
// Input: an option byte, then the bytes the client sends after the HTTP/2 client preface,
// which the target adds (option bit 0 leaves it out: the bytes are then an HTTP/1.1
// client's, for the HTTP/1.1 connection). The loop runs until nothing moves, the client
// closes, and the loop runs again: ASan and LSan see every connection to its end.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "core/config/config.h"
#include "core/net/socket.h"
#include "core/plugin/plugin_set.h"
#include "core/server/http1_connection.h"
#include "core/server/virtual_server.h"
#include "core/worker/worker.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 64 * 1024;
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Small limits so that inputs reach them: header list size, streams, body size.
const char *const kConfig = R"([main]
workers = 1
[[server]]
listen = "127.0.0.1:8080"
client_max_body_size = "4k"
http2_max_concurrent_streams = 8
[[server.location]]
path = "/"
return = { status = 200, body = "hello from torii\n", headers = { X-A = "b" } }
[[server.location]]
path = "/none/"
return = { status = 204 }
)";

const std::shared_ptr<const Config> &config() {
    static auto *c = [] {
        auto loaded = load_config_from_string(kConfig, "fuzz/http2.toml");
        if (!loaded) std::fprintf(stderr, "http2 fuzz config: %s\n", loaded.error().c_str());
        FUZZ_CHECK(loaded.ok());
        return new std::shared_ptr<const Config>(loaded.value());
    }();
    return *c;
}

// Reads what torii wrote; false when there was nothing.
bool drain_client(int fd) {
    char buf[16384];
    bool any = false;
    for (int i = 0; i < 64; ++i) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        any = true;
    }
    return any;
}

// Runs the loop until a few rounds in a row neither wrote to the client nor ran anything.
void spin(event_base *base, int client) {
    int quiet = 0;
    for (int i = 0; i < 400 && quiet < 4; ++i) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        bool wrote = client >= 0 && drain_client(client);
        quiet = wrote ? 0 : quiet + 1;
    }
}

}  // namespace

int torii_fuzz_http2_frames(const uint8_t *data, size_t size) {
    if (size > kMaxInput) return 0;
    fuzz::Input in(data, size);
    uint8_t opt = in.byte();
    std::string wire = (opt & 1) ? std::string() : std::string(kPreface, sizeof kPreface - 1);
    wire += in.rest();

    auto plugins = PluginSet::load(*config());
    FUZZ_CHECK(plugins.ok());
    auto worker =
        std::make_unique<Worker>(config(), std::shared_ptr<PluginSet>(std::move(plugins.value())),
                                 std::vector<ListenSocket>{}, "fuzz/http2.toml");
    FUZZ_CHECK(worker->init().ok());
    auto server = VirtualServer::build(config()->servers[0], 0, *worker);
    FUZZ_CHECK(server.ok());
    ServerGroup group;
    group.servers.push_back(server.value().get());

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    int big = 256 * 1024;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    int client = sv[0];
    auto peer = SocketAddress::parse("127.0.0.1:40000");
    FUZZ_CHECK(peer.ok());
    accept_http1(*worker, std::make_unique<Socket>(worker->base(), sv[1], nullptr), peer.value(),
                 group);

    // The client's bytes, as fast as torii takes them.
    size_t sent = 0;
    for (int round = 0; round < 64 && sent < wire.size(); ++round) {
        ssize_t n = ::send(client, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
        spin(worker->base(), client);
    }
    spin(worker->base(), client);
    // The client is done sending, then gone.
    ::shutdown(client, SHUT_WR);
    spin(worker->base(), client);
    ::close(client);
    spin(worker->base(), -1);
    worker->close_now("fuzz input done");
    spin(worker->base(), -1);
    worker.reset();
    return 0;
}
