#include "core/http/http1_parser.h"

#include <algorithm>
#include <cstring>

#include "core/http/http1_usual_response.h"

namespace torii {

const llhttp_settings_t Http1Parser::settings_ = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = on_message_begin;
    s.on_url = on_url;
    s.on_status = on_status;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_header_value_complete = on_header_value_complete;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
}();

static Http1Parser *self(llhttp_t *p) {
    return static_cast<Http1Parser *>(p->data);
}

Http1Parser::Http1Parser(Kind kind) : kind_(kind) {
    llhttp_init(&parser_, kind == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
    parser_.data = this;
}

void Http1Parser::reset() {
    llhttp_init(&parser_, kind_ == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
    parser_.data = this;
    state_ = State::idle;
    head_pending_ = complete_pending_ = error_pending_ = resumed_ = failed_here_ = false;
    usual_ = false;
    llhttp_kept_alive_ = true;
    usual_left_ = 0;
}

void Http1Parser::begin_request(RequestHead *req, Arena *arena, uint64_t max_head_size) {
    req_ = req;
    arena_ = arena;
    max_head_size_ = max_head_size;
    state_ = State::idle;
}

void Http1Parser::begin_response(ResponseHead *resp, Arena *arena, bool request_was_head) {
    resp_ = resp;
    arena_ = arena;
    max_head_size_ = kMaxResponseHeadSize;
    request_was_head_ = request_was_head;
    state_ = State::idle;
}

int Http1Parser::fail(int status, const char *reason) {
    error_status_ = status;
    error_reason_ = reason;
    failed_here_ = true;
    return HPE_USER;
}

int Http1Parser::count_head_bytes(size_t len) {
    head_bytes_ += len;
    if (head_bytes_ > max_head_size_)
        return kind_ == Kind::request ? fail(431, "request header section too large")
                                      : fail(502, "response head over 64 KiB");
    return 0;
}

void Http1Parser::take_piece(std::string_view &s, const char *at, size_t len) {
    if (len == 0) return;
    // More than a separator's few bytes since the last piece (white space before a value,
    // which the limit does not count): the span so far is copied now, so the gap is never
    // copied. Without this "A:" and 200,000 spaces before each value cost a few bytes of
    // the limit and 200 KB of arena each (found in review).
    if (raw_lo_ && at - raw_hi_ > kMaxRawGap) copy_raw_pieces();
    if (s.empty()) {  // the usual case: the piece arrived whole; keep pointing at it
        if (!raw_lo_) raw_lo_ = at;
        raw_hi_ = at + len;
        s = {at, len};
        return;
    }
    // A second piece of the same item (obs-fold, or the item went on in a later chunk):
    // both into the arena, joined.
    arena_->append(s, at, len);
}

void Http1Parser::copy_raw_pieces() {
    auto lo = reinterpret_cast<uintptr_t>(raw_lo_),
         span = reinterpret_cast<uintptr_t>(raw_hi_) - lo;
    char *copy = arena_->alloc(span);
    std::memcpy(copy, raw_lo_, span);
    // One unsigned compare tells a view into the span (a view made before it, in the arena or
    // null, wraps around to a large offset); an empty view moved along does no harm.
    auto rebase = [&](std::string_view &v) {
        uintptr_t off = reinterpret_cast<uintptr_t>(v.data()) - lo;
        if (off < span) v = {copy + off, v.size()};
    };
    if (kind_ == Kind::request) {
        if (req_) rebase(req_->target);
    } else if (resp_) {
        rebase(resp_->reason);
    }
    rebase(field_);
    rebase(value_);
    if (fields_) {
        for (auto it = fields_->begin() + static_cast<ptrdiff_t>(raw_fields_from_);
             it != fields_->end(); ++it) {
            rebase(it->name);
            rebase(it->value);
        }
        raw_fields_from_ = fields_->size();
    }
    raw_lo_ = raw_hi_ = nullptr;
}

void Http1Parser::consume_to(const char *pos) {
    if (pos > cursor_) {
        if (in_) evbuffer_drain(in_, static_cast<size_t>(pos - cursor_));
        cursor_ = pos;
    }
}

int Http1Parser::on_message_begin(llhttp_t *p) {
    Http1Parser *s = self(p);
    if (s->kind_ == Kind::request ? !s->req_ : !s->resp_) return s->fail(500, "no message");
    s->state_ = State::head;
    s->usual_ = false;
    s->llhttp_kept_alive_ = false;  // until this message ends and says otherwise
    s->failed_here_ = false;
    s->hosts_ = 0;
    s->te_seen_ = false;
    s->head_bytes_ = 0;
    s->body_bytes_ = 0;
    s->field_ = s->value_ = {};
    s->in_value_ = false;
    s->fields_ = s->kind_ == Kind::request ? &s->req_->headers : &s->resp_->headers;
    s->raw_lo_ = s->raw_hi_ = nullptr;
    s->raw_fields_from_ = s->fields_->size();
    return 0;
}

int Http1Parser::on_url(llhttp_t *p, const char *at, size_t len) {
    Http1Parser *s = self(p);
    if (int rc = s->count_head_bytes(len)) return rc;
    s->take_piece(s->req_->target, at, len);
    return 0;
}

int Http1Parser::on_status(llhttp_t *p, const char *at, size_t len) {
    Http1Parser *s = self(p);
    if (int rc = s->count_head_bytes(len)) return rc;
    s->take_piece(s->resp_->reason, at, len);
    return 0;
}

int Http1Parser::on_header_field(llhttp_t *p, const char *at, size_t len) {
    Http1Parser *s = self(p);
    if (int rc = s->count_head_bytes(len)) return rc;
    s->take_piece(s->field_, at, len);
    return 0;
}

int Http1Parser::on_header_value(llhttp_t *p, const char *at, size_t len) {
    Http1Parser *s = self(p);
    if (int rc = s->count_head_bytes(len)) return rc;
    s->take_piece(s->value_, at, len);
    return 0;
}

int Http1Parser::on_header_value_complete(llhttp_t *p) {
    Http1Parser *s = self(p);
    if (s->fields_->size() >= kMaxRequestHeaderFields)
        return s->fail(431, "too many header fields");
    s->head_bytes_ += 4;  // ": " and CRLF count toward the limit as they do on the wire
    // Field names are tokens (RFC 9110 5.6.2): llhttp is built in strict mode, which also
    // refuses white space inside a name or before the colon ("X-Forwarded-For : v", RFC
    // 9112 5.1) that a backend trimming names would read as a field torii never saw.
    // A token has at least one character, but llhttp takes a line starting with the colon
    // (": v") as a field with an empty name, which torii would forward as it came (found
    // by t/fuzz/http1_request_fuzz.cc).
    if (s->field_.empty()) return s->fail(400, "empty header field name");
    // Empty views are fine; give an empty value a non-null pointer for printf-style users.
    s->fields_->add(s->field_, s->value_.data() ? s->value_ : std::string_view("", 0));
    HeaderId id = s->fields_->back().id;  // noted for check_request_framing
    // Names with '_' are dropped (underscores_in_headers); the names torii knows have none,
    // so only the others are scanned.
    if (id == HeaderId::other && s->kind_ == Kind::request && !s->allow_underscores_ &&
        s->field_.find('_') != std::string_view::npos)
        s->fields_->truncate(s->fields_->size() - 1);
    s->field_ = s->value_ = {};
    s->hosts_ += id == HeaderId::host;
    s->te_seen_ |= id == HeaderId::transfer_encoding;
    return 0;
}

// RFC 9112 6.1 and 6.3: what decides where a request body ends must be unambiguous, or a
// backend could split the stream into requests differently from torii (smuggling). Checked
// before the request is dispatched, so nothing of a refused request is forwarded.
int Http1Parser::check_request_framing(RequestHead *r) {
    if (hosts_ > 1) return fail(400, "more than one Host header");
    if (!te_seen_) return 0;  // the usual request: one Host, no Transfer-Encoding
    int codings = 0;
    bool chunked_last = false, chunked_twice = false, unknown = false;
    for (const Header &h : r->headers) {
        if (h.id == HeaderId::transfer_encoding) {
            std::string_view v = h.value;
            while (!v.empty()) {
                size_t comma = v.find(',');
                std::string_view item = v.substr(0, comma);
                while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
                    item.remove_prefix(1);
                while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
                    item.remove_suffix(1);
                if (!item.empty()) {
                    ++codings;
                    if (iequals(item, "chunked")) {
                        chunked_twice |= chunked_last || codings > 1;
                        chunked_last = true;
                    } else {
                        unknown = true;
                        chunked_last = false;
                    }
                }
                if (comma == std::string_view::npos) break;
                v.remove_prefix(comma + 1);
            }
        }
    }
    if (r->version == HttpVersion::http10)
        return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (r->content_length >= 0) return fail(400, "both Content-Length and Transfer-Encoding");
    // Only chunked is supported (as nginx): anything else cannot be framed, answer 501.
    if (unknown) return fail(501, "unsupported Transfer-Encoding");
    if (chunked_twice || !chunked_last || codings != 1)
        return fail(400, "invalid Transfer-Encoding");
    return 0;
}

int Http1Parser::on_headers_complete(llhttp_t *p) {
    Http1Parser *s = self(p);
    s->materialize();  // the owner reads the head after this chunk is drained
    s->state_ = State::body;
    bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (s->kind_ == Kind::request) {
        RequestHead *r = s->req_;
        r->method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
        r->version =
            (p->http_major == 1 && p->http_minor == 0) ? HttpVersion::http10 : HttpVersion::http11;
        r->content_length = has_length ? static_cast<int64_t>(p->content_length) : -1;
        r->chunked = chunked;
        r->authority = r->headers.get(HeaderId::host);
        std::string_view expect = r->headers.get(HeaderId::expect);
        r->expect_continue = iequals(expect, "100-continue");
        r->upgrade = p->upgrade != 0;
        if (r->target.empty()) return s->fail(400, "empty request target");
        if (r->version == HttpVersion::http11 && !r->headers.contains(HeaderId::host))
            return s->fail(400, "missing Host header");
        if (int rc = s->check_request_framing(r)) return rc;
        s->head_pending_ = true;  // only a head that passed is reported
        // Trailers (after a chunked body) go to their own list.
        s->fields_ = &r->trailers;
        s->raw_fields_from_ = r->trailers.size();
        // A request without a body (no length, or 0, not chunked, no upgrade) ends here: llhttp
        // goes on to on_message_complete, which pauses, in this same call (head_pending_ is
        // reported first), instead of a second call with nothing to read.
        if (!chunked && r->content_length <= 0 && !r->upgrade) return 0;
        return HPE_PAUSED;
    }
    ResponseHead *r = s->resp_;
    r->status = p->status_code;
    // llhttp takes any number of digits; a status outside 100..599 is invalid (RFC 9110 15)
    // and one below 200 would pass for an interim answer: "HTTP/1.1 20 OK" went to the
    // client as a bare "500" head, and the upstream's next bytes as its body.
    if (r->status < 100 || r->status > 599) return s->fail(502, "invalid response status");
    // A 101 must name the protocol it switches to (RFC 9110 15.2.2). Without Upgrade and
    // Connection: upgrade llhttp reads it as an ordinary response with a body, while the
    // owner waits for the tunnel a 101 starts and would pass that body on as raw bytes,
    // a response of the upstream's making (found by t/fuzz/http1_response_fuzz.cc).
    if (r->status == 101 && !p->upgrade) return s->fail(502, "101 response without Upgrade");
    // Reported even when the body or trailers parsed on in this same call fail afterwards
    // (execute() reports the head first): bytes cut after the head would show it too.
    s->head_pending_ = true;
    r->content_length = has_length ? static_cast<int64_t>(p->content_length) : -1;
    r->chunked = chunked;
    r->no_body = s->request_was_head_ || r->status < 200 || r->status == 204 || r->status == 304;
    // Neither a length nor chunked: the body ends when the upstream closes, which cannot
    // tell a complete body from a cut one; the client is told the same way (RFC 9112 6.3).
    r->until_close = !r->no_body && llhttp_message_needs_eof(p) != 0;
    s->fields_ = &r->trailers;
    s->raw_fields_from_ = r->trailers.size();
    s->head_bytes_ = 0;  // trailers have a bound of their own, not what the head left
    // A response without a body still reports head_complete first, then message_complete:
    // returning 1 tells llhttp not to expect a body, and on_message_complete pauses next.
    if (r->no_body && r->status != 101) return 1;
    // A body goes on in this same call when the owner gave it a place (reported after the
    // head all the same), rather than a pause and a second llhttp_execute; a 101 pauses for
    // the tunnel.
    if (r->status != 101 && s->body_out_) return 0;
    return HPE_PAUSED;
}

int Http1Parser::on_body(llhttp_t *p, const char *at, size_t len) {
    Http1Parser *s = self(p);
    if (!s->body_out_) return s->fail(500, "body before the owner was ready");
    s->consume_to(at);  // framing before the data (chunk size line, CRLF)
    if (s->in_)
        evbuffer_remove_buffer(s->in_, s->body_out_, len);
    else
        evbuffer_add(s->body_out_, at, len);  // parsed in place: the one copy a read makes
    s->cursor_ = at + len;
    s->body_bytes_ += len;
    return 0;
}

int Http1Parser::on_message_complete(llhttp_t *p) {
    Http1Parser *s = self(p);
    // Taken now: once llhttp has run its end-of-message step, its flags are cleared and
    // llhttp_should_keep_alive() no longer tells a message that said close (found in review:
    // a 100 Continue with Connection: close, then a usual 200 in the next read).
    if (s->kind_ == Kind::response) s->llhttp_kept_alive_ = llhttp_should_keep_alive(p) != 0;
    s->materialize();  // trailers
    s->state_ = State::done;
    s->complete_pending_ = true;
    // The next message must wait until the owner has finished this one (pipelining).
    if (s->kind_ == Kind::request)
        s->req_ = nullptr;
    else
        s->resp_ = nullptr;
    return HPE_PAUSED;
}

// A usual response may start here: a response is awaited, not after a HEAD request (its
// head announces a body that does not come), and not after a message llhttp read as the
// connection's last (llhttp refuses what follows one; so must this).
bool Http1Parser::may_take_usual() const {
    return kind_ == Kind::response && state_ == State::idle && usual_on_ && resp_ &&
           !request_was_head_ && llhttp_kept_alive_;
}

// The head of a usual response at base, if it is one (0 otherwise); then its body bytes
// that follow in the same bytes, when the owner gave them a place (as llhttp's path does).
size_t Http1Parser::take_usual_head(const char *base, size_t len) {
    size_t n = parse_usual_response_head(base, len, max_head_size_, resp_, arena_);
    if (n == 0) return 0;
    usual_ = true;
    usual_left_ = static_cast<uint64_t>(resp_->content_length);
    body_bytes_ = 0;
    state_ = State::body;
    head_pending_ = true;
    if (usual_left_ == 0) {
        usual_body_done();
        return n;
    }
    return body_out_ ? n + take_usual_body(base + n, len - n) : n;
}

// Up to the rest of a usual response's body from [base, base + len) into body_out_ (one
// copy: these bytes are a read in place).
size_t Http1Parser::take_usual_body(const char *base, size_t len) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, usual_left_));
    evbuffer_add(body_out_, base, n);
    usual_body_took(n);
    return n;
}

