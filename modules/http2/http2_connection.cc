#include "modules/http2/http2_connection.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/base/pool_alloc.h"
#include "core/base/log.h"
#include "core/module/module.h"
#include "core/server/http_server.h"
#include "core/worker/worker.h"
#include "modules/http2/h2_common.h"
#include "modules/http2/http2_stream.h"

namespace torii {

// Socket output kept below this while nghttp2 has frames to give (backpressure toward the
// client: streams' data providers are simply not pulled meanwhile).
static constexpr size_t kSocketOutputHigh = 256 * 1024;
static constexpr size_t kSocketOutputLow = 64 * 1024;
// Per-stream receive window: how much request body a client may send before torii's
// upstream took it; the connection window allows a few such streams at once.
static constexpr int32_t kStreamWindow = 256 * 1024;
static constexpr int32_t kConnectionWindow = 1024 * 1024;
// Between the shutdown notice and the final GOAWAY (nghttpx waits about one round trip).
static constexpr int64_t kGoawayDelayMs = 1000;
// Draining (reload, graceful stop): how long a connection must have no stream before its
// GOAWAY. Any GOAWAY, even the notice, stops nghttp2-based clients (curl, h2load, grpc's
// channels go elsewhere) from opening streams on this connection; a client that does not
// reconnect would fail whatever it had not started yet. So the old generation serves on
// until the client pauses, and at the latest until this long before shutdown_timeout.
static constexpr int64_t kDrainIdleMs = 200;
static constexpr int64_t kWrapUpBeforeMs = 5000;  // or half of shutdown_timeout, if shorter
// Frames that serve no request (empty DATA, PING, SETTINGS, PRIORITY, resets the client
// provoked): a burst, then a steady rate. Legitimate clients stay far below; a flood ends
// in GOAWAY(ENHANCE_YOUR_CALM) for its connection only. Budgets, not bans (h2o's way).
static constexpr double kGlitchBurst = 1000;
static constexpr double kGlitchRate = 200;  // a second

const Module http2_module = {
    .name = "http2",
    .alpn = "h2",
    .accept = [](Worker &worker, std::unique_ptr<Socket> sock, const SocketAddress &peer,
                 const ServerGroup &group) -> ClientConnection * {
        auto *c = new Http2Connection(worker, std::move(sock), peer, group);
        worker.add_connection(c);
        c->start();
        return c;
    },
};

namespace {

int on_begin_headers(nghttp2_session *, const nghttp2_frame *frame, void *user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto *conn = static_cast<Http2Connection *>(user);
    conn->stream_opened(new Http2Stream(*conn, frame->hd.stream_id));
    return 0;
}

int on_begin_frame(nghttp2_session *, const nghttp2_frame_hd *hd, void *user) {
    return static_cast<Http2Connection *>(user)->check_begin_frame(*hd);
}

int on_frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *user) {
    auto *conn = static_cast<Http2Connection *>(user);
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
        conn->check_settings() != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    bool glitch = false;
    switch (frame->hd.type) {
        case NGHTTP2_DATA:
            glitch = frame->hd.length == 0 && !end;
            break;
        case NGHTTP2_PING:
        case NGHTTP2_PRIORITY:
            glitch = !(frame->hd.flags & NGHTTP2_FLAG_ACK);
            break;
        case NGHTTP2_RST_STREAM:  // rapid reset (CVE-2023-44487): open, cancel, repeat
            glitch = true;
            break;
        case NGHTTP2_SETTINGS:
            glitch = !(frame->hd.flags & NGHTTP2_FLAG_ACK);
            break;
        default:
            break;
    }
    if (glitch && !conn->spend_glitch()) return NGHTTP2_ERR_CALLBACK_FAILURE;
    Http2Stream *s = conn->stream(frame->hd.stream_id);
    if (!s) return 0;
    switch (frame->hd.type) {
        case NGHTTP2_HEADERS:
            if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
                s->on_request_head(end);
            else
                s->on_trailers_end(end);
            break;
        case NGHTTP2_DATA:
            if (end) s->on_request_end();
            break;
        default:
            break;
    }
    return 0;
}

int on_data_chunk(nghttp2_session *session, uint8_t, int32_t id, const uint8_t *data, size_t len,
                  void *user) {
    if (Http2Stream *s = static_cast<Http2Connection *>(user)->stream(id))
        s->on_data(data, len);
    else
        nghttp2_session_consume(session, id, len);
    return 0;
}

// Resets torii sends because of what the client did ("MadeYouReset", CVE-2025-8671) cost
// like the client's own: they come out of the same budget.
int on_frame_send(nghttp2_session *, const nghttp2_frame *frame, void *user) {
    if (frame->hd.type == NGHTTP2_RST_STREAM && frame->rst_stream.error_code != NGHTTP2_NO_ERROR &&
        frame->rst_stream.error_code != NGHTTP2_CANCEL &&
        frame->rst_stream.error_code != NGHTTP2_INTERNAL_ERROR)
        static_cast<Http2Connection *>(user)->spend_glitch();
    // Only a WebSocket handshake's stream wants to hear that its response ended: no lookup
    // in nghttp2's stream map for the others.
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        static_cast<Http2Connection *>(user)->websocket_streams() > 0)
        if (Http2Stream *s = static_cast<Http2Connection *>(user)->stream(frame->hd.stream_id))
            s->on_response_sent();
    return 0;
}

