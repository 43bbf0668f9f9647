// The RFC 9113 8.2-8.3 rules for one request stream, checked by torii instead of libnghttp2's
// "HTTP messaging" pass (nghttp2_option_set_no_http_messaging): the same rules nghttp2 1.52
// applies on a server, in one pass over each field that torii reads anyway (nghttp2's cost
// 1,200 instructions a request). Any failure makes the request malformed: RST_STREAM
// (PROTOCOL_ERROR) for that stream, nothing forwarded.
//
//   - field names: lower-case tokens; pseudo-headers only the request ones (:method,
//     :scheme, :authority, :path, :protocol), each once, not empty, before every regular
//     field, never in trailers;
//   - field values: no control character but HTAB, no leading or trailing SP/HTAB; :method a
//     token, :path visible characters, :authority and host authority characters but '@'
//     (userinfo, which torii refuses: RFC 9113 8.3.1, and "user@host" is read as another
//     host by another parser), :scheme a scheme;
//   - connection-specific fields (connection, keep-alive, proxy-connection,
//     transfer-encoding, upgrade) and te other than "trailers" refused; one host, one
//     content-length of digits;
//   - at the end of the head: :method, :scheme and :path present, and :authority or host;
//     CONNECT with :authority and without :scheme and :path, unless an extended CONNECT
//     (:protocol, RFC 8441) which needs :authority; :path "/..." for http(s), or "*" for
//     OPTIONS;
//   - trailers end the stream; DATA never goes past content-length, and the stream ends at
//     exactly content-length (a CONNECT's content-length is not one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/http/headers.h"

namespace torii::h2 {

// What a field is, as far as the checks tell (the caller need not compare names again):
// the pseudo-headers first, then host, then the other regular fields, with or without an
// underscore in the name (HTTP/1.1 drops those unless underscores_in_headers).
enum class Field : uint8_t {
    malformed,
    method,
    scheme,
    authority,
    path,
    protocol,
    host,
    regular,
    underscored
};

class RequestChecks {
public:
    // A field of the head (trailer = false) or of the trailer section: malformed, or what
    // it is. `id` is a regular field's HeaderId (classify_header's, found once here).
    Field on_field(std::string_view name, std::string_view value, bool trailer, HeaderId &id);
    Field on_field(std::string_view name, std::string_view value, bool trailer) {
        HeaderId id;
        return on_field(name, value, trailer, id);
    }
    // The head's last field was seen: false if malformed.
    bool on_head_end();
    // Body bytes arrived: false once they pass content-length.
    bool on_data(size_t n) {
        received_ += n;
        return content_length_ < 0 || received_ <= static_cast<uint64_t>(content_length_);
    }
    // END_STREAM arrived: false if the body's length disagrees with content-length.
    bool on_end() const {
        return content_length_ < 0 || received_ == static_cast<uint64_t>(content_length_);
    }
    // The request's content-length, -1 if none (or a CONNECT's).
    int64_t content_length() const { return content_length_; }

private:
    Field on_pseudo(std::string_view name, std::string_view value);

    uint32_t flags_ = 0;
    int64_t content_length_ = -1;
    uint64_t received_ = 0;
};

}  // namespace torii::h2
