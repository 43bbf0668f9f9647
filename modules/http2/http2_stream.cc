#include "modules/http2/http2_stream.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/base/format.h"
#include "core/base/log.h"
#include "core/base/small_copy.h"
#include "core/config/config.h"
#include "core/exchange/exchange.h"
#include "core/http/headers.h"
#include "core/net/socket.h"
#include "core/server/http_server.h"
#include "core/worker/worker.h"
#include "modules/http2/h2_common.h"
#include "modules/http2/h2_websocket.h"
#include "modules/http2/http2_connection.h"

namespace torii {

// Response bytes one stream queues toward the client before its handler is asked to wait
// (and down to a quarter of that before it goes on): kStreamOutputHigh for a stream alone, less
// when streams share the connection, so that what one connection holds stays near
// kConnectionOutputBudget whatever its stream count. A client that opens 128 streams and
// reads none would otherwise make the worker hold 128 x 256 KiB.
static constexpr size_t kStreamOutputHigh = 256 * 1024;
static constexpr size_t kConnectionOutputBudget = 2 * 1024 * 1024;
static constexpr size_t kOutputMinHigh = 16 * 1024;

size_t Http2Stream::output_high() const {
    size_t streams = std::max<size_t>(1, conn_.open_streams());
    return std::clamp(kConnectionOutputBudget / streams, kOutputMinHigh, kStreamOutputHigh);
}

Http2Stream::Http2Stream(Http2Connection &conn, int32_t id)
    : conn_(conn),
      id_(id),
      req_(exchange_acquire(conn.worker(), this, conn.peer(), conn.remote_view())) {}

Http2Stream::~Http2Stream() = default;

// A field goes into the request arena, name and value in one allocation (copy_small).
static inline std::string_view put(char *p, std::string_view s) {
    return {p, static_cast<size_t>(copy_small(p, s) - p)};
}

[[gnu::always_inline]] inline int Http2Stream::on_header(std::string_view name,
                                                         std::string_view value) {
    // Every field is checked, also those of a head already too large (nghttp2's HTTP
    // messaging pass is off: h2_request_checks.h).
    HeaderId id;
    h2::Field kind = checks_.on_field(name, value, false, id);
    if (kind == h2::Field::malformed) return do_refuse_malformed();
    if (!req_ || head_too_large_) return 0;  // the rest of the block is decoded, then dropped
    header_bytes_ += name.size() + value.size() + 32;  // RFC 9113 6.5.2's accounting
    if (kind >= h2::Field::host) ++header_fields_;     // not a pseudo-header
    bool too_many = header_fields_ > kMaxRequestHeaderFields;
    if (header_bytes_ > conn_.limits().client_max_header_size || too_many) {
        log_info("client %s: HTTP/2 header list over %s", conn_.remote_text(),
                 too_many ? "the field count limit" : "client_max_header_size");
        // Answered 431 once the block ends, as on HTTP/1.1 (SPEC section 7); the fields
        // kept so far stay in the request arena, the rest are not stored.
        head_too_large_ = true;
        return 0;
    }
    RequestHead &in = req_->input;
    Arena &a = req_->arena;
    // checks_ allowed which pseudo-headers, each once, host once; no userinfo ('@') in
    // :authority or host (RFC 9113 8.3.1: "user@host" is read as a different host by
    // different parsers).
    switch (kind) {
        case h2::Field::method:
            in.method = put(a.alloc(value.size()), value);
            return 0;
        case h2::Field::path:
            in.target = put(a.alloc(value.size()), value);
            return 0;
        case h2::Field::authority:
            in.authority = put(a.alloc(value.size()), value);
            return 0;
        case h2::Field::protocol:  // on CONNECT only (checks_.on_head_end)
            protocol_ = a.copy(value);
            return 0;
        case h2::Field::scheme:
            return 0;
        case h2::Field::host:
            // The server is chosen by :authority, an HTTP/1 upstream reads Host: they must
            // name the same (RFC 9113 8.3.1 says SHOULD; a proxy that routes by one and
            // forwards the other can be sent anywhere). Pseudo-headers came first, so
            // :authority is known.
            if (!in.authority.empty() && !iequals(value, in.authority))
                return do_refuse_malformed();
            in.headers.add("host", a.copy(value), HeaderId::host);
            return 0;
        case h2::Field::underscored:
            // As on HTTP/1.1: a backend may read X_User as X-User.
            if (!conn_.limits().underscores_in_headers) return 0;
            break;
        default:
            break;
    }
    // Counted here (names are lower case) rather than in another pass over the fields.
    if (name.size() == 6 && name == "cookie") ++cookies_;
    char *p = a.alloc(name.size() + value.size());
    in.headers.add(put(p, name), put(p + name.size(), value), id);
    return 0;
}

int Http2Stream::header_cb(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                           size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                           void *user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2Stream *s = static_cast<Http2Connection *>(user)->stream(frame->hd.stream_id);
    if (!s) return 0;
    std::string_view n(reinterpret_cast<const char *>(name), namelen);
    std::string_view v(reinterpret_cast<const char *>(value), valuelen);
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) return s->on_trailer(n, v);  // trailers
    return s->on_header(n, v);
}

