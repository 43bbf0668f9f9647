#include "modules/stream/tcp_server.h"

#include "core/module/module.h"
#include "core/plugin/plugin_set.h"
#include "modules/stream/tcp_session.h"

namespace torii {

TcpServer::TcpServer(Worker &worker, const ServerConfig &config, const PhaseChain &chain,
                     UpstreamRuntime &upstream)
    : worker_(worker),
      config_(config),
      chain_(chain),
      upstream_(upstream),
      idle_timeout_(config.tunnel_idle_timeout > 0 ? config.tunnel_idle_timeout
                                                   : worker.config().main.tunnel_idle_timeout) {}

void TcpServer::on_accept(int fd, const SocketAddress &peer) noexcept {
    auto *session = new TcpSession(worker_, *this, fd, peer);
    worker_.add_connection(session);
    session->start();
}

// Builds the tcp servers of the config and takes their listen addresses from the worker.
static Result<void> init_stream_worker(Worker &worker) {
    const Config &config = worker.config();
    for (size_t i = 0; i < config.servers.size(); ++i) {
        const ServerConfig &sc = config.servers[i];
        if (sc.protocol != ServerProtocol::tcp) continue;
        UpstreamRuntime *up = worker.upstream(sc.upstream);
        if (!up) return make_error(sc.pos.to_string() + ": no upstream " + sc.upstream);
        // One handler per address (the loader refuses a tcp server sharing one).
        for (const SocketAddress &addr : sc.listen)
            worker.add_listen_handler(
                addr.to_string(),
                std::make_unique<TcpServer>(worker, sc, worker.plugins().server_chain(i), *up));
    }
    return {};
}

const Module stream_module = {
    .name = "stream",
    .init_worker = init_stream_worker,
};

}  // namespace torii
