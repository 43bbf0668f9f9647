// llhttp glue for both directions of HTTP/1.x: requests from clients (server side) and
// responses from upstreams (client side). It fills a RequestHead / ResponseHead with views
// into an Arena, and moves body bytes from the socket's input evbuffer to a body evbuffer
// without copying them (evbuffer_remove_buffer relinks whole chains); a small read can also
// be parsed where the socket read it, with one copy of its body bytes. Framing bytes (chunk
// sizes, CRLFs) are validated by llhttp and dropped: the writer re-frames for the other side.
//
// feed() stops at each event the owner must act on: the end of the head (so it can route
// before any body byte moves) and the end of the message (so a pipelined request waits for
// the previous response).
#pragma once

#include <event2/buffer.h>
#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/base/arena.h"
#include "core/http/message.h"

namespace torii {

enum class ParseEvent {
    need_more,         // input exhausted; call again when more arrives
    head_complete,     // the head is in head(); body bytes follow
    message_complete,  // the message (body and trailers) is complete
    body_full,         // body_out holds body_limit bytes: drain it, then call again
    upgrade,           // a 101 / CONNECT: bytes after the head belong to the tunnel
    error,             // malformed: error_status() and error_reason() say why
};

// An upstream's response head (status line and fields, as counted for requests) past this
// is refused (502): without a bound an upstream could grow a request's memory until the read
// timeout. Envoy's default is 60 KiB, nginx's proxy_buffer_size 4-8 KiB.
inline constexpr uint64_t kMaxResponseHeadSize = 64 * 1024;

class Http1Parser {
public:
    enum class Kind { request, response };

    explicit Http1Parser(Kind kind);
    Http1Parser(const Http1Parser &) = delete;
    Http1Parser &operator=(const Http1Parser &) = delete;

    // Forgets everything, for a fresh connection (a retry on another upstream).
    void reset();

    // Starts a new message whose head is written to `req` (request kind) or `resp`
    // (response kind), with strings in `arena`.
    void begin_request(RequestHead *req, Arena *arena, uint64_t max_head_size);
    void begin_response(ResponseHead *resp, Arena *arena, bool request_was_head);
    // Request header names with '_' are dropped unless allowed (nginx's
    // underscores_in_headers): a backend that maps '-' and '_' alike (CGI, WSGI) would
    // otherwise read `X_User` as the `X-User` a plugin or torii vouches for.
    void set_allow_underscores(bool allow) { allow_underscores_ = allow; }

    // Parses from `in` and moves body bytes to `body_out` (may be null until the owner has
    // seen head_complete, which always comes first). Body bytes stop moving once
    // `body_limit` bytes are buffered in body_out: the owner resumes when it drained them.
    //
    // `fresh` are bytes that came after what `in` holds and are not in it (Socket::take_unread:
    // a read left in the socket's buffer). They are parsed where they lie when nothing is
    // ahead of them; what this call does not consume is added to `in` before it returns, so
    // the caller may reuse their memory afterwards.
    ParseEvent feed(evbuffer *in, evbuffer *body_out, size_t body_limit = SIZE_MAX,
                    std::string_view fresh = {});
    // The peer closed: completes a read-until-close body, or returns error.
    ParseEvent finish();

    // Responses in the usual form (http1_usual_response.h) skip llhttp unless this is off:
    // the unit tests and the fuzz target compare both ways.
    void set_usual_responses(bool on) { usual_on_ = on; }

    // A usual response is HTTP/1.1 with a length and no Connection: close.
    bool keep_alive() const { return usual_ || llhttp_should_keep_alive(&parser_) != 0; }
    bool message_needs_eof() const { return !usual_ && llhttp_message_needs_eof(&parser_) != 0; }
    bool in_head() const { return state_ == State::head; }
    bool in_body() const { return state_ == State::body; }
    uint64_t body_bytes() const { return body_bytes_; }
    int error_status() const { return error_status_; }
    const char *error_reason() const { return error_reason_; }

private:
    enum class State { idle, head, body, done };
    static const llhttp_settings_t settings_;

    static int on_message_begin(llhttp_t *p);
    static int on_url(llhttp_t *p, const char *at, size_t len);
    static int on_status(llhttp_t *p, const char *at, size_t len);
    static int on_header_field(llhttp_t *p, const char *at, size_t len);
    static int on_header_value(llhttp_t *p, const char *at, size_t len);
    static int on_header_value_complete(llhttp_t *p);
    static int on_headers_complete(llhttp_t *p);
    static int on_body(llhttp_t *p, const char *at, size_t len);
    static int on_message_complete(llhttp_t *p);

    int count_head_bytes(size_t len);
    void take_piece(std::string_view &s, const char *at, size_t len);
    void materialize() {
        if (raw_lo_) copy_raw_pieces();
    }
    void copy_raw_pieces();
    int check_request_framing(RequestHead *r);
    int fail(int status, const char *reason);
    void consume_to(const char *pos);
    bool execute(const char *base, size_t len, ParseEvent *event);
    bool may_take_usual() const;
    size_t take_usual_head(const char *base, size_t len);
    size_t take_usual_body(const char *base, size_t len);
    void usual_body_took(size_t n);
    void usual_body_done();

    llhttp_t parser_;
    Kind kind_;
    State state_ = State::idle;
    bool head_pending_ = false;      // head_complete not yet returned
    bool complete_pending_ = false;  // message_complete not yet returned
    bool error_pending_ = false;     // the body failed in the call that ended the head
    bool resumed_ = false;           // llhttp was resumed from a pause since the last execute
    bool failed_here_ = false;       // a callback called fail(): its status and reason stand
    RequestHead *req_ = nullptr;
    ResponseHead *resp_ = nullptr;
    Arena *arena_ = nullptr;
    HeaderList *fields_ = nullptr;  // headers, then trailers
    std::string_view field_, value_;
    bool in_value_ = false;
    // Head pieces (target, reason, names, values) first point into the chunk being parsed;
    // when the head completes, or the chunk ends first, [raw_lo_, raw_hi_) is copied into
    // the arena in one piece and those views are moved onto the copy (one copy per head
    // instead of one per piece). Fields of *fields_ from raw_fields_from_ on may be raw.
    static constexpr ptrdiff_t kMaxRawGap = 16;  // bytes between pieces copied with them
    const char *raw_lo_ = nullptr;
    const char *raw_hi_ = nullptr;
    size_t raw_fields_from_ = 0;
    bool request_was_head_ = false;
    bool allow_underscores_ = false;
    uint16_t hosts_ = 0;    // Host fields of the head being parsed
    bool te_seen_ = false;  // a Transfer-Encoding field in it
    uint64_t head_bytes_ = 0;
    uint64_t max_head_size_ = UINT64_MAX;
    uint64_t body_bytes_ = 0;
    // The message in hand is a usual response, parsed without llhttp: its body is the next
    // usual_left_ bytes. llhttp_kept_alive_: llhttp's keep-alive verdict on the last message
    // it read, taken when it ended (true before any): a usual response may follow only that.
    bool usual_on_ = true;
    bool usual_ = false;
    bool llhttp_kept_alive_ = true;
    uint64_t usual_left_ = 0;
    int error_status_ = 400;
    const char *error_reason_ = "";

    // Per feed() call: the evbuffer being parsed (null while parsing bytes in place) and how
    // far its first chunk is consumed.
    evbuffer *in_ = nullptr;
    evbuffer *body_out_ = nullptr;
    const char *cursor_ = nullptr;
};

}  // namespace torii