int Http2Stream::do_refuse_malformed() {
    // nghttp2 resets with INTERNAL_ERROR unless the code is submitted first.
    do_reset_malformed();
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

void Http2Stream::do_reset_malformed() {
    // A malformed request is a stream error of type PROTOCOL_ERROR (RFC 9113 8.1.1); what
    // else arrives on the stream until the reset goes out is dropped.
    malformed_ = true;
    nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_PROTOCOL_ERROR);
    conn_.schedule_send();
}

int Http2Stream::on_trailer(std::string_view name, std::string_view value) {
    if (checks_.on_field(name, value, true) == h2::Field::malformed) return do_refuse_malformed();
    if (!req_) return 0;
    // The same limits as the head: HPACK lets one byte on the wire stand for a field of up
    // to 4 KiB from the dynamic table, so a trailer section of a few frames would otherwise
    // be copied into the request arena as hundreds of MiB.
    trailer_bytes_ += name.size() + value.size() + 32;
    if (trailer_bytes_ > conn_.limits().client_max_header_size ||
        ++trailer_fields_ > kMaxRequestHeaderFields) {
        log_info("client %s: HTTP/2 trailer section over the header limits", conn_.remote_text());
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM for this stream only
    }
    req_->input.trailers.add(req_->arena.copy(name), req_->arena.copy(value));
    return 0;
}

void Http2Stream::on_request_head(bool end_stream) {
    if (malformed_) return;
    if (!checks_.on_head_end() || (end_stream && !checks_.on_end())) {
        do_reset_malformed();
        return;
    }
    if (!req_) return;
    Request &r = *req_;
    RequestHead &in = r.input;
    in.version = HttpVersion::http2;
    in.scheme = conn_.tls() ? "https" : "http";
    r.ssl = conn_.ssl();
    r.client = conn_.socket();
    if (in.authority.empty()) in.authority = in.headers.get(HeaderId::host);
    in.content_length = checks_.content_length();       // digits, one field (or -1)
    in.chunked = !end_stream && in.content_length < 0;  // a body of unknown length follows
    if (end_stream) r.body_done = true;
    client_ended_ = end_stream;
    if (head_too_large_) {  // the connection and its other streams go on
        dispatched_ = true;
        exchange_begin(conn_.worker(), r);
        respond_error(r, 431);
        return;
    }
    bool connect = in.method == "CONNECT";
    if (connect && protocol_ == "websocket") {
        // From here on the HTTP/1.1 handshake it stands for; its DATA is the tunnel's.
        websocket_ = true;
        conn_.websocket_opened();
        websocket_key_ = h2::websocket_handshake_from_connect(r);
        r.body_done = true;
        early_ = make_evbuffer();
        connect = false;
    }
    // Several cookie fields are one Cookie line for HTTP/1.1 upstreams (RFC 9113 8.2.3).
    if (cookies_ > 1) {
        std::string joined;
        for (const Header &h : in.headers)
            if (iequals(h.name, "cookie"))
                joined += (joined.empty() ? "" : "; ") + std::string(h.value);
        in.headers.remove("cookie");
        in.headers.add("cookie", r.arena.copy(joined));
    }
    dispatched_ = true;
    exchange_begin(conn_.worker(), r);
    if (connect) {
        // A CONNECT tunnel to any host, or an extended CONNECT for another protocol: not
        // served (an HTTP/1.1 upstream would read "CONNECT /path").
        respond_error(r, 501);
        return;
    }
    int status = 0;
    HttpServer *server = exchange_route(r, conn_.group(), &status);
    if (!server) {
        respond_error(r, status);
        return;
    }
    exchange_run(r, *server);
}

