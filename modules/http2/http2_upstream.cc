#include "modules/http2/http2_upstream.h"

#include "modules/http2/h2_common.h"

#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

#include "core/base/pool_alloc.h"
#include "core/base/arena.h"
#include "core/base/format.h"
#include "core/base/log.h"
#include "core/http/request.h"
#include "core/proxy/upstream.h"
#include "core/worker/worker.h"

namespace torii {

static constexpr size_t kUpstreamOutputHigh = 256 * 1024;
static constexpr int32_t kUpstreamStreamWindow = 256 * 1024;
static constexpr int32_t kUpstreamConnectionWindow = 4 * 1024 * 1024;

// ---- the session ------------------------------------------------------------------------

static Http2UpstreamStream *upstream_stream_of(nghttp2_session *s, int32_t id) {
    return static_cast<Http2UpstreamStream *>(nghttp2_session_get_stream_user_data(s, id));
}

static int h2u_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t, void *) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (Http2UpstreamStream *s = upstream_stream_of(session, frame->hd.stream_id))
        s->on_header(frame->headers.cat, {reinterpret_cast<const char *>(name), namelen},
                     {reinterpret_cast<const char *>(value), valuelen});
    return 0;
}

int h2u_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        static_cast<Http2UpstreamSession *>(user)->ping_sent_ms_ = 0;  // the target lives
        return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        // nghttp2 has applied them: remembered for the target's next sessions.
        auto *self = static_cast<Http2UpstreamSession *>(user);
        self->settings_ = true;
        if (Http2SessionPool *pool = self->upstream_.target(self->target_).h2.get())
            pool->learn_max_streams(nghttp2_session_get_remote_settings(
                session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        // No new streams here; nghttp2 closes those above last_stream_id (REFUSED_STREAM).
        static_cast<Http2UpstreamSession *>(user)->goaway_ = true;
        return 0;
    }
    Http2UpstreamStream *s = upstream_stream_of(session, frame->hd.stream_id);
    if (!s) return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS)
        s->on_headers_end(frame->headers.cat, end);
    else if (frame->hd.type == NGHTTP2_DATA && end)
        s->on_end();
    return 0;
}

static int h2u_on_data_chunk(nghttp2_session *session, uint8_t, int32_t id, const uint8_t *data,
                             size_t len, void *) {
    if (Http2UpstreamStream *s = upstream_stream_of(session, id))
        s->on_data(data, len);
    else
        nghttp2_session_consume(session, id, len);
    return 0;
}

static int h2u_on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *) {
    if (Http2UpstreamStream *s = upstream_stream_of(session, id)) s->on_close(code);
    return 0;
}

Http2UpstreamSession::Http2UpstreamSession(UpstreamRuntime &upstream, int target)
    : upstream_(upstream), target_(target) {
    send_ev_.reset(event_new(Worker::current().base(), -1, 0, on_send_cb, this));
    ping_timer_.reset(evtimer_new(Worker::current().base(), on_ping_timer_cb, this));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2u_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2u_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2u_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2u_on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);  // consumed when the client took it
    nghttp2_session_client_new3(&session_, cbs, this, opt, torii::pool::nghttp2_allocator());
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kUpstreamStreamWindow)},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          kUpstreamConnectionWindow);
}

Http2UpstreamSession::~Http2UpstreamSession() {
    failed_ = true;
    std::vector<Http2UpstreamStream *> left;
    left.swap(streams_);
    for (Http2UpstreamStream *s : left)
        s->on_session_failed(false, "upstream session closed");
    if (sock_) sock_->detach();
    nghttp2_session_del(session_);
}

bool Http2UpstreamSession::connect(int *err) {
    Socket *s = upstream_.open_connection(target_, this, err);
    if (!s) return false;
    sock_.reset(s);
    sock_->set_write_timeout(upstream_.config().connect_timeout);
    return true;
}

bool Http2UpstreamSession::tls() const {
    return upstream_.config().tls.enabled;
}

