// A [[server]] with protocol = "tcp" at runtime: the listener's connection handler, holding
// what every session of the server shares (its config, its plugin chain, its upstream).
// The stream module (stream_module in tcp_server.cc) builds one per tcp server in each
// worker and hands it the server's listen addresses; each accepted connection becomes a
// TcpSession (tcp_session.h).
#pragma once

#include "core/config/config.h"
#include "core/worker/worker.h"

namespace torii {

struct PhaseChain;
class UpstreamRuntime;

class TcpServer final : public ListenHandler {
public:
    TcpServer(Worker &worker, const ServerConfig &config, const PhaseChain &chain,
              UpstreamRuntime &upstream);

    void on_accept(int fd, const SocketAddress &peer) noexcept override;

    const ServerConfig &config() const { return config_; }
    const PhaseChain &chain() const { return chain_; }
    UpstreamRuntime &upstream() const { return upstream_; }
    // The server's tunnel_idle_timeout, else [main]'s.
    Millis idle_timeout() const { return idle_timeout_; }

private:
    Worker &worker_;
    const ServerConfig &config_;
    const PhaseChain &chain_;
    UpstreamRuntime &upstream_;
    Millis idle_timeout_;
};

}  // namespace torii