void Http2Stream::on_data(const uint8_t *data, size_t len) {
    nghttp2_session *s = conn_.session();
    if (malformed_ || !checks_.on_data(len)) {
        // Nothing past content-length reaches a handler: a backend would read it as the
        // start of another request.
        nghttp2_session_consume(s, id_, len);
        if (!malformed_) do_reset_malformed();
        return;
    }
    if (tunnel_ && tunnel_->open()) {
        body_buffered_ += len;  // until the tunnel wrote it upstream (tunnel_consumed)
        tunnel_->on_client_data(data, len);
        return;
    }
    if (!req_ || req_->state == RequestState::responded || !dispatched_) {
        // Nobody will read it (answered already): acknowledge it at once so the client's
        // windows stay open.
        nghttp2_session_consume(s, id_, len);
        return;
    }
    if (websocket_) {  // sent before the answer: written upstream once the tunnel opens
        evbuffer_add(early_.get(), data, len);
        body_buffered_ += len;
        return;
    }
    Request &r = *req_;
    r.body_received += len;
    uint64_t limit =
        r.server ? r.server->config().client_max_body_size : conn_.limits().client_max_body_size;
    if (limit > 0 && r.body_received > limit) {
        log_info("client %s: request body over client_max_body_size", conn_.remote_text());
        nghttp2_session_consume(s, id_, len);
        if (r.handler) exchange_abort(r);
        if (!r.head_sent && r.state != RequestState::responded)
            respond_error(r, 413);
        else
            do_reset(NGHTTP2_CANCEL);
        return;
    }
    evbuffer_add(r.body.get(), data, len);
    body_buffered_ += len;
    if (r.handler) r.handler->on_request_body(r);
}

void Http2Stream::on_trailers_end(bool end_stream) {
    if (malformed_) return;
    if (!end_stream) {  // a trailer section ends the stream (RFC 9113 8.1)
        do_reset_malformed();
        return;
    }
    on_request_end();
}

void Http2Stream::on_request_end() {
    if (malformed_) return;
    if (!checks_.on_end()) {  // fewer body bytes than content-length said
        do_reset_malformed();
        return;
    }
    client_ended_ = true;
    if (tunnel_) tunnel_->on_client_end();
    if (!req_ || req_->body_done) return;
    req_->body_done = true;
    if (req_->handler && req_->state != RequestState::responded)
        req_->handler->on_request_body(*req_);
}

void Http2Stream::resume_body(Request &req) noexcept {
    size_t left = evbuffer_get_length(req.body.get());
    if (left >= body_buffered_) return;
    // What the handler took leaves the windows: the client may send that much more.
    nghttp2_session_consume(conn_.session(), id_, body_buffered_ - left);
    body_buffered_ = left;
    conn_.schedule_send();
}

// The three digits of every status from 100 to 599, in static storage: a response's
// :status points into it (borrowed by nghttp2) instead of being formatted into the arena.
static constexpr int kStatusFirst = 100, kStatusLast = 599;
static constexpr auto kStatusDigits = [] {
    std::array<char, 3 * (kStatusLast - kStatusFirst + 1)> t{};
    for (int s = kStatusFirst; s <= kStatusLast; ++s) {
        size_t i = 3 * static_cast<size_t>(s - kStatusFirst);
        t[i] = char('0' + s / 100);
        t[i + 1] = char('0' + s / 10 % 10);
        t[i + 2] = char('0' + s % 10);
    }
    return t;
}();

static std::string_view status_digits(Arena &a, int status) {
    if (status >= kStatusFirst && status <= kStatusLast)
        return {kStatusDigits.data() + 3 * (status - kStatusFirst), 3};
    char *out = a.alloc(3);  // not a status HTTP defines: its last three digits
    out[0] = char('0' + status / 100 % 10);
    out[1] = char('0' + status / 10 % 10);
    out[2] = char('0' + status % 10);
    return {out, 3};
}

static ssize_t read_body_cb(nghttp2_session *, int32_t, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *) {
    return static_cast<Http2Stream *>(source->ptr)->read_body(buf, length, flags);
}