int on_stream_close(nghttp2_session *, int32_t id, uint32_t error_code, void *user) {
    if (Http2Stream *s = static_cast<Http2Connection *>(user)->stream(id)) s->on_close(error_code);
    return 0;
}

}  // namespace

Http2Connection::Http2Connection(Worker &worker, std::unique_ptr<Socket> sock,
                                 const SocketAddress &peer, const ServerGroup &group)
    : worker_(worker),
      group_(group),
      limits_(group.servers.front()->config()),
      sock_(std::move(sock)),
      peer_(peer),
      glitch_tokens_(kGlitchBurst) {
    sock_->set_handler(this);
    sock_->set_read_in_place(true);  // frames decoded where a small read left them (do_recv)
    glitch_refill_ms_ = Worker::now_ms();
    remote_len_ = peer.format_host(remote_text_);
    send_ev_.reset(event_new(worker.base(), -1, 0, on_send_cb, this));
    timer_.reset(evtimer_new(worker.base(), on_timer_cb, this));
    wrap_up_.reset(evtimer_new(worker.base(), on_wrap_up_cb, this));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, Http2Stream::header_cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    // nghttp2's own limits, stated: client resets (a backstop above the glitch budget,
    // which counts them first and answers ENHANCE_YOUR_CALM), CONTINUATION floods (8 per
    // header block), SETTINGS with too many entries, unanswered PING/SETTINGS ACKs.
    nghttp2_option_set_stream_reset_rate_limit(opt, 4000, 100);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    // End-to-end backpressure: a request body is acknowledged once the handler took it.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    // The request's fields are checked by Http2Stream (h2_request_checks.h), the rules of
    // nghttp2's HTTP messaging pass in one pass over what torii reads anyway: nghttp2's own
    // cost about 1,200 instructions a request.
    nghttp2_option_set_no_http_messaging(opt, 1);
    nghttp2_session_server_new3(&session_, cbs, this, opt, torii::pool::nghttp2_allocator());
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
}

Http2Connection::~Http2Connection() {
    nghttp2_session_del(session_);
}

void Http2Connection::start() {
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         static_cast<uint32_t>(limits_.http2_max_concurrent_streams)},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        // WebSocket over HTTP/2 (RFC 8441): extended CONNECT with :protocol.
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
        // Not SETTINGS_NO_RFC7540_PRIORITIES = 1 (RFC 9218), although it saves nghttp2's
        // dependency tree (330 instructions a request): nghttp2 1.52 then keeps no closed
        // streams, so DATA or HEADERS on a closed stream pass silently instead of the
        // RFC 9113 5.1 errors, and it skips PRIORITY frames unread (no self-dependency
        // check, no glitch count). See docs/performance.md.
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                            sizeof settings / sizeof settings[0]);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    sock_->set_read_timeout(0);
    sock_->set_write_timeout(limits_.send_timeout);
    do_idle_check();
    // Handed over by a TLS handshake that finished while the worker drains: GOAWAY as the
    // connections it already held got.
    if (worker_.stopping()) shutdown_gracefully();
    do_recv();  // the preface (and more) may already be in the input (h2c sniffing)
}

void Http2Connection::add_stream(Http2Stream *s) {
    s->set_slot(streams_.size());
    streams_.push_back(s);
}

