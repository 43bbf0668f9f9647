#include "modules/http2/http2_tunnel.h"

#include <nghttp2/nghttp2.h>

#include <cstring>

#include "core/base/log.h"
#include "core/worker/worker.h"
#include "modules/http2/http2_stream.h"

namespace torii {

Http2Tunnel::Http2Tunnel(Http2Stream &stream, std::unique_ptr<Socket> upstream, InFlight in_flight,
                         Millis idle_timeout)
    : stream_(stream),
      sock_(std::move(upstream)),
      in_flight_(std::move(in_flight)),
      idle_(Worker::current().base(), idle_timeout, on_idle, this) {}

Http2Tunnel::~Http2Tunnel() {
    close(false);
}

void Http2Tunnel::start(evbuffer *early, bool client_ended) {
    sock_->set_handler(this);
    sock_->set_read_timeout(0);  // the idle timer covers both directions at once
    sock_->set_write_timeout(0);
    sock_->resume_read();
    idle_.touch();
    size_t n = evbuffer_get_length(early);
    if (n) {
        from_client_ += n;
        unconsumed_ += n;
        evbuffer_add_buffer(sock_->output(), early);
        sock_->flush();
        do_credit();
    }
    if (client_ended) on_client_end();
    do_relay_to_client();  // frames the upstream sent right after its 101
}

void Http2Tunnel::on_client_data(const uint8_t *data, size_t len) {
    if (closed_) return;
    from_client_ += len;
    unconsumed_ += len;
    evbuffer_add(sock_->output(), data, len);
    sock_->flush();
    do_credit();
    idle_.touch();
}

void Http2Tunnel::do_credit() {
    size_t pending = sock_->pending_output();
    if (unconsumed_ > pending) {
        stream_.tunnel_consumed(unconsumed_ - pending);
        unconsumed_ = pending;
    }
    if (pending > 0) sock_->watch_drain(0);  // the rest is acknowledged once written
}

void Http2Tunnel::on_client_end() {
    if (closed_) return;
    if (sock_->pending_output() == 0)
        sock_->shutdown_write();
    else
        shutdown_pending_ = true;
}

void Http2Tunnel::on_socket_drained(Socket &) {
    if (closed_) return;
    do_credit();
    if (shutdown_pending_ && sock_->pending_output() == 0) {
        shutdown_pending_ = false;
        sock_->shutdown_write();
    }
}

void Http2Tunnel::on_socket_read(Socket &) {
    do_relay_to_client();
}

void Http2Tunnel::do_relay_to_client() {
    if (closed_) return;
    evbuffer *in = sock_->input();
    size_t n = evbuffer_get_length(in);
    if (n > 0) {
        if (stream_.tunnel_client_full()) {
            sock_->pause_read();  // until the stream drained (on_client_drained)
            stream_.tunnel_watch_client_drain();
            return;
        }
        to_client_ += n;
        stream_.tunnel_to_client(in);
        idle_.touch();
    }
    if (sock_->eof() && !upstream_ended_) {
        upstream_ended_ = true;
        stream_.tunnel_end_to_client();  // END_STREAM after what precedes it
    }
}

void Http2Tunnel::on_client_drained() {
    if (closed_) return;
    sock_->resume_read();
    do_relay_to_client();
}

void Http2Tunnel::on_socket_error(Socket &s, int err) {
    if (closed_) return;
    log_info("HTTP/2 tunnel: upstream connection error: %s",
             s.tls_error().empty() ? strerror(err) : s.tls_error().c_str());
    close(false);
    stream_.tunnel_reset(NGHTTP2_CONNECT_ERROR);
}

void Http2Tunnel::on_idle(void *ctx) {
    auto *t = static_cast<Http2Tunnel *>(ctx);
    if (t->closed_) return;
    log_info("HTTP/2 tunnel closed: idle for tunnel_idle_timeout");
    t->close(true);
    t->stream_.tunnel_reset(NGHTTP2_CANCEL);
}

void Http2Tunnel::close(bool reset) {
    if (closed_) return;
    closed_ = true;
    idle_.stop();
    if (reset) sock_->reset_on_close();
    sock_->detach();  // closed with the stream, after the current callback
    in_flight_.release();
}

}  // namespace torii