void Http2Stream::do_websocket_answer(Request &req) {
    ResponseHead &r = req.response;
    if (r.status == 101) {
        // torii is the WebSocket client toward the upstream: the accept proves the upstream
        // read this handshake (the HTTP/2 client has no key to check it with).
        if (h2::websocket_accept_matches(websocket_key_, r.headers.get("sec-websocket-accept"))) {
            tunnel_accepted_ = true;
            r.status = 200;
            r.content_length = -1;
            r.no_body = false;
            r.headers.remove("sec-websocket-accept");
            return;
        }
        log_warn("upstream %.*s: WebSocket handshake answered with a wrong Sec-WebSocket-Accept",
                 static_cast<int>(req.upstream_addr.size()), req.upstream_addr.data());
        r.headers.clear();
        r.status = 502;
        r.content_length = 0;
        r.no_body = true;
        return;
    }
    if (r.status >= 200 && r.status < 300) {
        log_warn("upstream %.*s: answered a WebSocket handshake with %d, not 101",
                 static_cast<int>(req.upstream_addr.size()), req.upstream_addr.data(), r.status);
        r.status = 502;
    }
}

void Http2Stream::send_head(Request &req) noexcept {
    if (websocket_) do_websocket_answer(req);
    ResponseHead &r = req.response;
    Arena &a = req.arena;
    h2::NvList nv(a, r.headers.size() + 2);
    nv.borrow();  // names and values live in the arena, config or static storage
    nv.add(":status", status_digits(a, r.status));
    bool bodiless = r.no_body || req.input.method == "HEAD" || r.status == 204 || r.status == 304 ||
                    r.status < 200 || r.content_length == 0;
    if (r.content_length >= 0 && r.status != 204 && r.status != 304 && r.status >= 200) {
        char *num = a.alloc(24);
        size_t n = format_u64(num, static_cast<uint64_t>(r.content_length));
        nv.add("content-length", {num, n});
    }
    for (const Header &h : r.headers)
        nv.add_field(h);
    response_started_ = true;
    req.head_sent = true;
    int rv;
    if (bodiless) {
        out_.end_queued = true;
        rv = nghttp2_submit_response(conn_.session(), id_, nv.data(), nv.size(), nullptr);
    } else {
        nghttp2_data_provider provider;
        provider.source.ptr = this;
        provider.read_callback = read_body_cb;
        rv = nghttp2_submit_response(conn_.session(), id_, nv.data(), nv.size(), &provider);
    }
    if (rv != 0)
        log_warn("HTTP/2 stream %d: cannot submit the response: %s", id_, nghttp2_strerror(rv));
    conn_.schedule_send();
}

void Http2Stream::send_body(Request &req, evbuffer *data) noexcept {
    size_t n = evbuffer_get_length(data);
    if (n == 0) return;
    req.bytes_sent += n;
    out_.add(conn_.session(), id_, data, &req.arena);
    conn_.schedule_send();
}

void Http2Stream::send_end(Request &req, const HeaderList *trailers) noexcept {
    req.state = RequestState::responded;
    // A body nobody will read (answered early): release its flow-control credit.
    size_t unread = evbuffer_get_length(req.body.get());
    if (unread) {
        evbuffer_drain(req.body.get(), unread);
        resume_body(req);
    }
    out_.end(conn_.session(), id_, trailers);
    conn_.schedule_send();
}

ssize_t Http2Stream::read_body(uint8_t *buf, size_t length, uint32_t *flags) {
    if (!req_) {  // the exchange is over (nghttp2 does not ask then; be safe)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    ssize_t n = out_.read(conn_.session(), id_, req_->arena, buf, length, flags);
    if (watch_drain_ && out_.pending() <= output_high() / 4) {
        watch_drain_ = false;
        conn_.queue_drained(this);  // told after this send round, outside nghttp2
    }
    return n;
}

void Http2Stream::notify_drained() {
    if (finished_) return;
    if (tunnel_)
        tunnel_->on_client_drained();
    else if (req_ && req_->handler)
        req_->handler->on_response_drained(*req_);
}

void Http2Stream::tunnel_to_client(evbuffer *data) {
    out_.add(conn_.session(), id_, data, nullptr);  // a tunnel's bytes: no end in sight
    conn_.schedule_send();
}

void Http2Stream::tunnel_end_to_client() {
    out_.end(conn_.session(), id_, nullptr);
    conn_.schedule_send();
}

bool Http2Stream::tunnel_client_full() const {
    return out_.pending() >= output_high();
}

void Http2Stream::tunnel_consumed(size_t n) {
    nghttp2_session_consume(conn_.session(), id_, n);
    body_buffered_ = n < body_buffered_ ? body_buffered_ - n : 0;
    conn_.schedule_send();
}

void Http2Stream::do_reset(uint32_t code) {
    nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id_, code);
    conn_.schedule_send();
}

