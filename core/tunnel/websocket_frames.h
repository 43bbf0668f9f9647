// Where the WebSocket frames (RFC 6455 section 5.2) of one tunnel direction begin, so that
// torii can put a frame of its own between two frames: the close frame 1001 ("going away")
// it sends when it ends a tunnel at shutdown or when its generation is retired. The tunnel
// relays bytes without parsing them; this cursor only reads each frame's header as the bytes
// go by and skips its payload, so a 1 MiB message costs one header, not a scan.
#pragma once

#include <event2/buffer.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace torii {

class WebSocketFrameCursor {
public:
    // The next `n` bytes of `buf` (from its start) are being relayed.
    void advance(evbuffer *buf, size_t n);
    void advance(const uint8_t *data, size_t n);
    // Everything relayed so far ends exactly at a frame boundary.
    bool at_boundary() const { return payload_left_ == 0 && header_have_ == 0; }

private:
    void feed_header_byte(uint8_t b);

    uint64_t payload_left_ = 0;  // bytes of the current frame's payload still to come
    uint8_t header_[14];         // the header being read: 2 + up to 8 length + 4 mask bytes
    uint8_t header_have_ = 0;
};

// A close frame with `code` and no reason: unmasked from a server (towards the client),
// masked with a fresh key from a client (towards the upstream, RFC 6455 5.3).
std::string websocket_close_frame(uint16_t code, bool masked);

}  // namespace torii