void Http2Connection::stream_opened(Http2Stream *s) {
    Http2Stream *&slot = by_id_[slot_of(s->id())];
    if (!slot)
        slot = s;
    else  // a stream kStreamTable ids older is still open: nghttp2 keeps this one
        nghttp2_session_set_stream_user_data(session_, s->id(), s);
    add_stream(s);
    ++open_streams_;
    // Only a draining connection asks how long it has been quiet (on_timer_cb); before
    // that, shutdown_gracefully starts the count.
    if (draining_) last_stream_ms_ = Worker::now_ms();
}

void Http2Connection::stream_closed(Http2Stream *s) {
    // The last one takes its place: no search among up to 128 open streams (their order
    // means nothing).
    Http2Stream *last = streams_.back();
    streams_[s->slot()] = last;
    last->set_slot(s->slot());
    streams_.pop_back();
    Http2Stream *&slot = by_id_[slot_of(s->id())];
    if (slot == s) slot = nullptr;
    --open_streams_;
    if (draining_) last_stream_ms_ = Worker::now_ms();
    for (Http2Stream *&d : drained_)
        if (d == s) d = nullptr;
    worker_.defer_delete(std::unique_ptr<Deletable>(s));
    if (open_streams_ == 0) do_idle_check();
}

int Http2Connection::check_begin_frame(const nghttp2_frame_hd &hd) {
    if (uint32_t code = checks_.on_begin_frame(session_, hd, streams_)) {
        connection_error_ = code;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

int Http2Connection::check_settings() {
    if (uint32_t code = checks_.on_settings(session_)) {
        connection_error_ = code;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

bool Http2Connection::spend_glitch() {
    uint64_t now = Worker::now_ms();
    glitch_tokens_ += static_cast<double>(now - glitch_refill_ms_) * kGlitchRate / 1000.0;
    if (glitch_tokens_ > kGlitchBurst) glitch_tokens_ = kGlitchBurst;
    glitch_refill_ms_ = now;
    if (--glitch_tokens_ >= 0) return true;
    calm_down_ = true;
    return false;
}

void Http2Connection::on_socket_read(Socket &) {
    if (!closed_) do_recv();
}

void Http2Connection::do_recv() {
    std::string_view fresh = sock_->take_unread();  // before input(), which would move it
    evbuffer *in = sock_->input();
    int rv = h2::recv_all(session_, in, fresh);
    if (rv < 0) {
        // nghttp2 queued a GOAWAY for protocol errors and its own limits: let it go out,
        // then close. Our budget's verdict gets its GOAWAY here.
        uint32_t code = NGHTTP2_PROTOCOL_ERROR;
        const char *why = nghttp2_strerror(rv);
        if (calm_down_ || rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
            code = NGHTTP2_ENHANCE_YOUR_CALM;
            if (calm_down_) why = "too many frames that serve no request";
        } else if (connection_error_) {
            code = connection_error_;
            why = nghttp2_http2_strerror(code);
        }
        nghttp2_session_terminate_session(session_, code);
        log_info("client %s: HTTP/2: %s", remote_text_, why);
        evbuffer_drain(in, evbuffer_get_length(in));
        do_send();
        do_close(nullptr);
        return;
    }
    if (sock_->eof()) {
        do_send();  // what is queued still goes out before the FIN
        do_close(nullptr);
        return;
    }
    // Answers to what was read (SETTINGS and PING ACKs, WINDOW_UPDATEs) go out with the
    // responses that other events of this loop turn produce: one send round and one TLS
    // write per connection and turn, not one per read and one more for the upstreams.
    schedule_send();
}

void Http2Connection::schedule_send() {
    // A stream schedules after each head, body piece and end, about 3 times per request
    // in one send round: the flag spares libevent's event_active for all but the first.
    if (closed_ || send_scheduled_) return;
    send_scheduled_ = true;
    event_active(send_ev_.get(), 0, 0);
}

void Http2Connection::on_send_cb(evutil_socket_t, short, void *ctx) {
    auto *c = static_cast<Http2Connection *>(ctx);
    c->send_scheduled_ = false;
    if (!c->closed_) c->do_send();
}

void Http2Connection::do_send() {
    if (closed_) return;
    if (int rv = h2::send_all(session_, *sock_, kSocketOutputHigh, kSocketOutputLow)) {
        log_warn("client %s: HTTP/2 send: %s", remote_text_, nghttp2_strerror(rv));
        do_close(nullptr);
        return;
    }
    // Handlers learn about drained streams now, outside nghttp2's callbacks.
    std::vector<Http2Stream *> drained;
    drained.swap(drained_);
    for (Http2Stream *s : drained)
        if (s) s->notify_drained();
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) &&
        sock_->pending_output() == 0)
        do_close(nullptr);
}

void Http2Connection::on_socket_drained(Socket &) {
    if (!closed_) do_send();
}

void Http2Connection::on_socket_error(Socket &, int err) {
    if (open_streams_)
        log_info("client %s: HTTP/2 connection error: %s", remote_text_, strerror(err));
    do_close(nullptr);
}

void Http2Connection::on_socket_timeout(Socket &, bool reading) {
    do_close(reading ? "read timed out" : "send timed out");
}

void Http2Connection::do_idle_check() {
    // An idle connection (no stream) gets keepalive_timeout, then a GOAWAY.
    if (open_streams_ > 0 || closed_) return;
    timeval tv = to_timeval(goaway_notice_ ? kGoawayDelayMs
                            : draining_    ? kDrainIdleMs
                                           : limits_.keepalive_timeout);
    evtimer_add(timer_.get(), &tv);
}

void Http2Connection::on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *c = static_cast<Http2Connection *>(ctx);
    if (c->closed_) return;
    if (!c->goaway_notice_ && c->open_streams_ > 0) return;  // busy again: not idle
    if (c->draining_ && !c->goaway_notice_) {
        // Idle for kDrainIdleMs since the last stream, not merely idle now (a client with
        // several streams in flight is briefly at zero between its batches).
        uint64_t quiet = Worker::now_ms() - c->last_stream_ms_;
        if (quiet + 1 < static_cast<uint64_t>(kDrainIdleMs)) {
            timeval tv = to_timeval(kDrainIdleMs - static_cast<int64_t>(quiet));
            evtimer_add(c->timer_.get(), &tv);
            return;
        }
        c->do_goaway_notice();  // the client paused: now the two steps
        return;
    }
    if (!c->goaway_sent_) {
        // Streams above the last one processed were not seen: the client may retry them.
        nghttp2_submit_goaway(c->session_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session_),
                              NGHTTP2_NO_ERROR, nullptr, 0);
        c->goaway_sent_ = true;
    }
    c->do_send();
}

