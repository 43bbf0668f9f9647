// What both HTTP/2 sides do the same way with nghttp2: the client connections
// (http2_connection, http2_stream) and the upstream sessions (http2_upstream). Field lists
// live in the request's arena, the socket pumps respect the output watermark, and bodies
// are pulled by nghttp2's data provider.
#pragma once

#include <nghttp2/nghttp2.h>

#include <string_view>

#include "core/base/arena.h"
#include "core/base/libevent_ptr.h"
#include "core/http/headers.h"

namespace torii {

class Socket;

namespace h2 {

// Fields that describe an HTTP/1.1 connection and must not appear in HTTP/2 (RFC 9113
// 8.2.2), and Content-Length, which each side writes from the message's own length.
inline bool connection_specific(HeaderId id) {
    switch (id) {
        case HeaderId::connection:
        case HeaderId::keep_alive:
        case HeaderId::proxy_connection:
        case HeaderId::transfer_encoding:
        case HeaderId::upgrade:
        case HeaderId::content_length:
            return true;
        default:
            return false;
    }
}

// Copies `n` bytes of a field name to `dst` in ASCII lower case.
void copy_lower(char *dst, const char *src, size_t n);

// Name/value pairs for nghttp2_submit_*, in the request's arena: no allocation per
// message (nghttp2 copies them at submit time).
class NvList {
public:
    NvList(Arena &arena, size_t capacity);
    // nghttp2 keeps the pointers instead of copying the bytes (NGHTTP2_NV_FLAG_NO_COPY_*):
    // only for a frame of a stream whose bytes outlive it. A client stream's response is
    // such a frame: nghttp2 packs it while the stream is open, and the stream's request
    // (arena and response head) is released only by the stream-close callback.
    void borrow() { flags_ = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE; }
    // Inline, as add_field: a response head adds a handful of fields.
    void add(std::string_view name, std::string_view value) {
        if (n_ == capacity_) return;  // callers size the list for what they add
        v_[n_++] = {reinterpret_cast<uint8_t *>(const_cast<char *>(name.data())),
                    reinterpret_cast<uint8_t *>(const_cast<char *>(value.data())), name.size(),
                    value.size(), flags_};
    }
    // A field of an HTTP/1-shaped list: lower-cased, connection-specific ones left out.
    void add_field(const Header &h) {
        if (connection_specific(h.id)) return;
        // HTTP/2 field names are lower case (RFC 9113 8.2.2); HTTP/1 peers write them any way.
        char *p = arena_.alloc(h.name.size());
        copy_lower(p, h.name.data(), h.name.size());
        add({p, h.name.size()}, h.value);
    }
    nghttp2_nv *data() { return v_; }
    size_t size() const { return n_; }

private:
    Arena &arena_;
    nghttp2_nv *v_;
    size_t n_ = 0;
    size_t capacity_;
    uint8_t flags_ = NGHTTP2_NV_FLAG_NONE;
};

// Hands every byte of `in` to the session, then `fresh` (bytes that came after, left in the
// socket's read buffer: Socket::take_unread), parsed where they lie when `in` is empty;
// returns 0, or nghttp2's error (< 0). nghttp2 keeps no pointer into what it was given.
int recv_all(nghttp2_session *session, evbuffer *in, std::string_view fresh = {});

// Pulls frames into the socket until nghttp2 has no more, or the socket still holds `high`
// bytes after a flush (then a drain watch at `low` brings the caller back). Returns 0, or
// nghttp2's error.
int send_all(nghttp2_session *session, Socket &sock, size_t high, size_t low);

// A body toward the peer, pulled by a data provider of nghttp2. A short body (most API
// answers) is copied into the message's arena and read from there; an evbuffer is made
// only for more than kArenaBody bytes: the evbuffer's creation, the chain moved into it
// and its removal cost about 300 instructions a response.
struct OutBody {
    // Body bytes one message may hold in its arena, in all (a stream of small pieces moves
    // to the evbuffer once past it).
    static constexpr size_t kArenaBody = 2048;

    EvbufferPtr buf;                       // made when the body outgrows the arena
    std::string_view held;                 // bytes in the arena not read yet (before buf's)
    size_t arena_bytes = 0;                // bytes ever put in the arena
    const HeaderList *trailers = nullptr;  // sent after the last DATA when not empty
    bool end_queued = false;               // no more bytes will be added
    bool deferred = false;                 // read() answered NGHTTP2_ERR_DEFERRED
    bool end_sent = false;                 // read() gave the end

    size_t pending() const { return held.size() + (buf ? evbuffer_get_length(buf.get()) : 0); }
    // More bytes (all of `data`, drained), or the end: the provider is woken if it was
    // waiting. `arena` holds short bodies; nullptr: always the evbuffer.
    void add(nghttp2_session *session, int32_t id, evbuffer *data, Arena *arena);
    void end(nghttp2_session *session, int32_t id, const HeaderList *trailers);
    // The data provider's read: deferred while empty, the end (and trailers) once all is out.
    ssize_t read(nghttp2_session *session, int32_t id, Arena &arena, uint8_t *dst, size_t len,
                 uint32_t *flags);

private:
    void resume(nghttp2_session *session, int32_t id);
};

}  // namespace h2
}  // namespace torii
