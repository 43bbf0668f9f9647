#include "modules/http2/h2_common.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/base/arena.h"
#include "core/net/socket.h"

namespace torii::h2 {

NvList::NvList(Arena &arena, size_t capacity) : arena_(arena), capacity_(capacity) {
    // The arena hands out 8-byte aligned memory, enough for nghttp2_nv.
    v_ = reinterpret_cast<nghttp2_nv *>(arena.alloc(capacity * sizeof(nghttp2_nv)));
}

// ASCII lower case, a word at a time: bit 7 of each byte of (b & 0x7f) + 0x3f is set from 'A'
// on, of (b & 0x7f) + 0x25 past 'Z'; where exactly one is set (and b is ASCII) 0x20 is
// added. `ones` is 0x01 in every byte of the word.
template <typename Word>
static inline Word fold_word(Word w) {
    constexpr Word ones = static_cast<Word>(~Word{0}) / 0xff;
    Word low7 = w & (ones * 0x7f);
    Word upper = ((low7 + ones * 0x3f) ^ (low7 + ones * 0x25)) & ~w & (ones * 0x80);
    return w | (upper >> 2);
}

template <typename Word>
static inline void fold_at(char *dst, const char *src) {
    Word w;
    std::memcpy(&w, src, sizeof w);
    w = fold_word(w);
    std::memcpy(dst, &w, sizeof w);
}

// The last word overlaps the one before it instead of a byte loop for the tail (folding reads
// only `src`, so a byte written twice gets the same value). A byte loop calling std::tolower
// cost 540 instructions for an upstream's response fields, a byte loop without it 300.
void copy_lower(char *dst, const char *src, size_t n) {
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            fold_at<uint64_t>(dst + i, src + i);
        fold_at<uint64_t>(dst + n - 8, src + n - 8);
    } else if (n >= 4) {
        fold_at<uint32_t>(dst, src);
        fold_at<uint32_t>(dst + n - 4, src + n - 4);
    } else {
        for (size_t i = 0; i < n; ++i)
            dst[i] = src[i] >= 'A' && src[i] <= 'Z' ? static_cast<char>(src[i] | 0x20) : src[i];
    }
}

int recv_all(nghttp2_session *session, evbuffer *in, std::string_view fresh) {
    if (!fresh.empty()) {
        if (evbuffer_get_length(in) != 0) {
            evbuffer_add(in, fresh.data(), fresh.size());
        } else {
            const auto *p = reinterpret_cast<const uint8_t *>(fresh.data());
            ssize_t rv = nghttp2_session_mem_recv(session, p, fresh.size());
            if (rv < 0) return static_cast<int>(rv);
            if (static_cast<size_t>(rv) < fresh.size())  // not without a pause, but kept if so
                evbuffer_add(in, p + rv, fresh.size() - static_cast<size_t>(rv));
        }
    }
    while (evbuffer_get_length(in) > 0) {
        evbuffer_iovec v;
        if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1) break;
        ssize_t rv =
            nghttp2_session_mem_recv(session, static_cast<const uint8_t *>(v.iov_base), v.iov_len);
        if (rv < 0) return static_cast<int>(rv);
        evbuffer_drain(in, static_cast<size_t>(rv));
    }
    return 0;
}

int send_all(nghttp2_session *session, Socket &sock, size_t high, size_t low) {
    bool blocked = false;
    for (;;) {
        // At the watermark, write first; stop only if the kernel takes no more, and then
        // with the socket still above it, so that its drain notice is sure to come.
        if (sock.pending_output() >= high) {
            sock.flush();
            if (sock.pending_output() >= high) {
                blocked = true;
                break;
            }
        }
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0) return static_cast<int>(n);
        if (n == 0) break;
        sock.write(data, static_cast<size_t>(n));
    }
    sock.flush();
    if (blocked) sock.watch_drain(low);
    return 0;
}

void OutBody::resume(nghttp2_session *session, int32_t id) {
    if (!deferred || id <= 0 || !session) return;
    deferred = false;
    nghttp2_session_resume_data(session, id);
}

void OutBody::add(nghttp2_session *session, int32_t id, evbuffer *data, Arena *arena) {
    size_t n = evbuffer_get_length(data);
    // Into the arena only while nothing else is waiting (the order of the bytes stays).
    if (arena && !buf && held.empty() && n <= kArenaBody - arena_bytes) {
        char *p = arena->alloc(n);
        evbuffer_remove(data, p, n);
        held = {p, n};
        arena_bytes += n;
    } else {
        if (!buf) buf = make_evbuffer();
        evbuffer_add_buffer(buf.get(), data);
    }
    resume(session, id);
}

void OutBody::end(nghttp2_session *session, int32_t id, const HeaderList *t) {
    end_queued = true;
    if (t && !t->empty()) trailers = t;
    resume(session, id);
}

ssize_t OutBody::read(nghttp2_session *session, int32_t id, Arena &arena, uint8_t *dst, size_t len,
                      uint32_t *flags) {
    size_t have = pending();
    if (have == 0 && !end_queued) {
        deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = have < len ? have : len;
    size_t from_arena = std::min(n, held.size());
    if (from_arena) {
        std::memcpy(dst, held.data(), from_arena);
        held.remove_prefix(from_arena);
    }
    if (n > from_arena) evbuffer_remove(buf.get(), dst + from_arena, n - from_arena);
    if (end_queued && pending() == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        end_sent = true;
        if (trailers) {
            NvList nv(arena, trailers->size());
            for (const Header &h : *trailers)
                nv.add_field(h);
            if (nghttp2_submit_trailer(session, id, nv.data(), nv.size()) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return static_cast<ssize_t>(n);
}

}  // namespace torii::h2