void Http2Connection::shutdown_gracefully() {
    if (draining_ || closed_) return;
    draining_ = true;
    last_stream_ms_ = Worker::now_ms();  // quiet from now on at the earliest
    // Serve on until the client pauses (on_timer_cb, re-armed by do_idle_check whenever the
    // last stream closes), but wrap up in time for the streams under way to finish before
    // shutdown_timeout.
    do_idle_check();
    int64_t budget = worker_.config().main.shutdown_timeout;
    timeval tv = to_timeval(budget - std::min<int64_t>(kWrapUpBeforeMs, budget / 2));
    evtimer_add(wrap_up_.get(), &tv);
}

void Http2Connection::on_wrap_up_cb(evutil_socket_t, short, void *ctx) {
    auto *c = static_cast<Http2Connection *>(ctx);
    if (!c->closed_ && !c->goaway_notice_) c->do_goaway_notice();
}

void Http2Connection::do_goaway_notice() {
    if (goaway_notice_ || closed_) return;
    // Two steps (RFC 9113 6.8): a notice now, the real GOAWAY after about a round trip, so
    // a request already on its way is still served.
    goaway_notice_ = true;
    event_del(wrap_up_.get());
    nghttp2_submit_shutdown_notice(session_);
    timeval tv = to_timeval(kGoawayDelayMs);
    evtimer_add(timer_.get(), &tv);
    do_send();
}

void Http2Connection::close_now() {
    if (closed_) return;
    // The client learns which streams were processed (it may retry the others elsewhere)
    // before the FIN; streams still open end here.
    if (!goaway_sent_) {
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                              nullptr, 0);
        goaway_sent_ = true;
    }
    do_send();
    do_close("closed by torii (shutdown_timeout, or its generation retired)");
}

void Http2Connection::do_close(const char *why) {
    if (closed_) return;
    closed_ = true;
    if (why) log_info("client %s: HTTP/2 connection closed: %s", remote_text_, why);
    event_del(timer_.get());
    event_del(wrap_up_.get());
    event_del(send_ev_.get());
    sock_->detach();
    // nghttp2_session_del calls no stream-close callback: end the open exchanges here.
    std::vector<Http2Stream *> open;
    open.swap(streams_);
    for (Http2Stream *s : open) {
        add_stream(s);  // stream_closed() takes it out again
        s->on_close(NGHTTP2_CANCEL);
    }
    worker_.retire_connection(this);
}

}  // namespace torii