size_t Http2UpstreamSession::capacity() const {
    uint32_t max;
    if (settings_) {
        max =
            nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    } else {
        // Until the peer's own SETTINGS arrive: what the target announced last on another
        // session; for a target never heard from, no limit of the pool's own, so that a burst
        // toward a cold target waits for this connection's SETTINGS instead of opening
        // connections it will not need (nghttp2 sends at most 100 streams before the SETTINGS
        // and holds the rest until a slot frees). Assuming 100 here opened 3 connections for
        // 256 streams to an nginx allowing 128, and least-loaded picking kept all 3 busy.
        Http2SessionPool *pool = upstream_.target(target_).h2.get();
        max = pool && pool->known_max_streams() ? pool->known_max_streams() : 1000;
    }
    return max > 1000 ? 1000 : max;
}

void Http2UpstreamSession::attach(Http2UpstreamStream *s) {
    streams_.push_back(s);
    if (ready_) s->on_ready();
}

void Http2UpstreamSession::detach(Http2UpstreamStream *s) {
    for (auto it = streams_.begin(); it != streams_.end(); ++it) {
        if (*it == s) {
            streams_.erase(it);
            return;
        }
    }
}

void Http2UpstreamSession::on_socket_connected(Socket &s) {
    if (s.ssl()) {
        const unsigned char *alpn = nullptr;
        unsigned len = 0;
        SSL_get0_alpn_selected(s.ssl(), &alpn, &len);
        if (len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
            do_fail("the target did not agree to HTTP/2 (ALPN)");
            return;
        }
    }
    ready_ = true;
    s.set_write_timeout(upstream_.config().send_timeout);
    s.set_read_timeout(0);  // streams keep their own read_timeout
    std::vector<Http2UpstreamStream *> waiting(streams_);
    for (Http2UpstreamStream *st : waiting)
        st->on_ready();
    last_recv_ms_ = Worker::now_ms();
    if (upstream_.config().http2_ping_interval > 0)
        do_arm_ping_timer(static_cast<uint64_t>(upstream_.config().http2_ping_interval));
    do_send();
}

void Http2UpstreamSession::do_arm_ping_timer(uint64_t delay_ms) {
    timeval tv = to_timeval(static_cast<Millis>(delay_ms));
    evtimer_add(ping_timer_.get(), &tv);
}

void Http2UpstreamSession::on_ping_timer_cb(evutil_socket_t, short, void *ctx) {
    static_cast<Http2UpstreamSession *>(ctx)->do_ping_check();
}

void Http2UpstreamSession::do_ping_check() {
    if (failed_) return;
    const UpstreamConfig &cfg = upstream_.config();
    uint64_t now = Worker::now_ms();
    if (ping_sent_ms_) {
        uint64_t waited = now - ping_sent_ms_;
        if (waited < static_cast<uint64_t>(cfg.http2_ping_timeout)) {
            do_arm_ping_timer(static_cast<uint64_t>(cfg.http2_ping_timeout) - waited);
            return;
        }
        log_warn("upstream \"%s\" target %s: no PING ACK within http2_ping_timeout: session closed",
                 cfg.name.c_str(), upstream_.target(target_).config.address.c_str());
        do_fail("the target did not answer a PING");
        return;
    }
    uint64_t quiet = now - last_recv_ms_;
    uint64_t interval = static_cast<uint64_t>(cfg.http2_ping_interval);
    if (quiet < interval) {  // the target spoke since: wait for the rest of the interval
        do_arm_ping_timer(interval - quiet);
        return;
    }
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    ping_sent_ms_ = now;
    do_arm_ping_timer(static_cast<uint64_t>(cfg.http2_ping_timeout));
    do_send();
}

void Http2UpstreamSession::on_socket_read(Socket &) {
    do_recv();
}

void Http2UpstreamSession::do_recv() {
    if (failed_) return;
    last_recv_ms_ = Worker::now_ms();
    if (int rv = h2::recv_all(session_, sock_->input())) {
        do_fail(nghttp2_strerror(rv));
        return;
    }
    if (failed_) return;
    if (sock_->eof()) {
        do_fail("the target closed the connection");
        return;
    }
    // As on the client side: one send round per session and loop turn, with the requests
    // and WINDOW_UPDATEs that the turn's other events submit.
    schedule_send();
}

