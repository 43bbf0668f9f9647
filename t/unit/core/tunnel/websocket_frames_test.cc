#include <doctest/doctest.h>

#include <string>

#include "core/base/libevent_ptr.h"
#include "core/tunnel/websocket_frames.h"

using namespace torii;

// A frame header for a payload of `len` bytes, masked or not (payload bytes follow).
static std::string frame(size_t len, bool masked) {
    std::string h;
    h += '\x82';  // FIN, binary
    uint8_t mask_bit = masked ? 0x80 : 0;
    if (len < 126) {
        h += static_cast<char>(mask_bit | len);
    } else if (len < 65536) {
        h += static_cast<char>(mask_bit | 126);
        h += static_cast<char>(len >> 8);
        h += static_cast<char>(len & 0xff);
    } else {
        h += static_cast<char>(mask_bit | 127);
        for (int i = 7; i >= 0; --i)
            h += static_cast<char>((len >> (8 * i)) & 0xff);
    }
    if (masked) h += "MASK";
    return h + std::string(len, 'p');
}

TEST_CASE("the cursor finds frame boundaries whatever the pieces the bytes come in") {
    // Frames of every header form: 7-bit, 16-bit and 64-bit lengths, masked and not, empty.
    std::string a = frame(5, false), b = frame(300, true), c = frame(0, false),
                d = frame(70000, true);
    std::string all = a + b + c + d;
    size_t ends[] = {a.size(), a.size() + b.size(), a.size() + b.size() + c.size(), all.size()};
    for (size_t piece : {size_t(1), size_t(3), size_t(7), size_t(1000), all.size()}) {
        CAPTURE(piece);
        WebSocketFrameCursor cursor;
        size_t at = 0;
        while (at < all.size()) {
            size_t n = std::min(piece, all.size() - at);
            // Through an evbuffer, as the tunnel relays, in possibly several chains.
            EvbufferPtr buf = make_evbuffer();
            for (size_t off = 0; off < n; off += 2)
                evbuffer_add(buf.get(), all.data() + at + off, std::min<size_t>(2, n - off));
            cursor.advance(buf.get(), n);
            at += n;
            bool boundary = false;
            for (size_t e : ends)
                boundary |= e == at;
            CHECK(cursor.at_boundary() == boundary);
        }
    }
}

TEST_CASE("the cursor over raw bytes agrees") {
    std::string two = frame(200, false) + frame(1, true);
    WebSocketFrameCursor cursor;
    cursor.advance(reinterpret_cast<const uint8_t *>(two.data()), 3);
    CHECK_FALSE(cursor.at_boundary());
    cursor.advance(reinterpret_cast<const uint8_t *>(two.data()) + 3, 201);
    CHECK(cursor.at_boundary());
    cursor.advance(reinterpret_cast<const uint8_t *>(two.data()) + 204, two.size() - 205);
    CHECK_FALSE(cursor.at_boundary());
    cursor.advance(reinterpret_cast<const uint8_t *>(two.data()) + two.size() - 1, 1);
    CHECK(cursor.at_boundary());
}

TEST_CASE("close frames: 1001 unmasked towards a client, masked towards a server") {
    std::string s = websocket_close_frame(1001, false);
    CHECK(s == std::string("\x88\x02\x03\xe9", 4));
    std::string c = websocket_close_frame(1001, true);
    REQUIRE(c.size() == 8);
    CHECK(static_cast<uint8_t>(c[0]) == 0x88);
    CHECK(static_cast<uint8_t>(c[1]) == 0x82);
    CHECK(static_cast<uint8_t>(c[6] ^ c[2]) == 0x03);
    CHECK(static_cast<uint8_t>(c[7] ^ c[3]) == 0xe9);
}
