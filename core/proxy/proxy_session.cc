#include "core/proxy/proxy_session.h"

#include <algorithm>
#include <cstring>

#include "core/base/log.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "core/proxy/forwarded_headers.h"
#include "core/net/socket.h"
#include "core/proxy/upstream.h"
#include "core/worker/worker.h"
#include "modules/grpc/grpc_status.h"

namespace torii {

ProxySession::ProxySession(Request &req, UpstreamRuntime &upstream)
    : req_(req), upstream_(upstream) {}

ProxySession::~ProxySession() {
    if (stream_) stream_->abort();
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
    do_open();
}

void ProxySession::do_prepare() {
    HeaderList &headers = req_.upstream_request_headers;
    build_upstream_request_headers(req_, headers);
    const RequestHead &in = req_.input;
    // The upstream sees the working path (normalised, after strip_prefix or rewrites) and
    // the query.
    std::string_view target;
    // (The received target is reused only when both are still its own bytes: a plugin may
    // rewrite the query to a new string of the same length.)
    if (req_.path.data() == in.target.data() &&
        (req_.query.empty() || req_.query.data() == in.target.data() + req_.path.size() + 1) &&
        req_.path.size() + (req_.query.empty() ? 0 : req_.query.size() + 1) == in.target.size()) {
        target = in.target;
    } else {
        size_t n = req_.path.size() + (req_.query.empty() ? 0 : 1 + req_.query.size());
        char *p = req_.arena.alloc(n);
        std::memcpy(p, req_.path.data(), req_.path.size());
        if (!req_.query.empty()) {
            p[req_.path.size()] = '?';
            std::memcpy(p + req_.path.size() + 1, req_.query.data(), req_.query.size());
        }
        target = {p, n};
    }
    up_.method = in.method;
    up_.target = target;
    up_.headers = &headers;
    up_.content_length = in.content_length;
    up_.chunked = in.content_length < 0 && in.chunked;
    up_.te_trailers = has_token(in.headers.get(HeaderId::te), "trailers");
    // A gRPC call's deadline is part of the call (Envoy honours it only when asked; nginx
    // and HAProxy ignore it): torii waits no longer than what is left of it, and tells the
    // upstream what is left when the request goes out.
    if (is_grpc_request(in)) {
        int64_t t = parse_grpc_timeout(in.headers.get("grpc-timeout"));
        if (t >= 0) deadline_ms_ = static_cast<int64_t>(req_.start_ms) + t;
    }
    prepared_ = true;
}

void ProxySession::do_attempt() {
    state_ = State::picking;
    int t = upstream_.pick_admitted(req_, tried_, &vetoed_);
    if (t < 0 && attempts_ > 0) {  // out of targets to retry on: report the last failure
        do_fail(last_status_);
        return;
    }
    if (t < 0) {
        log_warn("upstream \"%s\": no healthy target", upstream_.config().name.c_str());
        do_fail(t == UpstreamRuntime::kNoneHealthy || vetoed_ ? 503 : 502);
        return;
    }
    target_ = t;
    ++attempts_;
    attempt_start_us_ = Worker::now_us();
    req_.upstream_addr = upstream_.target(t).config.address;
    request_sent_ = false;  // each attempt sends the whole request
    if (prepared_) {
        do_open();
        return;
    }
    // The upstream phase runs once, after the first pick ($upstream_addr is known), so a
    // retry does not apply its changes twice.
    PhaseResult r = run_phase(req_, TORII_PHASE_UPSTREAM, this);
    if (r == PhaseResult::respond || r == PhaseResult::error) state_ = State::done;
    if (!phase_goes_on(req_, r)) return;
    do_prepare();
    do_open();
}

// Tells the location's plugins how an attempt on the current target went.
void ProxySession::do_report(torii_peer_outcome_t outcome, int status) {
    upstream_.report_to_plugins(req_, target_, outcome, status);
}

void ProxySession::do_open() {
    do_drop_stream();
    head_received_ = false;
    state_ = State::streaming;
    stream_ = upstream_.new_stream(target_, *this, req_);
    // May call back at once (a pooled connection is ready; a connect cannot even start).
    stream_->start();
}

void ProxySession::on_stream_ready(UpstreamStream &s) {
    if (&s != stream_.get()) return;
    ready_ = true;
    if (deadline_ms_) {
        int64_t left = deadline_ms_ - static_cast<int64_t>(Worker::now_ms());
        if (left <= 0) {
            do_fail(504);  // DEADLINE_EXCEEDED in gRPC form
            return;
        }
        deadline_binds_ = left < upstream_.config().read_timeout;
        up_.read_timeout_ms = deadline_binds_ ? left : upstream_.config().read_timeout;
        req_.upstream_request_headers.set("grpc-timeout", format_grpc_timeout(req_.arena, left));
    }
    stream_->send_head(up_);
    do_send_body();
}

void ProxySession::do_send_body() {
    if (state_ != State::streaming || !ready_ || request_sent_) return;
    evbuffer *body = req_.body.get();
    if (evbuffer_get_length(body) > 0 && !stream_->output_full()) {
        keep_for_replay(body);
        stream_->send_body(body);
        body_forwarded_ = true;
        req_.downstream->resume_body(req_);
    }
    if (req_.body_done && evbuffer_get_length(body) == 0) {
        request_sent_ = true;
        drop_disallowed_trailers(req_.input.trailers);
        stream_->send_end(&req_.input.trailers);
        return;
    }
    stream_->flush();
}

void ProxySession::keep_for_replay(evbuffer *body) {
    if (!replay_whole_) return;
    auto give_up = [this] {  // no retry with this body: what it would need is not kept
        replay_whole_ = false;
        replay_.reset();
    };
    UpstreamProtocol proto = upstream_.config().protocol;
    size_t kept = replay_ ? evbuffer_get_length(replay_.get()) : 0;
    size_t n = evbuffer_get_length(body);
    if ((proto != UpstreamProtocol::h2 && proto != UpstreamProtocol::h2c) ||
        attempts_ > upstream_.config().retries || kept + n > kReplayBodyMax)
        return give_up();
    if (!replay_) replay_ = make_evbuffer();
    evbuffer_iovec v;  // one copy, into one piece of the copy's buffer
    if (evbuffer_reserve_space(replay_.get(), static_cast<ev_ssize_t>(n), &v, 1) != 1)
        return give_up();
    v.iov_len = static_cast<size_t>(evbuffer_copyout(body, v.iov_base, n));
    evbuffer_commit_space(replay_.get(), &v, 1);
}

void ProxySession::on_request_body(Request &) noexcept {
    do_send_body();
}

void ProxySession::on_stream_drained(UpstreamStream &s) {
    if (&s == stream_.get()) do_send_body();
}

void ProxySession::on_stream_interim(UpstreamStream &s, const ResponseHead &head) {
    if (&s != stream_.get() || req_.head_sent) return;
    // 103 Early Hints and other informational answers go on to the client (1xx never ends
    // the exchange); their connection-specific fields stay behind.
    HeaderList fields;
    copy_response_headers(head.headers, fields);
    req_.downstream->send_interim(req_, head.status, fields);
}

void ProxySession::on_stream_head(UpstreamStream &s, const ResponseHead &head) {
    if (&s != stream_.get()) return;
    head_received_ = true;
    req_.upstream_latency_us = Worker::now_us() - attempt_start_us_;
    upstream_.report_success(req_, target_, req_.upstream_latency_us);
    do_report(TORII_PEER_OK, head.status);
    ResponseHead &r = req_.response;
    r.status = head.status;
    r.reason = head.reason;
    r.content_length = head.content_length;
    r.no_body = head.no_body;
    r.until_close = head.until_close;
    copy_response_headers(head.headers, r.headers);
    if (!start_response(req_)) {
        // A response-phase plugin replaced the upstream's answer.
        do_drop_stream();
        state_ = State::done;
        send_plugin_response(req_);
    }
}

void ProxySession::on_stream_upgrade(UpstreamStream &s, const ResponseHead &head) {
    if (&s != stream_.get()) return;
    if (!wants_websocket(req_.input)) {  // a 101 nobody asked for: not a valid answer
        do_attempt_failed(502, false, "upstream switched protocols unasked");
        return;
    }
    head_received_ = true;
    req_.upstream_latency_us = Worker::now_us() - attempt_start_us_;
    upstream_.report_success(req_, target_, req_.upstream_latency_us);
    do_report(TORII_PEER_OK, 101);
    ResponseHead &r = req_.response;
    r.status = 101;
    r.reason = head.reason;
    r.content_length = -1;
    r.no_body = true;
    copy_response_headers(head.headers, r.headers);  // Sec-WebSocket-Accept and the like
    r.headers.add("Upgrade", head.headers.get(HeaderId::upgrade), HeaderId::upgrade);
    r.headers.add("Connection", "upgrade", HeaderId::connection);
    if (!start_response(req_)) {  // a response-phase plugin replaced the answer
        do_drop_stream();
        state_ = State::done;
        send_plugin_response(req_);
        return;
    }
    InFlight in_flight;
    std::unique_ptr<Socket> upstream = stream_->take_tunnel(&in_flight);
    do_drop_stream();
    state_ = State::done;
    req_.downstream->start_tunnel(req_, std::move(upstream), std::move(in_flight));
}

void ProxySession::on_stream_body(UpstreamStream &s, evbuffer *data) {
    if (&s != stream_.get()) return;
    req_.downstream->send_body(req_, data);
    if (req_.downstream->output_full(req_)) {
        stream_->pause_receiving();
        req_.downstream->watch_output_drain(req_);
    }
}

void ProxySession::on_response_drained(Request &) noexcept {
    if (state_ == State::streaming && stream_) stream_->resume_receiving();
}

void ProxySession::on_stream_end(UpstreamStream &s, const HeaderList *trailers) {
    if (&s != stream_.get()) return;
    state_ = State::done;
    HeaderList &out = req_.response.trailers;  // lives with the request (HTTP/2 sends it later)
    if (trailers)
        out = *trailers;
    else
        out.clear();
    drop_disallowed_trailers(out);
    Worker::current().defer_delete(std::move(stream_));
    // Last: the downstream may finish the exchange and queue this session for deletion.
    req_.downstream->send_end(req_, &out);
}

void ProxySession::on_stream_error(UpstreamStream &s, UpstreamError err, const char *why) {
    if (&s != stream_.get() || state_ != State::streaming) return;
    switch (err) {
        case UpstreamError::connect:
            do_attempt_failed(502, true, why);
            return;
        case UpstreamError::connect_timeout:
            do_attempt_failed(504, true, why);
            return;
        case UpstreamError::refused:  // never processed: as safe to retry as a connect failure
            do_attempt_failed(502, true, why);
            return;
        case UpstreamError::invalid:
            log_warn("upstream %s: invalid response: %s", std::string(req_.upstream_addr).c_str(),
                     why);
            upstream_.report_failure(req_, target_, TORII_PEER_FAILED);
            do_report(TORII_PEER_FAILED, 0);
            do_fail(502);
            return;
        case UpstreamError::upgrade:
            // 101 Switching Protocols needs the tunnel of the WebSocket module.
            do_attempt_failed(502, false, why);
            return;
        case UpstreamError::send_timeout:
        case UpstreamError::read_timeout:
        case UpstreamError::closed:
        case UpstreamError::reset:
            break;
    }
    bool timeout = err == UpstreamError::send_timeout || err == UpstreamError::read_timeout;
    if (timeout && deadline_binds_ && !head_received_) {
        // The call's own deadline ran out, not the target's read_timeout: the client chose
        // it, so it is not held against the target (passive health, breakers), nor retried.
        do_fail(504);  // DEADLINE_EXCEEDED in gRPC form
        return;
    }
    if (!head_received_) {
        do_attempt_failed(timeout ? 504 : 502, false, why);
        return;
    }
    // The head went to the client already: all that is left is to cut the response short,
    // the way it broke: a reset is passed on as a reset, anything else as a truncation.
    log_warn("upstream %s: %s", std::string(req_.upstream_addr).c_str(), why);
    do_drop_stream();
    state_ = State::done;
    if (err == UpstreamError::reset)
        req_.downstream->send_reset(req_);
    else
        req_.downstream->send_abort(req_);
}

void ProxySession::do_drop_stream() {
    ready_ = false;
    if (!stream_) return;
    stream_->abort();
    Worker::current().defer_delete(std::move(stream_));
}

void ProxySession::do_attempt_failed(int status, bool connecting, const char *why) {
    std::string addr(req_.upstream_addr);
    log_warn("upstream \"%s\" target %s: %s", upstream_.config().name.c_str(), addr.c_str(), why);
    bool stale = stream_ && stream_->reused() && !connecting && !head_received_;
    last_status_ = status;
    do_drop_stream();
    if (!stale) {
        torii_peer_outcome_t outcome = status == 504 ? TORII_PEER_TIMEOUT : TORII_PEER_FAILED;
        upstream_.report_failure(req_, target_, outcome);
        do_report(outcome, 0);
    }
    // A body already forwarded goes again only to replace an attempt that was not processed
    // (connecting: a refused stream or a failed connect), from its whole copy.
    bool replay = body_forwarded_ && connecting && replay_whole_ && replay_;
    bool body_safe = (!body_forwarded_ || replay) && !head_received_;
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
        if (replay) {  // the copy goes back in front of what the client has not sent yet
            evbuffer_prepend_buffer(req_.body.get(), replay_.get());
            body_forwarded_ = false;
        }
        do_attempt();
        return;
    }
    do_fail(status);
}

void ProxySession::do_fail(int status) {
    state_ = State::done;
    do_drop_stream();
    if (req_.head_sent)
        req_.downstream->send_abort(req_);
    else
        respond_error(req_, status);
}

void ProxySession::on_request_abort(Request &) noexcept {
    // The client is gone: the upstream exchange is cut and its connection not reused.
    do_drop_stream();
    state_ = State::done;
}

}  // namespace torii