void Http2UpstreamSession::schedule_send() {
    // Once per loop turn, however many streams submitted (as on the client side).
    if (failed_ || !ready_ || send_scheduled_) return;
    send_scheduled_ = true;
    event_active(send_ev_.get(), 0, 0);
}

void Http2UpstreamSession::on_send_cb(evutil_socket_t, short, void *ctx) {
    auto *s = static_cast<Http2UpstreamSession *>(ctx);
    s->send_scheduled_ = false;
    s->do_send();
}

void Http2UpstreamSession::do_send() {
    if (failed_ || !ready_) return;
    if (int rv = h2::send_all(session_, *sock_, kUpstreamOutputHigh, kUpstreamOutputHigh / 4)) {
        do_fail(nghttp2_strerror(rv));
        return;
    }
    if (goaway_ && streams_.empty()) failed_ = true;  // drained after GOAWAY: prune() frees it
}

void Http2UpstreamSession::on_socket_drained(Socket &) {
    do_send();
}

void Http2UpstreamSession::on_socket_error(Socket &s, int err) {
    do_fail(s.tls_error().empty() ? strerror(err) : s.tls_error().c_str());
}

void Http2UpstreamSession::on_socket_timeout(Socket &, bool) {
    do_fail(ready_ ? "timed out sending" : "timed out while connecting");
}

void Http2UpstreamSession::do_fail(const char *why) {
    if (failed_) return;
    failed_ = true;
    event_del(ping_timer_.get());
    bool connecting = !ready_;
    std::string text(why);  // the socket's text goes with it
    sock_->detach();
    std::vector<Http2UpstreamStream *> left;
    left.swap(streams_);
    for (Http2UpstreamStream *s : left)
        s->on_session_failed(connecting, text.c_str());
}

// ---- the pool ---------------------------------------------------------------------------

Http2SessionPool::~Http2SessionPool() = default;

void Http2SessionPool::prune() {
    for (auto it = sessions_.begin(); it != sessions_.end();) {
        if (!(*it)->usable() && (*it)->idle()) {
            // Freed after the current callback: it may be on the stack.
            struct Holder : Deletable {
                std::unique_ptr<Http2UpstreamSession> s;
            };
            auto h = std::make_unique<Holder>();
            h->s = std::move(*it);
            Worker::current().defer_delete(std::move(h));
            it = sessions_.erase(it);
        } else {
            ++it;
        }
    }
}

Http2UpstreamSession *Http2SessionPool::pick(int *err, bool *fresh) {
    prune();
    Http2UpstreamSession *best = nullptr;
    for (auto &s : sessions_) {
        if (!s->usable() || s->load() >= s->capacity()) continue;
        if (!best || s->load() < best->load()) best = s.get();
    }
    *fresh = false;
    if (best) return best;
    auto s = std::make_unique<Http2UpstreamSession>(upstream_, target_);
    if (!s->connect(err)) return nullptr;
    *fresh = true;
    sessions_.push_back(std::move(s));
    return sessions_.back().get();
}

// ---- the stream -------------------------------------------------------------------------

Http2UpstreamStream::Http2UpstreamStream(UpstreamRuntime &upstream, int target,
                                         UpstreamStreamHandler &handler, Request &req)
    : upstream_(upstream),
      target_(target),
      handler_(handler),
      head_(req.upstream_response),
      body_(req.upstream_body.get()),
      arena_(req.arena),
      head_request_(req.input.method == "HEAD") {
    timer_.reset(evtimer_new(Worker::current().base(), on_timer_cb, this));
}

Http2UpstreamStream::~Http2UpstreamStream() {
    if (session_) {
        if (id_ > 0) nghttp2_session_set_stream_user_data(session_->session(), id_, nullptr);
        session_->detach(this);
    }
}