// n more bytes of a usual response's body went to the owner; the last ends the message.
void Http1Parser::usual_body_took(size_t n) {
    body_bytes_ += n;
    usual_left_ -= n;
    if (usual_left_ == 0) usual_body_done();
}

void Http1Parser::usual_body_done() {
    state_ = State::done;
    complete_pending_ = true;
    resp_ = nullptr;  // as on_message_complete: the next message waits for begin_response
}

ParseEvent Http1Parser::feed(evbuffer *in, evbuffer *body_out, size_t body_limit,
                             std::string_view fresh) {
    body_out_ = body_out;
    if (!fresh.empty()) {
        // In place only when these bytes come next and nothing is to be reported first;
        // otherwise they join the input behind what is there.
        bool next =
            !head_pending_ && !error_pending_ && !complete_pending_ && state_ != State::done &&
            evbuffer_get_length(in) == 0 &&
            !(state_ == State::body && body_out && evbuffer_get_length(body_out) >= body_limit);
        size_t usual = 0;
        if (next && may_take_usual())
            usual = take_usual_head(fresh.data(), fresh.size());
        else if (next && usual_ && state_ == State::body && body_out)
            usual = take_usual_body(fresh.data(), fresh.size());
        if (usual) {
            evbuffer_add(in, fresh.data() + usual, fresh.size() - usual);
        } else if (!next || (usual_ && state_ == State::body)) {
            evbuffer_add(in, fresh.data(), fresh.size());
        } else {
            ParseEvent ev;
            in_ = nullptr;
            bool go_on = execute(fresh.data(), fresh.size(), &ev);
            const char *end = fresh.data() + fresh.size();
            if (cursor_ < end) evbuffer_add(in, cursor_, static_cast<size_t>(end - cursor_));
            if (!go_on) return ev;
        }
    }
    in_ = in;
    for (;;) {
        if (head_pending_) {
            head_pending_ = false;
            return ParseEvent::head_complete;
        }
        if (error_pending_) {
            error_pending_ = false;
            return ParseEvent::error;
        }
        if (complete_pending_) {
            complete_pending_ = false;
            return !usual_ && parser_.upgrade ? ParseEvent::upgrade : ParseEvent::message_complete;
        }
        if (state_ == State::done) return ParseEvent::need_more;  // owner must begin_*()
        size_t avail = evbuffer_get_length(in);
        if (usual_ && state_ == State::body) {  // a usual response's body: only counted
            if (avail == 0) return ParseEvent::need_more;
            if (!body_out) {
                error_status_ = 500;
                error_reason_ = "body before the owner was ready";
                return ParseEvent::error;
            }
            if (evbuffer_get_length(body_out) >= body_limit) return ParseEvent::body_full;
            size_t n = static_cast<size_t>(std::min<uint64_t>(avail, usual_left_));
            evbuffer_remove_buffer(in, body_out, n);
            usual_body_took(n);
            continue;
        }
        evbuffer_iovec v;
        if (avail == 0) {
            // After a pause, llhttp may still have steps that consume no input (a message
            // without body completes right after its head): run them with an empty span.
            if (!resumed_) return ParseEvent::need_more;
            v.iov_base = const_cast<char *>("");
            v.iov_len = 0;
        } else {
            if (state_ == State::body && body_out && evbuffer_get_length(body_out) >= body_limit)
                return ParseEvent::body_full;
            if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1) return ParseEvent::need_more;
            if (may_take_usual()) {
                body_out_ = nullptr;  // its body moves from `in` in the loop, not copied
                size_t n = take_usual_head(static_cast<const char *>(v.iov_base), v.iov_len);
                body_out_ = body_out;
                if (n) {
                    evbuffer_drain(in, n);
                    continue;
                }
            }
        }
        ParseEvent ev;
        if (!execute(static_cast<const char *>(v.iov_base), v.iov_len, &ev)) return ev;
    }
}

