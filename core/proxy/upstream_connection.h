// One TCP connection to an upstream target. While a request uses it, the proxy session is
// the socket's handler; while it waits in the keep-alive pool, the connection handles its
// own socket: any byte or EOF from an idle upstream means it is closing, so it leaves the
// pool (nginx's ngx_http_upstream_keepalive_close_handler).
#pragma once

#include <memory>
#include <string>

#include "core/base/deletable.h"
#include "core/net/socket.h"

namespace torii {

class UpstreamRuntime;

class UpstreamConnection final : public SocketHandler, public Deletable {
public:
    UpstreamConnection(UpstreamRuntime &upstream, int target, Socket *sock);
    ~UpstreamConnection() override;

    Socket &socket() { return *sock_; }
    int target() const { return target_; }
    uint32_t requests = 0;  // exchanges completed on this connection
    // Who may reuse it from the pool: empty for anyone, else the PROXY header it sent (the
    // target took that client's address for the whole connection).
    const std::string &pool_key() const { return pool_key_; }
    void set_pool_key(std::string key) { pool_key_ = std::move(key); }

    // Entering the pool: take the socket's events back and arm the idle timeout.
    void park(int64_t idle_timeout_ms);
    // Leaving use for good: silences the socket at once (no event reaches the session or
    // the pool again) and frees the connection after the current callback.
    static void retire(std::unique_ptr<UpstreamConnection> conn);
    // The socket leaves the connection (for a tunnel); the connection is then empty.
    std::unique_ptr<Socket> release_socket() { return std::move(sock_); }

private:
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &s, bool reading) override;

    UpstreamRuntime &upstream_;
    int target_;
    std::unique_ptr<Socket> sock_;
    std::string pool_key_;
};

}  // namespace torii
