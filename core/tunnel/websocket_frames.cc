#include "core/tunnel/websocket_frames.h"

#include <stdlib.h>

namespace torii {

// The header's size once its first two bytes are known: the 7-bit length says whether a
// 16- or 64-bit length follows, the MASK bit whether a 4-byte key does.
static size_t header_size(const uint8_t *h) {
    size_t len7 = h[1] & 0x7f;
    size_t size = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    return size + ((h[1] & 0x80) ? 4 : 0);
}

static uint64_t payload_length(const uint8_t *h) {
    uint64_t len7 = h[1] & 0x7f;
    if (len7 < 126) return len7;
    int bytes = len7 == 126 ? 2 : 8;
    uint64_t len = 0;
    for (int i = 0; i < bytes; ++i)
        len = len << 8 | h[2 + i];
    return len;
}

void WebSocketFrameCursor::feed_header_byte(uint8_t b) {
    header_[header_have_++] = b;
    if (header_have_ < 2 || header_have_ < header_size(header_)) return;
    payload_left_ = payload_length(header_);
    header_have_ = 0;
}

void WebSocketFrameCursor::advance(const uint8_t *data, size_t n) {
    size_t off = 0;
    while (off < n) {
        if (payload_left_ > 0) {
            size_t skip = payload_left_ < n - off ? static_cast<size_t>(payload_left_) : n - off;
            payload_left_ -= skip;
            off += skip;
            continue;
        }
        feed_header_byte(data[off++]);
    }
}

void WebSocketFrameCursor::advance(evbuffer *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        // Payloads are skipped by count, without touching their chains.
        if (payload_left_ > 0) {
            size_t skip = payload_left_ < n - off ? static_cast<size_t>(payload_left_) : n - off;
            payload_left_ -= skip;
            off += skip;
            continue;
        }
        evbuffer_ptr pos;
        evbuffer_iovec v;
        if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) != 0 ||
            evbuffer_peek(buf, 1, &pos, &v, 1) < 1)
            return;
        // Header bytes from this chain until a payload starts (or the chain ends).
        const auto *p = static_cast<const uint8_t *>(v.iov_base);
        size_t avail = v.iov_len < n - off ? v.iov_len : n - off;
        size_t i = 0;
        while (i < avail && payload_left_ == 0)
            feed_header_byte(p[i++]);
        off += i;
    }
}

std::string websocket_close_frame(uint16_t code, bool masked) {
    uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code & 0xff)};
    std::string out;
    out += '\x88';  // FIN, opcode 8 (close)
    out += static_cast<char>((masked ? 0x80 : 0x00) | sizeof payload);
    if (!masked) return out + std::string(reinterpret_cast<const char *>(payload), 2);
    uint8_t key[4];
    arc4random_buf(key, sizeof key);
    out.append(reinterpret_cast<const char *>(key), 4);
    for (size_t i = 0; i < sizeof payload; ++i)
        out += static_cast<char>(payload[i] ^ key[i % 4]);
    return out;
}

}  // namespace torii
