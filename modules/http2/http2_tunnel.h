// A WebSocket over HTTP/2 (RFC 8441) once the upstream switched protocols: the bytes of one
// client stream relayed to and from the HTTP/1.1 connection that answered 101, what
// core/tunnel does for a whole HTTP/1.1 connection.
//
//   client DATA ─► upstream socket: consumed (WINDOW_UPDATE) only once written to it, so the
//     stream's flow control is the backpressure; END_STREAM becomes a FIN once flushed
//   upstream socket ─► DATA frames (the stream's data provider): reading stops while the
//     stream holds 256 KiB unsent and resumes when it drained; a FIN becomes END_STREAM
//   a reset of the stream resets the upstream connection; an upstream error resets the
//     stream (CONNECT_ERROR, RFC 9113 8.5); tunnel_idle_timeout without a byte either way
//     resets both
//
// The stream owns the tunnel and logs the exchange once, when the stream closes.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>

#include "core/base/libevent_ptr.h"
#include "core/config/config.h"
#include "core/net/socket.h"
#include "core/proxy/in_flight.h"
#include "core/tunnel/idle_timer.h"

namespace torii {

class Http2Stream;

class Http2Tunnel final : public SocketHandler {
public:
    Http2Tunnel(Http2Stream &stream, std::unique_ptr<Socket> upstream, InFlight in_flight,
                Millis idle_timeout);
    ~Http2Tunnel();

    // Writes what the client sent before the tunnel opened (`early`, drained), passes an end
    // the client already sent, then relays both ways.
    void start(evbuffer *early, bool client_ended);
    // From the stream.
    void on_client_data(const uint8_t *data, size_t len);
    void on_client_end();
    void on_client_drained();
    // Nothing more is relayed; with `reset` the upstream connection is reset, not closed.
    void close(bool reset);
    bool open() const { return !closed_; }

    uint64_t bytes_from_client() const { return from_client_; }
    uint64_t bytes_to_client() const { return to_client_; }

private:
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &, bool) override {}
    static void on_idle(void *ctx);  // IdleTimer's

    void do_relay_to_client();
    void do_credit();  // gives the client window for what reached the upstream

    Http2Stream &stream_;
    std::unique_ptr<Socket> sock_;
    InFlight in_flight_;
    IdleTimer idle_;
    size_t unconsumed_ = 0;  // client bytes in the socket's output, not yet acknowledged
    uint64_t from_client_ = 0;
    uint64_t to_client_ = 0;
    bool shutdown_pending_ = false;  // the client ended: FIN once the output is flushed
    bool upstream_ended_ = false;    // the upstream's FIN became END_STREAM
    bool closed_ = false;
};

}  // namespace torii
