// One client connection of a tcp server, from accept until its tunnel starts:
//
//   connect phase (plugins: allow/deny, connection rate) ─► TLS handshake (when the server
//   has `tls`) ─► balancer pick ─► connect to the target (TLS when the upstream has it),
//   onto the next target on failure while `retries` allow ─► tunnel
//
// The tunnel is a SpliceTunnel when both sides are plain TCP (bytes stay in the kernel),
// else the evbuffer Tunnel (core/tunnel). The session is a Request without HTTP
// (Request::tcp_server): plugins see it through the same host functions, the balancer picks
// with it, and the tunnel runs the log phase and writes the access-log line at its end.
// No byte is read from the client before the tunnel starts (but for the TLS handshake).
//
// Statuses for the log and stats, as nginx's stream module: 200 a session that ran, 400 a
// failed TLS handshake, 403/429/... what a plugin refused with, 500 a plugin error, 502 no
// target could be reached, 503 none was healthy.
#pragma once

#include <memory>

#include "core/base/libevent_ptr.h"
#include "core/http/request.h"
#include "core/net/socket.h"
#include "core/proxy/in_flight.h"
#include "core/proxy/tried_targets.h"
#include "core/net/proxy_protocol.h"
#include "core/server/client_connection.h"

namespace torii {

class Worker;
class TcpServer;

class TcpSession final : public ClientConnection, public SocketHandler, public PhaseOwner {
public:
    TcpSession(Worker &worker, const TcpServer &server, int fd, const SocketAddress &peer);
    ~TcpSession() override;

    void start();
    // A session that has not reached its tunnel yet finishes getting there: it is as short
    // as a connect (bounded by connect_timeout and retries) and then drains like any tunnel.
    void shutdown_gracefully() override {}

private:
    enum class State {
        proxy_header,   // proxy_protocol = true: the balancer's PROXY header is read first
        connect_phase,  // plugins' connect hooks run (or one paused)
        handshake,      // TLS termination toward the client
        connecting,     // a target is being connected (TCP, then TLS when configured)
        done,           // handed to a tunnel, or closed
    };

    // SocketHandler, for both the client and the upstream socket.
    void on_socket_read(Socket &s) override;  // the PROXY header only
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &s, bool reading) override;
    void on_socket_connected(Socket &s) override;
    // PhaseOwner
    void on_phase_resumed(Request &req, int phase, int action) noexcept override;

    void do_connect_phase();
    void do_after_connect_phase(int action);
    void do_handshake();
    void do_attempt();
    void do_report(int outcome);
    void do_attempt_failed(int outcome, const char *why);
    void do_drop_upstream();
    void do_tunnel();
    void do_close(int status, const char *why);

    Worker &worker_;
    const TcpServer &server_;
    State state_ = State::connect_phase;
    std::unique_ptr<Socket> client_;
    std::unique_ptr<Socket> upstream_;
    Request *req_;
    TriedTargets tried_;
    int target_ = -1;
    int attempts_ = 0;
    bool vetoed_ = false;  // a plugin's peer_admit kept a target out
    uint64_t attempt_start_us_ = 0;
    InFlight in_flight_;
    std::unique_ptr<ProxyHeaderReader> proxy_header_;
    char remote_text_[64];  // $remote_addr
};

}  // namespace torii
