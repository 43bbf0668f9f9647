#include "core/proxy/proxy_session.h"

#include <cstdio>
#include <cstring>

#include "core/base/format.h"
#include "core/base/log.h"
#include "core/http/http1_writer.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "core/proxy/forwarded_headers.h"
#include "core/proxy/upstream.h"
#include "core/proxy/upstream_connection.h"
#include "core/worker/worker.h"

namespace torii {

// Request body bytes queued toward the upstream before we stop taking more from the client.
static constexpr size_t kUpstreamOutputHigh = 256 * 1024;
static constexpr size_t kUpstreamOutputLow = 64 * 1024;

ProxySession::ProxySession(Request &req, UpstreamRuntime &upstream)
    : req_(req),
      upstream_(upstream),
      upstream_head_(req.upstream_response),
      request_headers_(req.upstream_request_headers),
      response_body_(req.upstream_body.get()) {}

ProxySession::~ProxySession() {
    if (conn_) upstream_.target(conn_->target()).in_flight--;
}

bool ProxySession::idempotent() const {
    std::string_view m = req_.input.method;
    return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" ||
           m == "TRACE";
}

void ProxySession::start() noexcept {
    // Let the client send its body while plugins run and we connect.
    if (req_.input.expect_continue && req_.input.has_body()) req_.downstream->send_continue(req_);
    do_attempt();
}

void ProxySession::on_phase_resumed(Request &, int, int action) noexcept {
    if (action != TORII_CONTINUE) state_ = State::done;
    if (!resumed_goes_on(req_, action)) return;
    do_prepare();
    do_connect();
}

void ProxySession::do_prepare() {
    build_upstream_request_headers(req_, request_headers_);
    const RequestHead &in = req_.input;
    if (in.content_length >= 0) {
        char *num = req_.arena.alloc(24);
        size_t n = format_u64(num, static_cast<uint64_t>(in.content_length));
        request_headers_.add("Content-Length", std::string_view(num, n), HeaderId::content_length);
    } else if (in.chunked) {
        request_headers_.add("Transfer-Encoding", "chunked", HeaderId::transfer_encoding);
        chunked_up_ = true;
    }
    // The upstream sees the working path (after strip_prefix or rewrites) and the query.
    if (req_.path.data() == in.target.data() &&
        req_.path.size() + (req_.query.empty() ? 0 : req_.query.size() + 1) == in.target.size()) {
        target_uri_ = in.target;
    } else {
        size_t n = req_.path.size() + (req_.query.empty() ? 0 : 1 + req_.query.size());
        char *p = req_.arena.alloc(n);
        std::memcpy(p, req_.path.data(), req_.path.size());
        if (!req_.query.empty()) {
            p[req_.path.size()] = '?';
            std::memcpy(p + req_.path.size() + 1, req_.query.data(), req_.query.size());
        }
        target_uri_ = {p, n};
    }
    prepared_ = true;
}

void ProxySession::do_attempt() {
    state_ = State::picking;
    int t;
    for (;;) {
        t = upstream_.pick(req_, tried_);
        if (t < 0 && attempts_ > 0) {  // out of targets to retry on: report the last failure
            do_fail(last_status_);
            return;
        }
        if (t < 0) {
            log_warn("upstream \"%s\": no healthy target", upstream_.config().name.c_str());
            do_fail(t == UpstreamRuntime::kNoneHealthy || vetoed_ ? 503 : 502);
            return;
        }
        tried_.add(static_cast<size_t>(t));
        if (do_admit(t)) break;
        vetoed_ = true;  // a plugin (a per-target breaker) keeps this target out: next one
    }
    target_ = t;
    ++attempts_;
    attempt_start_us_ = Worker::now_us();
    TargetState &target = upstream_.target(t);
    req_.upstream_addr = target.config->address;
    request_sent_ = false;  // each attempt sends the whole request and re-arms read_timeout
    if (prepared_) {
        do_connect();
        return;
    }
    // The upstream phase runs once, after the first pick ($upstream_addr is known), so a
    // retry does not apply its changes twice.
    PhaseResult r = run_phase(req_, TORII_PHASE_UPSTREAM, this);
    if (r == PhaseResult::respond || r == PhaseResult::error) state_ = State::done;
    if (!phase_goes_on(req_, r)) return;
    do_prepare();
    do_connect();
}

// Asks every plugin of the location with a peer_admit hook whether this target may be tried.
bool ProxySession::do_admit(int t) {
    if (!req_.chain || req_.chain->admitters.empty()) return true;
    const std::string &address = upstream_.target(t).config->address;
    const std::string &name = upstream_.config().name;
    for (PluginInstance *m : req_.chain->admitters) {
        if (m->plugin->desc().peer_admit(m->instance, reinterpret_cast<torii_request_t *>(&req_),
                                         {name.data(), name.size()},
                                         {address.data(), address.size()}) != 0) {
            log_info("upstream \"%s\": plugin \"%s\" keeps target %s out", name.c_str(),
                     m->plugin->name().c_str(), address.c_str());
            return false;
        }
    }
    return true;
}

// Tells the location's plugins how an attempt on the current target went.
void ProxySession::do_report(torii_peer_outcome_t outcome, int status) {
    if (!req_.chain || req_.chain->reporters.empty() || target_ < 0) return;
    const std::string &address = upstream_.target(target_).config->address;
    const std::string &name = upstream_.config().name;
    for (PluginInstance *m : req_.chain->reporters)
        m->plugin->desc().peer_result(m->instance, reinterpret_cast<torii_request_t *>(&req_),
                                      {name.data(), name.size()}, {address.data(), address.size()},
                                      outcome, status);
}

void ProxySession::do_connect() {
    TargetState &target = upstream_.target(target_);
    parser_.reset();
    upstream_head_.clear();
    parser_.begin_response(&upstream_head_, &req_.arena, req_.input.method == "HEAD");

    conn_ = upstream_.take_idle(target_);
    target.in_flight++;
    if (conn_) {
        reused_ = true;
        conn_->socket().set_handler(this);
        state_ = State::exchanging;
        do_send_request();
        return;
    }
    reused_ = false;
    int err = 0;
    Socket *s = upstream_.open_connection(target_, this, &err);
    if (!s) {
        target.in_flight--;
        do_attempt_failed(502, true, strerror(err));
        return;
    }
    conn_ = std::make_unique<UpstreamConnection>(upstream_, target_, s);
    s->set_write_timeout(upstream_.config().connect_timeout);
    state_ = State::connecting;
}

// Socket events reach the session only while it holds the connection (a dropped one is
// detached at once), and the checks below keep it so should an event slip through.
void ProxySession::on_socket_connected(Socket &) {
    if (state_ != State::connecting || !conn_) return;
    state_ = State::exchanging;
    do_send_request();
}

void ProxySession::do_send_request() {
    Socket &s = conn_->socket();
    // No read timeout while the request goes out (a long upload is not a slow upstream)
    // unless the request is already complete, in which case read_timeout starts now and
    // a pooled connection keeps its armed timer when the values agree.
    // A pooled connection's idle timeout usually equals read_timeout: then nothing changes.
    if (req_.input.has_body())
        s.set_read_timeout(0);
    else
        s.set_read_timeout(upstream_.config().read_timeout);
    s.set_write_timeout(upstream_.config().send_timeout);
    write_request_head(s.output(), req_.input.method, target_uri_, request_headers_);
    do_send_body();
}

void ProxySession::do_send_body() {
    Socket &s = conn_->socket();
    evbuffer *body = req_.body.get();
    if (evbuffer_get_length(body) > 0 && s.pending_output() < kUpstreamOutputHigh) {
        if (chunked_up_)
            write_chunk(s.output(), body);
        else
            evbuffer_add_buffer(s.output(), body);
        body_forwarded_ = true;
        req_.downstream->resume_body(req_);
    }
    if (req_.body_done && evbuffer_get_length(body) == 0 && !request_sent_) {
        if (chunked_up_) write_last_chunk(s.output(), &req_.input.trailers);
        request_sent_ = true;
        // From here on the upstream owes us a response within read_timeout.
        s.set_read_timeout(upstream_.config().read_timeout);
    }
    s.flush();
    if (!request_sent_ && s.pending_output() >= kUpstreamOutputHigh)
        s.watch_drain(kUpstreamOutputLow);
}

void ProxySession::on_request_body(Request &) noexcept {
    if (state_ == State::exchanging && conn_ && !request_sent_) do_send_body();
}

void ProxySession::on_socket_drained(Socket &) {
    if (state_ == State::exchanging && conn_ && !request_sent_) do_send_body();
}

void ProxySession::on_socket_read(Socket &) {
    if (state_ == State::exchanging && conn_) do_read_response();
}

void ProxySession::do_read_response() {
    Socket &s = conn_->socket();
    for (;;) {
        ParseEvent ev = parser_.feed(s.input(), response_body_);
        switch (ev) {
            case ParseEvent::head_complete: {
                if (upstream_head_.status < 200) {  // 100, 102, 103: interim, dropped
                    interim_ = true;
                    continue;
                }
                head_received_ = true;
                req_.upstream_latency_us = Worker::now_us() - attempt_start_us_;
                upstream_.report_success(req_, target_, req_.upstream_latency_us);
                do_report(TORII_PEER_OK, upstream_head_.status);
                ResponseHead &r = req_.response;
                r.status = upstream_head_.status;
                r.reason = upstream_head_.reason;
                r.content_length = upstream_head_.content_length;
                r.no_body = upstream_head_.no_body;
                copy_response_headers(upstream_head_.headers, r.headers);
                if (!start_response(req_)) {
                    // A response-phase plugin replaced the upstream's answer.
                    do_drop_connection();
                    state_ = State::done;
                    send_plugin_response(req_);
                    return;
                }
                continue;
            }
            case ParseEvent::message_complete:
                if (interim_) {
                    interim_ = false;
                    upstream_head_.clear();
                    parser_.begin_response(&upstream_head_, &req_.arena,
                                           req_.input.method == "HEAD");
                    continue;
                }
                do_finish_response();
                return;
            case ParseEvent::upgrade:
                // 101 Switching Protocols needs the tunnel of the WebSocket module.
                do_attempt_failed(502, false, "upstream switched protocols");
                return;
            case ParseEvent::error:
                log_warn("upstream %s: invalid response: %s", req_.upstream_addr.data(),
                         parser_.error_reason());
                upstream_.report_failure(req_, target_, TORII_PEER_FAILED);
                do_report(TORII_PEER_FAILED, 0);
                do_drop_connection();
                do_fail(502);
                return;
            case ParseEvent::body_full:
            case ParseEvent::need_more:
                break;
        }
        break;
    }
    if (evbuffer_get_length(response_body_) > 0) req_.downstream->send_body(req_, response_body_);
    if (s.eof()) {
        ParseEvent ev = parser_.finish();
        if (ev == ParseEvent::message_complete) {
            do_finish_response();
            return;
        }
        if (!head_received_) {
            do_attempt_failed(502, false, "upstream closed the connection before responding");
            return;
        }
        log_warn("upstream %s closed the connection in the middle of the response",
                 std::string(req_.upstream_addr).c_str());
        do_drop_connection();
        state_ = State::done;
        req_.downstream->send_abort(req_);
        return;
    }
    if (req_.downstream->output_full(req_)) {
        s.pause_read();
        req_.downstream->watch_output_drain(req_);
    }
}

void ProxySession::on_response_drained(Request &) noexcept {
    if (state_ != State::exchanging || !conn_) return;
    conn_->socket().resume_read();
    if (evbuffer_get_length(conn_->socket().input()) > 0) do_read_response();
}

void ProxySession::do_finish_response() {
    if (evbuffer_get_length(response_body_) > 0) req_.downstream->send_body(req_, response_body_);
    Socket &s = conn_->socket();
    bool reusable = parser_.keep_alive() && request_sent_ && s.pending_output() == 0 &&
                    evbuffer_get_length(s.input()) == 0 && !s.eof();
    upstream_.target(target_).in_flight--;
    if (reusable) {
        conn_->requests++;
        upstream_.release(std::move(conn_));
    } else {
        UpstreamConnection::retire(std::move(conn_));
    }
    state_ = State::done;
    // Last: the downstream may finish the exchange and queue this session for deletion.
    req_.downstream->send_end(req_, &upstream_head_.trailers);
}

void ProxySession::do_drop_connection() {
    if (!conn_) return;
    upstream_.target(conn_->target()).in_flight--;
    UpstreamConnection::retire(std::move(conn_));
}

void ProxySession::do_attempt_failed(int status, bool connecting, const char *why) {
    std::string addr(req_.upstream_addr);
    log_warn("upstream \"%s\" target %s: %s", upstream_.config().name.c_str(), addr.c_str(), why);
    bool stale = reused_ && !connecting && !head_received_;
    last_status_ = status;
    do_drop_connection();
    if (!stale) {
        torii_peer_outcome_t outcome = status == 504 ? TORII_PEER_TIMEOUT : TORII_PEER_FAILED;
        upstream_.report_failure(req_, target_, outcome);
        do_report(outcome, 0);
    }
    bool body_safe = !body_forwarded_ && !head_received_;
    // A pooled connection the upstream had already closed is not the target's fault: try
    // once more on a fresh connection to the same target.
    if (stale && body_safe && idempotent() && !stale_retry_used_) {
        stale_retry_used_ = true;
        tried_.remove(static_cast<size_t>(target_));
        --attempts_;
        do_attempt();
        return;
    }
    bool may_retry =
        body_safe && (connecting || idempotent()) && attempts_ <= upstream_.config().retries;
    if (may_retry) {
        do_attempt();
        return;
    }
    do_fail(status);
}

void ProxySession::do_fail(int status) {
    state_ = State::done;
    do_drop_connection();
    if (req_.head_sent)
        req_.downstream->send_abort(req_);
    else
        respond_error(req_, status);
}

void ProxySession::on_socket_error(Socket &s, int err) {
    if (!conn_ || state_ == State::done) return;
    // A TLS failure says why (certificate verify failed (hostname mismatch), ...).
    const char *why = s.tls_error().empty() ? strerror(err) : s.tls_error().c_str();
    if (state_ == State::connecting) {
        do_attempt_failed(502, true, why);
    } else if (!head_received_) {
        do_attempt_failed(502, false, why);
    } else {
        log_warn("upstream %s: %s in the middle of the response",
                 std::string(req_.upstream_addr).c_str(), strerror(err));
        do_drop_connection();
        state_ = State::done;
        req_.downstream->send_abort(req_);
    }
}

void ProxySession::on_socket_timeout(Socket &, bool reading) {
    if (!conn_ || state_ == State::done) return;
    if (state_ == State::connecting) {
        do_attempt_failed(504, true, "timed out while connecting");
    } else if (!head_received_) {
        do_attempt_failed(
            504, false,
            reading ? "timed out waiting for the response" : "timed out sending the request");
    } else {
        log_warn("upstream %s: timed out in the middle of the response",
                 std::string(req_.upstream_addr).c_str());
        do_drop_connection();
        state_ = State::done;
        req_.downstream->send_abort(req_);
    }
}

void ProxySession::on_request_abort(Request &) noexcept {
    // The client is gone: the upstream connection is mid-exchange and cannot be reused.
    do_drop_connection();
    state_ = State::done;
}

}  // namespace torii
