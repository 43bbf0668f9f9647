#include "core/tunnel/tunnel.h"

#include <algorithm>
#include <cstring>

#include "core/base/log.h"
#include "core/exchange/exchange.h"
#include "core/http/request.h"
#include "core/proxy/forwarded_headers.h"
#include "core/worker/worker.h"

namespace torii {

static constexpr size_t kHigh = 256 * 1024;
static constexpr size_t kLow = 64 * 1024;

Tunnel::Tunnel(Worker &worker, std::unique_ptr<Socket> client, std::unique_ptr<Socket> upstream,
               Request *req, InFlight in_flight, Millis idle_timeout)
    : worker_(worker),
      req_(req),
      in_flight_(std::move(in_flight)),
      idle_(worker.base(), idle_timeout, on_idle, this) {
    client_.sock = std::move(client);
    upstream_.sock = std::move(upstream);
    // The request's views into the connection that accepted it must not outlive it.
    size_t n = std::min(req_->remote_addr.size(), sizeof remote_text_);
    std::memcpy(remote_text_, req_->remote_addr.data(), n);
    req_->remote_addr = {remote_text_, n};
    websocket_ = wants_websocket(req_->input);
}

Tunnel::~Tunnel() {
    // Still open when the worker goes away (shutdown_timeout cut it): logged with what it
    // moved; the request goes back to the worker, which frees it.
    if (req_) {
        req_->bytes_sent = upstream_.bytes_in;
        req_->body_received = client_.bytes_in;
        exchange_finish(*req_);
        exchange_release(worker_, req_);
    }
}

void Tunnel::start() {
    for (Side *s : {&client_, &upstream_}) {
        s->sock->set_handler(this);
        s->sock->set_read_timeout(0);  // the idle timer covers both directions at once
        s->sock->set_write_timeout(0);
        s->sock->resume_read();
    }
    idle_.touch();
    // Bytes that came with the handshake (a client that did not wait, frames right after
    // the 101) go through first.
    do_relay(client_, upstream_);
    if (!closed_) do_relay(upstream_, client_);
}

void Tunnel::on_idle(void *ctx) {
    static_cast<Tunnel *>(ctx)->do_close("idle for tunnel_idle_timeout");
}

void Tunnel::on_socket_read(Socket &s) {
    if (!closed_) do_relay(side_of(s), other_of(s));
}

void Tunnel::do_relay(Side &from, Side &to) {
    Socket &in = *from.sock;
    Socket &out = *to.sock;
    size_t n = evbuffer_get_length(in.input());
    if (n > 0) {
        from.bytes_in += n;
        if (websocket_) from.frames.advance(in.input(), n);
        evbuffer_add_buffer(out.output(), in.input());
        out.flush();
        idle_.touch();
        if (out.pending_output() >= kHigh) {
            in.pause_read();  // until `out` drains (on_socket_drained)
            out.watch_drain(kLow);
        }
    }
    if (in.eof() && !from.eof_passed) {
        from.eof_passed = true;
        if (out.pending_output() == 0) {
            out.shutdown_write();
        } else {
            from.shutdown_pending = true;
            out.watch_drain(0);
        }
    }
    if (client_.eof_passed && upstream_.eof_passed && !client_.shutdown_pending &&
        !upstream_.shutdown_pending)
        do_close(nullptr);
}

void Tunnel::on_socket_drained(Socket &s) {
    if (closed_) return;
    Side &drained = side_of(s);  // `s` wrote out what it held
    Side &from = other_of(s);    // the side that feeds it
    if (from.shutdown_pending && s.pending_output() == 0) {
        from.shutdown_pending = false;
        s.shutdown_write();
    }
    from.sock->resume_read();
    do_relay(from, drained);
}

void Tunnel::on_socket_error(Socket &s, int err) {
    if (closed_) return;
    const char *who = &s == client_.sock.get() ? "client" : "upstream";
    log_info("tunnel: %s connection error: %s", who,
             s.tls_error().empty() ? strerror(err) : s.tls_error().c_str());
    do_close(nullptr);
}

void Tunnel::close_now() {
    if (closed_) return;
    if (websocket_) {
        // 1001: the endpoint is going away (RFC 6455 7.4.1). A side whose write half is
        // already shut, or that is in the middle of a frame, gets only the FIN.
        static constexpr uint16_t kGoingAway = 1001;
        if (!upstream_.eof_passed && upstream_.frames.at_boundary()) {
            std::string frame = websocket_close_frame(kGoingAway, false);
            evbuffer_add(client_.sock->output(), frame.data(), frame.size());
            client_.sock->flush();
        }
        if (!client_.eof_passed && client_.frames.at_boundary()) {
            std::string frame = websocket_close_frame(kGoingAway, true);
            evbuffer_add(upstream_.sock->output(), frame.data(), frame.size());
            upstream_.sock->flush();
        }
    }
    // The sockets close (a FIN, and TLS close_notify) once the tunnel is freed.
    do_close("closed by torii (shutdown_timeout, or its generation retired)");
}

void Tunnel::do_close(const char *why) {
    if (closed_) return;
    closed_ = true;
    if (why) log_info("tunnel to %s closed: %s", std::string(req_->upstream_addr).c_str(), why);
    idle_.stop();
    client_.sock->detach();
    upstream_.sock->detach();
    in_flight_.release();
    // One log line for the whole tunnel: its duration and the bytes each way.
    req_->bytes_sent = upstream_.bytes_in;
    req_->body_received = client_.bytes_in;
    exchange_finish(*req_);
    exchange_release(worker_, req_);
    req_ = nullptr;
    worker_.retire_connection(this);
}

}  // namespace torii