void Http2UpstreamStream::start() {
    head_.clear();
    TargetState &t = upstream_.target(target_);
    if (!t.h2) t.h2 = std::make_unique<Http2SessionPool>(upstream_, target_);
    int err = 0;
    bool fresh = false;
    Http2UpstreamSession *s = t.h2->pick(&err, &fresh);
    if (!s) {
        done_ = true;
        handler_.on_stream_error(*this, UpstreamError::connect, strerror(err));
        return;
    }
    in_flight_ = upstream_.count_in_flight(target_);
    reused_ = !fresh;
    session_ = s;
    s->attach(this);  // on_ready now when connected, else once it is
}

void Http2UpstreamStream::on_ready() {
    if (!done_) handler_.on_stream_ready(*this);
}

static ssize_t h2u_read_body(nghttp2_session *, int32_t, uint8_t *buf, size_t length,
                             uint32_t *flags, nghttp2_data_source *source, void *) {
    return static_cast<Http2UpstreamStream *>(source->ptr)->read_body(buf, length, flags);
}

void Http2UpstreamStream::send_head(const UpstreamRequest &req) {
    read_timeout_ms_ =
        req.read_timeout_ms > 0 ? req.read_timeout_ms : upstream_.config().read_timeout;
    h2::NvList nv(arena_, req.headers->size() + 6);
    std::string_view authority;
    for (const Header &h : *req.headers)
        if (h.id == HeaderId::host) authority = h.value;
    nv.add(":method", req.method);
    nv.add(":scheme", session_->tls() ? "https" : "http");
    nv.add(":authority", authority);
    nv.add(":path", req.target);
    for (const Header &h : *req.headers)
        if (h.id != HeaderId::host && h.id != HeaderId::te) nv.add_field(h);
    if (req.te_trailers) nv.add("te", "trailers");  // gRPC needs it
    if (req.content_length >= 0) {
        char *num = arena_.alloc(24);
        size_t n = format_u64(num, static_cast<uint64_t>(req.content_length));
        nv.add("content-length", {num, n});
    }
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = h2u_read_body;
    bool body = req.has_body();
    id_ = nghttp2_submit_request(session_->session(), nullptr, nv.data(), nv.size(),
                                 body ? &provider : nullptr, this);
    if (id_ < 0) {
        done_ = true;
        in_flight_.release();
        handler_.on_stream_error(*this, UpstreamError::connect, nghttp2_strerror(id_));
        return;
    }
    if (!body) {
        out_.end_queued = out_.end_sent = true;
        do_arm_read_timeout();
    }
}

void Http2UpstreamStream::send_body(evbuffer *data) {
    out_.add(session_ ? session_->session() : nullptr, id_, data, &arena_);
}

void Http2UpstreamStream::send_end(const HeaderList *trailers) {
    if (!out_.end_queued) {
        out_.end(session_ ? session_->session() : nullptr, id_, trailers);
        do_arm_read_timeout();
    }
    flush();
}

ssize_t Http2UpstreamStream::read_body(uint8_t *buf, size_t length, uint32_t *flags) {
    ssize_t n = out_.read(session_->session(), id_, arena_, buf, length, flags);
    if (!out_.end_sent && out_.pending() < kUpstreamOutputHigh / 4)
        handler_.on_stream_drained(*this);  // the session may give more body
    return n;
}

void Http2UpstreamStream::flush() {
    if (session_) session_->schedule_send();
}

bool Http2UpstreamStream::output_full() const {
    return out_.pending() >= kUpstreamOutputHigh;
}

void Http2UpstreamStream::pause_receiving() {
    paused_ = true;
}

void Http2UpstreamStream::resume_receiving() {
    paused_ = false;
    if (unconsumed_ && session_ && id_ > 0) {
        nghttp2_session_consume(session_->session(), id_, unconsumed_);
        unconsumed_ = 0;
        session_->schedule_send();
    }
}

void Http2UpstreamStream::on_header(uint8_t cat, std::string_view name, std::string_view value) {
    if (done_) return;
    do_arm_read_timeout();
    if (cat == NGHTTP2_HCAT_HEADERS && head_received_) {  // trailers
        head_.trailers.add(arena_.copy(name), arena_.copy(value));
        return;
    }
    if (name == ":status") {
        int status = 0;
        for (char c : value)
            status = status * 10 + (c - '0');
        head_.status = status;
        return;
    }
    if (name == "content-length") {
        int64_t v = 0;
        for (char c : value)
            v = v * 10 + (c - '0');
        head_.content_length = v;
    }
    head_.headers.add(arena_.copy(name), arena_.copy(value));
}