// One llhttp_execute over [base, base + len), consuming what it parsed (from in_, unless
// parsing in place). True when feed() goes on (events pending, or more input); false with
// *event set otherwise.
bool Http1Parser::execute(const char *base, size_t len, ParseEvent *event) {
    resumed_ = false;
    cursor_ = base;
    llhttp_errno_t err = llhttp_execute(&parser_, base, len);
    materialize();  // a head (or trailers) going on in the next chunk, or refused
    const char *stop = err == HPE_OK ? base + len : llhttp_get_error_pos(&parser_);
    if (err == HPE_OK || err == HPE_PAUSED) {
        consume_to(stop);
        if (err == HPE_PAUSED) {
            llhttp_resume(&parser_);
            resumed_ = true;
        }
        return true;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        // Bytes after the head belong to the tunnel; the owner takes them from `in`.
        consume_to(stop);
        complete_pending_ = false;
        *event = ParseEvent::upgrade;
        return false;
    }
    // A callback's own verdict stands (llhttp reports one from on_headers_complete as
    // HPE_CB_HEADERS_COMPLETE, not HPE_USER).
    if (!failed_here_) {
        error_status_ = 400;
        error_reason_ = llhttp_get_error_reason(&parser_);
        if (!error_reason_) error_reason_ = llhttp_errno_name(err);
    }
    // A response's head is reported before an error in the body that followed it in the
    // same call (the head was whole and valid): the owner sees what it would have seen
    // had the bytes come in two reads, whatever the read sizes were.
    if (head_pending_) {
        head_pending_ = false;
        error_pending_ = true;
        *event = ParseEvent::head_complete;
        return false;
    }
    *event = ParseEvent::error;
    return false;
}

ParseEvent Http1Parser::finish() {
    if (state_ != State::body) {
        if (state_ == State::idle || state_ == State::done) return ParseEvent::need_more;
        error_status_ = 502;
        error_reason_ = "connection closed in the middle of a message head";
        return ParseEvent::error;
    }
    llhttp_errno_t err = usual_ ? HPE_INVALID_EOF_STATE : llhttp_finish(&parser_);
    if ((err == HPE_OK || err == HPE_PAUSED) && complete_pending_) {
        complete_pending_ = false;
        return ParseEvent::message_complete;
    }
    error_status_ = 502;
    error_reason_ = "connection closed before the message body ended";
    return ParseEvent::error;
}

}  // namespace torii
