#include "core/proxy/http1_upstream_stream.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/base/arena.h"
#include "core/base/format.h"
#include "core/http/http1_writer.h"
#include "core/proxy/upstream.h"
#include "core/proxy/upstream_connection.h"

namespace torii {

// Request body bytes queued toward the upstream before the session stops sending more.
static constexpr size_t kOutputHigh = 256 * 1024;
static constexpr size_t kOutputLow = 64 * 1024;
// Informational answers taken before the final one. Each read restarts read_timeout, so
// without a bound an upstream sending 1xx after 1xx holds the client forever (and each 103
// goes on to it).
static constexpr int kMaxInterim = 16;

Http1UpstreamStream::Http1UpstreamStream(UpstreamRuntime &upstream, int target,
                                         UpstreamStreamHandler &handler, ResponseHead &head,
                                         evbuffer *body, Arena &arena, bool head_request)
    : upstream_(upstream),
      target_(target),
      handler_(handler),
      head_(head),
      body_(body),
      arena_(arena),
      head_request_(head_request) {}

Http1UpstreamStream::~Http1UpstreamStream() {
    UpstreamConnection::retire(std::move(conn_));
}

void Http1UpstreamStream::start() {
    head_.clear();
    parser_.begin_response(&head_, &arena_, head_request_);
    in_flight_ = upstream_.count_in_flight(target_);
    conn_ = upstream_.take_idle(target_, proxy_header_);
    if (conn_) {
        reused_ = true;
        conn_->socket().set_handler(this);
        state_ = State::exchanging;
        handler_.on_stream_ready(*this);
        return;
    }
    int err = 0;
    Socket *s = upstream_.open_connection(target_, this, &err);
    if (!s) {
        do_fail(UpstreamError::connect, strerror(err));
        return;
    }
    conn_ = std::make_unique<UpstreamConnection>(upstream_, target_, s);
    if (!proxy_header_.empty()) {
        s->set_preamble(std::string(proxy_header_));
        conn_->set_pool_key(std::string(proxy_header_));
    }
    s->set_write_timeout(upstream_.config().connect_timeout);  // bounds connect and TLS
    s->set_read_in_place(true);  // responses parsed where a read left them (do_read)
}

void Http1UpstreamStream::on_socket_connected(Socket &) {
    if (state_ != State::connecting) return;
    state_ = State::exchanging;
    handler_.on_stream_ready(*this);
}

void Http1UpstreamStream::send_head(const UpstreamRequest &req) {
    Socket &s = conn_->socket();
    // No read timeout while a body goes out (a long upload is not a slow upstream); a
    // request without body owes its answer within read_timeout from now. A pooled
    // connection keeps its armed timer when the values agree.
    read_timeout_ms_ =
        req.read_timeout_ms > 0 ? req.read_timeout_ms : upstream_.config().read_timeout;
    s.set_read_timeout(req.has_body() ? 0 : read_timeout_ms_);
    s.set_write_timeout(upstream_.config().send_timeout);
    HeaderList &h = *req.headers;
    size_t mark = h.size();
    if (req.content_length >= 0) {
        char *num = arena_.alloc(24);
        size_t n = format_u64(num, static_cast<uint64_t>(req.content_length));
        h.add("Content-Length", std::string_view(num, n), HeaderId::content_length);
    } else if (req.chunked) {
        h.add("Transfer-Encoding", "chunked", HeaderId::transfer_encoding);
        chunked_ = true;
    }
    s.write_head(request_head_size(req.method, req.target, h),
                 [&](char *p) { return put_request_head(p, req.method, req.target, h); });
    h.truncate(mark);  // the next attempt frames again
}

void Http1UpstreamStream::send_body(evbuffer *data) {
    if (chunked_)
        write_chunk(conn_->socket().output(), data);
    else
        conn_->socket().append(data);
}

void Http1UpstreamStream::send_end(const HeaderList *trailers) {
    Socket &s = conn_->socket();
    if (chunked_) write_last_chunk(s.output(), trailers);
    request_sent_ = true;
    s.set_read_timeout(read_timeout_ms_);  // the answer is owed from now
    s.flush();
}

void Http1UpstreamStream::flush() {
    Socket &s = conn_->socket();
    s.flush();
    if (!request_sent_ && s.pending_output() >= kOutputHigh) s.watch_drain(kOutputLow);
}

bool Http1UpstreamStream::output_full() const {
    return conn_ && conn_->socket().pending_output() >= kOutputHigh;
}

void Http1UpstreamStream::on_socket_drained(Socket &) {
    if (state_ == State::exchanging && !request_sent_) handler_.on_stream_drained(*this);
}

void Http1UpstreamStream::on_socket_read(Socket &) {
    if (state_ == State::exchanging) do_read();
}

void Http1UpstreamStream::do_read() {
    Socket &s = conn_->socket();
    std::string_view fresh = s.take_unread();  // before input(), which would move it there
    for (;;) {
        ParseEvent ev = parser_.feed(s.input(), body_, SIZE_MAX, fresh);
        fresh = {};
        switch (ev) {
            case ParseEvent::head_complete:
                if (head_.status == 101) continue;  // the upgrade event follows
                if (head_.status < 200) {
                    if (++interim_count_ > kMaxInterim) {
                        do_fail(UpstreamError::invalid, "too many informational responses");
                        return;
                    }
                    interim_ = true;
                    // 100 Continue was for torii; others (103 Early Hints) go on.
                    if (head_.status != 100) {
                        handler_.on_stream_interim(*this, head_);
                        if (state_ != State::exchanging) return;
                    }
                    continue;
                }
                head_received_ = true;
                handler_.on_stream_head(*this, head_);
                if (state_ != State::exchanging) return;
                continue;
            case ParseEvent::message_complete:
                if (interim_) {
                    interim_ = false;
                    head_.clear();
                    parser_.begin_response(&head_, &arena_, head_request_);
                    continue;
                }
                do_finish();
                return;
            case ParseEvent::upgrade:
                if (head_.status != 101) {
                    do_fail(UpstreamError::upgrade, "upstream switched protocols");
                    return;
                }
                head_received_ = true;
                handler_.on_stream_upgrade(*this, head_);
                if (state_ == State::exchanging) abort();  // nobody took the tunnel
                return;
            case ParseEvent::error:
                do_fail(UpstreamError::invalid, parser_.error_reason());
                return;
            case ParseEvent::body_full:
            case ParseEvent::need_more:
                break;
        }
        break;
    }
    if (evbuffer_get_length(body_) > 0) {
        handler_.on_stream_body(*this, body_);
        if (state_ != State::exchanging) return;
    }
    if (s.eof()) {
        if (parser_.finish() == ParseEvent::message_complete) {
            do_finish();
            return;
        }
        do_fail(UpstreamError::closed,
                head_received_ ? "upstream closed the connection in the middle of the response"
                               : "upstream closed the connection before responding");
    }
}

void Http1UpstreamStream::pause_receiving() {
    receiving_paused_ = true;
    if (conn_) conn_->socket().pause_read();
}

void Http1UpstreamStream::resume_receiving() {
    receiving_paused_ = false;
    if (state_ != State::exchanging || !conn_) return;
    conn_->socket().resume_read();
    if (evbuffer_get_length(conn_->socket().input()) > 0) do_read();
}

void Http1UpstreamStream::do_finish() {
    if (evbuffer_get_length(body_) > 0) {
        handler_.on_stream_body(*this, body_);
        if (state_ != State::exchanging) return;
    }
    Socket &s = conn_->socket();
    bool reusable = parser_.keep_alive() && request_sent_ && s.pending_output() == 0 &&
                    evbuffer_get_length(s.input()) == 0 && !s.eof();
    state_ = State::done;
    in_flight_.release();
    if (reusable) {
        conn_->requests++;
        upstream_.release(std::move(conn_));
    } else {
        UpstreamConnection::retire(std::move(conn_));
    }
    handler_.on_stream_end(*this, &head_.trailers);
}

void Http1UpstreamStream::do_fail(UpstreamError err, const char *why) {
    state_ = State::done;
    in_flight_.release();
    // `why` may be the socket's own text: the handler reads it before the socket goes.
    handler_.on_stream_error(*this, err, why);
    UpstreamConnection::retire(std::move(conn_));
}

void Http1UpstreamStream::abort() {
    if (state_ == State::done) return;
    state_ = State::done;
    in_flight_.release();
    UpstreamConnection::retire(std::move(conn_));
}

std::unique_ptr<Socket> Http1UpstreamStream::take_tunnel(InFlight *in_flight) {
    state_ = State::done;
    *in_flight = std::move(in_flight_);
    std::unique_ptr<Socket> sock = conn_->release_socket();
    conn_.reset();
    sock->set_read_in_place(false);  // the tunnel reads through input()
    return sock;
}

void Http1UpstreamStream::on_socket_error(Socket &s, int err) {
    if (state_ == State::done) return;
    // A TLS failure says why (certificate verify failed (hostname mismatch), ...).
    const char *why = s.tls_error().empty() ? strerror(err) : s.tls_error().c_str();
    UpstreamError kind = state_ == State::connecting         ? UpstreamError::connect
                         : err == ECONNRESET || err == EPIPE ? UpstreamError::reset
                                                             : UpstreamError::closed;
    do_fail(kind, why);
}

void Http1UpstreamStream::on_socket_timeout(Socket &, bool reading) {
    if (state_ == State::done) return;
    if (state_ == State::connecting)
        do_fail(UpstreamError::connect_timeout, "timed out while connecting");
    else if (reading)
        do_fail(UpstreamError::read_timeout, head_received_
                                                 ? "timed out in the middle of the response"
                                                 : "timed out waiting for the response");
    else
        do_fail(UpstreamError::send_timeout, "timed out sending the request");
}

}  // namespace torii