void Http2UpstreamStream::on_headers_end(uint8_t cat, bool end_stream) {
    if (done_) return;
    if (!head_received_ && (cat == NGHTTP2_HCAT_RESPONSE || cat == NGHTTP2_HCAT_HEADERS)) {
        if (head_.status < 200) {  // interim
            if (head_.status != 100) handler_.on_stream_interim(*this, head_);
            head_.clear();
            return;
        }
        head_received_ = true;
        head_.no_body = head_request_ || head_.status == 204 || head_.status == 304;
        // A head that ends the stream (a gRPC trailers-only answer) has an empty body: said
        // so, the client side can end its stream with the head as well.
        if (end_stream && head_.content_length < 0) head_.content_length = 0;
        handler_.on_stream_head(*this, head_);
        if (done_) return;
    }
    if (end_stream) on_end();
}

void Http2UpstreamStream::on_data(const uint8_t *data, size_t len) {
    if (done_ || !session_) {
        if (session_) nghttp2_session_consume(session_->session(), id_, len);
        return;
    }
    do_arm_read_timeout();
    evbuffer_add(body_, data, len);
    handler_.on_stream_body(*this, body_);
    if (done_ || !session_) return;
    if (paused_)
        unconsumed_ += len;
    else
        nghttp2_session_consume(session_->session(), id_, len);
}

void Http2UpstreamStream::on_end() {
    if (done_) return;
    if (!out_.end_sent && session_ && id_ > 0)  // answered before the request ended
        nghttp2_submit_rst_stream(session_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
    do_done();
    handler_.on_stream_end(*this, &head_.trailers);
}

void Http2UpstreamStream::on_close(uint32_t code) {
    if (done_) {
        if (session_) {
            nghttp2_session_set_stream_user_data(session_->session(), id_, nullptr);
            session_->detach(this);
            session_ = nullptr;
        }
        return;
    }
    do_done();
    char why[96];
    snprintf(why, sizeof why, "the target reset the stream (%s)", nghttp2_http2_strerror(code));
    if (code == NGHTTP2_REFUSED_STREAM)  // not processed: safe to retry anywhere
        handler_.on_stream_error(*this, UpstreamError::refused, why);
    else
        handler_.on_stream_error(
            *this, code == NGHTTP2_NO_ERROR ? UpstreamError::closed : UpstreamError::reset, why);
}

void Http2UpstreamStream::on_session_failed(bool connecting, const char *why) {
    session_ = nullptr;
    if (done_) return;
    done_ = true;
    in_flight_.release();
    event_del(timer_.get());
    handler_.on_stream_error(*this, connecting ? UpstreamError::connect : UpstreamError::closed,
                             why);
}

void Http2UpstreamStream::do_done() {
    done_ = true;
    in_flight_.release();
    event_del(timer_.get());
    if (session_) {
        session_->detach(this);
        session_->schedule_send();
        if (id_ > 0) nghttp2_session_set_stream_user_data(session_->session(), id_, nullptr);
        session_ = nullptr;
    }
}

void Http2UpstreamStream::abort() {
    if (done_) return;
    if (session_ && id_ > 0)
        nghttp2_submit_rst_stream(session_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    do_done();
}

void Http2UpstreamStream::do_arm_read_timeout() {
    timeval tv =
        to_timeval(read_timeout_ms_ > 0 ? read_timeout_ms_ : upstream_.config().read_timeout);
    evtimer_add(timer_.get(), &tv);
}

void Http2UpstreamStream::on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *s = static_cast<Http2UpstreamStream *>(ctx);
    if (s->done_) return;
    bool head = s->head_received_;
    s->abort();
    s->handler_.on_stream_error(
        *s, UpstreamError::read_timeout,
        head ? "timed out in the middle of the response" : "timed out waiting for the response");
}

}  // namespace torii
