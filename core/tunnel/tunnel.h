// A two-way byte tunnel between a client and an upstream socket: what an HTTP/1.1
// connection becomes after a WebSocket upgrade (101), and what TCP servers and CONNECT will
// use. It is a registered client connection of its own; the request that opened it stays
// with it so that the log phase and the access log record the tunnel's duration and bytes
// when it closes.
//
//   each direction: input ─► the other side's output; reading stops while the other side
//   holds kHigh bytes unsent and resumes once it drained to kLow (backpressure)
//   a FIN on one side is passed on (shutdown of the other's write side) once its output is
//   flushed; the other direction keeps flowing; the tunnel ends when both have ended, on an
//   error, or after tunnel_idle_timeout without a byte either way
//
// A graceful stop does not cut a tunnel: it ends by itself or at shutdown_timeout, or
// earlier when the master retires its generation (max_draining_generations). Then torii
// ends it itself (close_now): a WebSocket tunnel sends each side a close frame 1001
// ("going away") first, where the bytes relayed to that side end between two frames.
#pragma once

#include <event2/event.h>

#include <memory>

#include "core/base/libevent_ptr.h"
#include "core/config/config.h"
#include "core/net/socket.h"
#include "core/proxy/in_flight.h"
#include "core/tunnel/idle_timer.h"
#include "core/server/client_connection.h"
#include "core/tunnel/websocket_frames.h"

namespace torii {

class Worker;
struct Request;

class Tunnel final : public ClientConnection, public SocketHandler {
public:
    // Takes both sockets (bytes already in their inputs are relayed first), the request
    // (logged and released when the tunnel ends) and the target's in-flight count.
    Tunnel(Worker &worker, std::unique_ptr<Socket> client, std::unique_ptr<Socket> upstream,
           Request *req, InFlight in_flight, Millis idle_timeout);
    ~Tunnel() override;

    void start();
    void shutdown_gracefully() override {}
    void close_now() override;

private:
    struct Side {
        std::unique_ptr<Socket> sock;
        uint64_t bytes_in = 0;          // read from this side
        bool eof_passed = false;        // its FIN was passed to the other side
        bool shutdown_pending = false;  // pass the FIN once the other side's output drained
        WebSocketFrameCursor frames;    // WebSocket: frame boundaries of what it sent
    };

    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &, bool) override {}
    static void on_idle(void *ctx);  // IdleTimer's

    Side &side_of(Socket &s) { return &s == client_.sock.get() ? client_ : upstream_; }
    Side &other_of(Socket &s) { return &s == client_.sock.get() ? upstream_ : client_; }
    void do_relay(Side &from, Side &to);
    void do_close(const char *why);

    Worker &worker_;
    Side client_;
    Side upstream_;
    Request *req_;
    InFlight in_flight_;
    IdleTimer idle_;
    char remote_text_[64];    // the request's $remote_addr: the connection that held it is gone
    bool websocket_ = false;  // opened by a WebSocket upgrade: frames can be told apart
    bool closed_ = false;
};

}  // namespace torii