void Http2Stream::send_abort(Request &req) noexcept {
    // A response cut short: HTTP/2 has no truncated body, only a reset stream.
    req.state = RequestState::responded;
    do_reset(NGHTTP2_INTERNAL_ERROR);
}

void Http2Stream::send_reset(Request &req) noexcept {
    req.state = RequestState::responded;
    do_reset(NGHTTP2_CANCEL);
}

void Http2Stream::send_continue(Request &) noexcept {}  // HTTP/2 clients do not wait for it

void Http2Stream::send_interim(Request &req, int status, const HeaderList &fields) noexcept {
    if (req.head_sent) return;
    h2::NvList nv(req.arena, fields.size() + 1);
    nv.add(":status", status_digits(req.arena, status));
    for (const Header &h : fields)
        nv.add_field(h);
    nghttp2_submit_headers(conn_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, nv.data(), nv.size(),
                           nullptr);
    conn_.schedule_send();
}

bool Http2Stream::output_full(const Request &) const noexcept {
    return out_.pending() >= output_high();
}

void Http2Stream::watch_output_drain(Request &) noexcept {
    watch_drain_ = true;
}

void Http2Stream::start_tunnel(Request &req, std::unique_ptr<Socket> upstream,
                               InFlight in_flight) noexcept {
    req.state = RequestState::responded;
    if (!upstream) {  // nothing to relay to (a 101 from an HTTP/2 upstream cannot happen)
        do_reset(NGHTTP2_INTERNAL_ERROR);
        return;
    }
    const ServerConfig &cfg = req.server ? req.server->config() : conn_.limits();
    Millis idle = cfg.tunnel_idle_timeout > 0 ? cfg.tunnel_idle_timeout
                                              : conn_.worker().config().main.tunnel_idle_timeout;
    // The stream owns the socket from now on, also when it is not used: it may be inside
    // one of its own callbacks, and goes with the stream after them.
    tunnel_ = std::make_unique<Http2Tunnel>(*this, std::move(upstream), std::move(in_flight), idle);
    if (!websocket_ || !tunnel_accepted_) {  // the 502 went out instead
        tunnel_->close(true);
        return;
    }
    tunnel_->start(early_.get(), client_ended_);
}

void Http2Stream::on_response_sent() {
    // A WebSocket handshake answered without a tunnel (refused, or torii's own answer):
    // the client's side of the stream would stay open waiting for nothing. RFC 9113 8.1
    // lets a server that answered in full end it with RST_STREAM(NO_ERROR).
    if (websocket_ && !tunnel_accepted_ && !client_ended_)
        nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
}

void Http2Stream::on_close(uint32_t error_code) {
    if (finished_) return;
    finished_ = true;
    if (websocket_) conn_.websocket_closed();
    if (tunnel_) {
        // One log line for the whole tunnel, as for HTTP/1.1: its bytes each way.
        tunnel_->close(error_code != NGHTTP2_NO_ERROR);
        if (req_) {
            req_->bytes_sent = tunnel_->bytes_to_client();
            req_->body_received = tunnel_->bytes_from_client();
        }
    }
    if (body_buffered_) {
        // Body the handler never took (the stream was reset, or the client left): with
        // automatic WINDOW_UPDATE off, the connection's window would shrink for good.
        nghttp2_session_consume_connection(conn_.session(), body_buffered_);
        body_buffered_ = 0;
        conn_.schedule_send();
    }
    if (req_) {
        // A stream torii reset as malformed (its body ended short of content-length) may
        // close as NO_ERROR once its response was sent: still not a request that completed.
        if (req_->state != RequestState::responded || error_code != NGHTTP2_NO_ERROR || malformed_)
            if (dispatched_) exchange_abort(*req_);
        if (dispatched_) exchange_finish(*req_);
        exchange_release(conn_.worker(), req_);
        req_ = nullptr;
    }
    conn_.stream_closed(this);
}

}  // namespace torii
