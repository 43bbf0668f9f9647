// The first stage of a connection on a TLS or proxy_protocol listener (plain listeners
// skip it):
//
//   accept ─► PROXY header (proxy_protocol listeners only: the client's address replaces
//             the balancer's; a missing or malformed header closes the connection)
//        ─► plain listener: HTTP/1.1 codec
//        ─► first byte: a TLS record? ── no ─► HTTP/1.1 codec, which answers 400
//                  │ yes                           "plain HTTP sent to an HTTPS port" (nginx)
//                  ▼
//             handshake (certificate by SNI, protocol by ALPN; client_header_timeout)
//                  ▼
//             codec module for the ALPN protocol (HTTP/1.1 without ALPN) takes the socket
//
// The stage is a registered client connection while it runs, so a graceful stop closes a
// handshake in progress and the counts stay right. Both steps together are bounded by
// client_header_timeout.
#pragma once

#include <event2/event.h>

#include <memory>

#include "core/base/libevent_ptr.h"
#include "core/net/proxy_protocol.h"
#include "core/net/socket.h"
#include "core/server/client_connection.h"
#include "modules/tls/tls_context.h"

namespace torii {

class Worker;
class HttpServer;
struct ServerGroup;

class AcceptStage final : public ClientConnection, public SocketHandler, public TlsServerHooks {
public:
    AcceptStage(Worker &worker, int fd, const SocketAddress &peer, const ServerGroup &group);
    ~AcceptStage() override;

    void start();
    void shutdown_gracefully() override;
    void close_now() override { do_close(nullptr); }

private:
    // SocketHandler
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &s, bool reading) override;
    void on_socket_connected(Socket &s) override;
    // TlsServerHooks
    SSL_CTX *context_for_name(const char *server_name) override;
    bool choose_alpn(const unsigned char *offer, unsigned offer_len, const unsigned char **out,
                     unsigned char *out_len) override;

    static void on_timer_cb(evutil_socket_t, short, void *ctx);
    bool do_read_proxy_header();
    void do_hand_over(std::string_view alpn, bool plain_on_tls_port);
    void do_close(const char *why);

    Worker &worker_;
    const ServerGroup &group_;
    const HttpServer *server_;  // the default, then the one SNI named
    std::unique_ptr<Socket> sock_;
    SocketAddress peer_;
    EventPtr timer_;
    std::unique_ptr<ProxyHeaderReader> proxy_header_;  // until the PROXY header is read
    bool done_ = false;
    bool draining_ = false;  // the worker stops: the handshake has a short grace to finish
};

}  // namespace torii
