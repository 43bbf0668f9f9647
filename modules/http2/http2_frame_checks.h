// What RFC 9113 asks of a server that libnghttp2 1.52 leaves out: where nghttp2 ignores a
// frame or resets one stream, the RFC ends the connection. Fed from the client connection's
// nghttp2 callbacks; a non-zero answer is the error code of a connection error (GOAWAY).
//
//   - HEADERS on a stream id the client skipped (5.1.1): opening 5 closed 1 and 3 if they
//     were idle, so a later HEADERS on 3 is "an unexpected stream identifier", PROTOCOL_ERROR.
//     nghttp2 cannot tell such an id from a stream it forgot after closing, and ignores both.
//   - SETTINGS_INITIAL_WINDOW_SIZE raised so that an open stream's window passes 2^31-1
//     (6.9.2): FLOW_CONTROL_ERROR for the connection; nghttp2 resets only that stream.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <vector>

namespace torii {

class Http2Stream;

class Http2FrameChecks {
public:
    // A frame header was read (nghttp2's on_begin_frame callback), before its payload.
    uint32_t on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd &hd,
                            const std::vector<Http2Stream *> &streams);
    // A SETTINGS frame (not an ACK) was applied (on_frame_recv).
    uint32_t on_settings(nghttp2_session *session);

private:
    struct Gap {
        int32_t first, last;  // odd stream ids the client skipped, both included
    };
    static constexpr size_t kMaxGaps = 16;  // clients skip none; a few are remembered

    int32_t max_stream_id_ = 0;  // highest stream a HEADERS frame opened
    std::vector<Gap> gaps_;      // the latest kMaxGaps
    // Taken when a SETTINGS frame begins: the peer's initial window and the largest window
    // an open stream had toward it.
    uint32_t initial_window_before_ = 0;
    int64_t max_stream_window_before_ = 0;
};

}  // namespace torii
