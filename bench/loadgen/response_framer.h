// Where one HTTP/1.1 response ends, read incrementally off a keep-alive connection.
//
// The load generator needs only the status and the end of each response, never its body, so
// this is not a general parser: it reads the status line and the framing fields
// (Content-Length, Transfer-Encoding, Connection), skips the body by length or by chunks
// (extensions and trailers too), and skips 1xx interim responses. It is strict where a wrong
// guess would misplace the next response: CRLF line ends, a three-digit status, one
// Content-Length (repeats must agree), "chunked" as the only transfer coding, never both
// framings, no obs-fold, bounded lines and head. Anything else is an error, and the caller
// drops the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace torii::loadgen {

class ResponseFramer {
public:
    enum class Result { kNeedMore, kComplete, kError };

    static constexpr size_t kMaxLine = 8 * 1024;
    static constexpr size_t kMaxHead = 64 * 1024;

    // Consumes bytes of the current response from `data`; `*used` gets how many were taken
    // (the rest belong to whatever follows). kComplete: status() and keep_alive() describe
    // the response just ended; call reset() before the next one.
    Result feed(std::string_view data, size_t *used);

    // The peer closed the connection: a body delimited by the close ends here (kComplete);
    // anything else cut short is kError.
    Result finish_at_eof();

    void reset();

    int status() const { return status_; }
    // Whether the connection can carry the next request (HTTP/1.1 without Connection: close,
    // and a body that did not end at the close).
    bool keep_alive() const { return keep_alive_; }
    const char *error() const { return error_; }

private:
    enum class State {
        kStatusLine,
        kHeaders,
        kBody,  // remaining_ bytes of a Content-Length body
        kChunkSize,
        kChunkData,     // remaining_ bytes of a chunk
        kChunkDataEnd,  // the CRLF after a chunk
        kTrailers,
        kUntilClose,
        kDone,
        kError,
    };

    Result fail(const char *why);
    // One complete line (without its CRLF) of the head or of the chunked framing.
    Result on_line(std::string_view line);
    Result on_status_line(std::string_view line);
    Result on_header(std::string_view line);
    Result on_head_end();
    Result on_chunk_size(std::string_view line);

    State state_ = State::kStatusLine;
    std::string line_;  // a line split across reads
    size_t head_bytes_ = 0;
    uint64_t remaining_ = 0;
    int status_ = 0;
    bool http10_ = false;
    bool keep_alive_ = true;
    bool close_ = false;
    bool keep_alive_token_ = false;  // Connection: keep-alive (HTTP/1.0)
    bool chunked_ = false;
    bool has_length_ = false;
    uint64_t length_ = 0;
    const char *error_ = "";
};

}  // namespace torii::loadgen
