// The protocol-neutral request and response heads. HTTP/1.1 fills them from llhttp, HTTP/2
// from nghttp2 pseudo-headers, and every phase and plugin reads only these, whatever the
// protocol on the wire. Views point into the owning request's arena.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/http/headers.h"

namespace torii {

enum class HttpVersion : uint8_t { http10, http11, http2 };

struct RequestHead {
    std::string_view method;     // "GET"
    std::string_view scheme;     // "http" | "https"
    std::string_view authority;  // Host header (HTTP/1) or :authority (HTTP/2)
    std::string_view target;     // origin-form "/path?query" as received
    HttpVersion version = HttpVersion::http11;
    HeaderList headers;
    HeaderList trailers;
    // Body framing as the client declared it. content_length < 0: none declared (no body
    // on HTTP/1 unless chunked; HTTP/2 ends with END_STREAM).
    int64_t content_length = -1;
    bool chunked = false;
    bool expect_continue = false;
    bool upgrade = false;  // Upgrade requested (WebSocket handshake)

    bool has_body() const { return chunked || content_length > 0; }
    // Back to empty, keeping the header lists' capacity for the next request.
    void clear() {
        method = scheme = authority = target = {};
        version = HttpVersion::http11;
        headers.clear();
        trailers.clear();
        content_length = -1;
        chunked = expect_continue = upgrade = false;
    }
    std::string_view path() const {  // target without the query
        size_t q = target.find('?');
        return q == std::string_view::npos ? target : target.substr(0, q);
    }
    std::string_view query() const {
        size_t q = target.find('?');
        return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    }
};

struct ResponseHead {
    int status = 0;
    std::string_view reason;  // HTTP/1 only; empty means the standard phrase
    HeaderList headers;
    HeaderList trailers;
    int64_t content_length = -1;  // -1: unknown, the body ends with the stream
    bool chunked = false;         // as received from an HTTP/1 upstream
    bool no_body = false;         // HEAD, 1xx, 204, 304: no body whatever the headers say
    bool until_close = false;     // HTTP/1 upstream: no length, not chunked, ends with a close

    // Back to empty, keeping the header lists' capacity.
    void clear() {
        status = 0;
        reason = {};
        headers.clear();
        trailers.clear();
        content_length = -1;
        chunked = no_body = until_close = false;
    }
};

}  // namespace torii
