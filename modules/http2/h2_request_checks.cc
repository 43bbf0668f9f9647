#include "modules/http2/h2_request_checks.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "core/base/byte_classes.h"
#include "core/http/field_chars.h"
#include "core/http/headers.h"

namespace torii::h2 {

namespace {

// Character classes, one bit each in a 256-entry table: one load and test per byte.
enum : uint8_t {
    kName = 1,           // a field name: tchar without upper case (RFC 9110 5.6.2, RFC 9113 8.2.1)
    kToken = 2,          // tchar (a method)
    kValue = 4,          // field-value: VCHAR, SP, HTAB, obs-text (no other control, no DEL)
    kPath = 8,           // a field-value's characters but SP and HTAB
    kAuthority = 16,     // RFC 3986 3.2 but '@': unreserved, sub-delims, ':', '[', ']', '%'
    kNoUnderscore = 32,  // all but '_' (a name with one is dropped by default, as on HTTP/1.1)
    kSchemeRest = 64,    // RFC 3986 3.1 after the first: ALPHA / DIGIT / "+" / "-" / "."
    kSchemeFirst = 128   // ALPHA
};

// tchar and field-value characters as everywhere in torii (field_chars.h), plus the classes
// only HTTP/2's pseudo-headers need.
constexpr std::array<uint8_t, 256> make_classes() {
    using namespace field_chars_detail;
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        bool tchar = (kTable[static_cast<size_t>(c)] & kTchar) != 0;
        bool value_char = (kTable[static_cast<size_t>(c)] & kValueChar) != 0;
        uint8_t v = 0;
        if (tchar) v |= kToken;
        if (tchar && !(c >= 'A' && c <= 'Z')) v |= kName;
        if (value_char) v |= kValue;
        if (value_char && c != ' ' && c != '\t') v |= kPath;
        // No '@': userinfo in :authority or host is refused (RFC 9113 8.3.1), as one parser
        // reads "user@host" as another host than the next.
        if (alpha || digit ||
            std::string_view("-._~!$&'()*+,;=:[]%").find(char(c)) != std::string_view::npos)
            v |= kAuthority;
        if (c != '_') v |= kNoUnderscore;
        if (alpha || digit || c == '+' || c == '-' || c == '.') v |= kSchemeRest;
        if (alpha) v |= kSchemeFirst;
        t[static_cast<size_t>(c)] = v;
    }
    return t;
}

constexpr ByteClassTable kClasses = make_classes();

[[gnu::always_inline]] inline uint8_t classes_of(std::string_view s) {
    return torii::classes_of(kClasses, s);
}

[[gnu::always_inline]] inline bool all_of(std::string_view s, uint8_t cls) {
    return (classes_of(s) & cls) != 0;
}

// Field-value characters, and no leading or trailing SP or HTAB either (RFC 9113 8.2.1):
// the first and the last byte are in kPath.
bool valid_value(std::string_view v) {
    if (v.empty()) return true;
    auto edge =
        kClasses[static_cast<uint8_t>(v.front())] & kClasses[static_cast<uint8_t>(v.back())];
    return (edge & kPath) && all_of(v, kValue);
}

// RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
bool valid_scheme(std::string_view v) {
    return !v.empty() && (kClasses[static_cast<uint8_t>(v.front())] & kSchemeFirst) &&
           all_of(v, kSchemeRest);
}

// "http" or "https" in any case; `v` is a valid scheme (letters, digits, "+-."), so folding
// with 0x20 turns only upper-case letters into the lower-case ones compared here.
bool http_scheme(std::string_view v) {
    if (v.size() != 4 && !(v.size() == 5 && (v[4] | 0x20) == 's')) return false;
    uint32_t w;
    std::memcpy(&w, v.data(), 4);
    uint32_t http;
    std::memcpy(&http, "http", 4);
    return (w | 0x20202020u) == http;
}

// Digits only, and no overflow: -1 otherwise.
int64_t parse_length(std::string_view v) {
    if (v.empty()) return -1;
    int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return -1;
        int d = c - '0';
        if (n > (INT64_MAX - d) / 10) return -1;
        n = n * 10 + d;
    }
    return n;
}

enum : uint32_t {
    kMethod = 1u << 0,
    kScheme = 1u << 1,
    kAuthorityField = 1u << 2,
    kPathField = 1u << 3,
    kProtocol = 1u << 4,
    kHost = 1u << 5,
    kRegularSeen = 1u << 6,  // a regular field came: no pseudo-header after it
    kConnect = 1u << 7,
    kOptions = 1u << 8,
    kSchemeHttp = 1u << 9,  // http or https
    kPathSlash = 1u << 10,
    kPathAsterisk = 1u << 11,
};

}  // namespace

// A pseudo-header's (or host's) value: not empty nor only whitespace (nghttp2's rule), and
// seen once. Every caller has already refused values with SP or HTAB, or with either at
// the start: not empty is enough.
static bool first_not_empty(uint32_t &flags, uint32_t flag, std::string_view v) {
    if ((flags & flag) || v.empty()) return false;
    flags |= flag;
    return true;
}

// Inline in on_field: a call level less for the four pseudo-headers of every request.
[[gnu::always_inline]] inline Field RequestChecks::on_pseudo(std::string_view name,
                                                             std::string_view value) {
    constexpr Field bad = Field::malformed;
    switch (name.size()) {
        case 5:  // :path
            if (name != ":path" || !all_of(value, kPath)) return bad;
            if (!first_not_empty(flags_, kPathField, value)) return bad;
            if (value.front() == '/')
                flags_ |= kPathSlash;
            else if (value == "*")
                flags_ |= kPathAsterisk;
            return Field::path;
        case 7:
            if (name == ":method") {
                if (!all_of(value, kToken) || !first_not_empty(flags_, kMethod, value)) return bad;
                if (value == "CONNECT") flags_ |= kConnect;
                if (value == "OPTIONS") flags_ |= kOptions;
                return Field::method;
            }
            if (name == ":scheme") {
                if (!valid_scheme(value) || !first_not_empty(flags_, kScheme, value)) return bad;
                if (http_scheme(value)) flags_ |= kSchemeHttp;
                return Field::scheme;
            }
            return bad;
        case 9:  // :protocol (SETTINGS_ENABLE_CONNECT_PROTOCOL is always on)
            return name == ":protocol" && valid_value(value) &&
                           first_not_empty(flags_, kProtocol, value)
                       ? Field::protocol
                       : bad;
        case 10:  // :authority
            return name == ":authority" && all_of(value, kAuthority) &&
                           first_not_empty(flags_, kAuthorityField, value)
                       ? Field::authority
                       : bad;
        default:  // :status, or a pseudo-header nobody defined
            return bad;
    }
}

Field RequestChecks::on_field(std::string_view name, std::string_view value, bool trailer,
                              HeaderId &id) {
    constexpr Field bad = Field::malformed;
    id = HeaderId::other;
    if (name.empty()) return bad;
    if (name.front() == ':') {
        if (trailer || (flags_ & kRegularSeen)) return bad;
        return on_pseudo(name, value);
    }
    uint8_t name_classes = classes_of(name);
    if (!(name_classes & kName)) return bad;
    flags_ |= kRegularSeen;
    // The name is known once, for these checks and for the request's field list.
    id = classify_header(name);
    switch (id) {
        case HeaderId::te:
            return iequals(value, "trailers") ? Field::regular : bad;
        case HeaderId::host:
            return all_of(value, kAuthority) && first_not_empty(flags_, kHost, value) ? Field::host
                                                                                      : bad;
        case HeaderId::connection:
        case HeaderId::keep_alive:
        case HeaderId::proxy_connection:
        case HeaderId::transfer_encoding:
        case HeaderId::upgrade:
            return bad;
        case HeaderId::content_length:
            if (content_length_ >= 0) return bad;  // a second one
            content_length_ = parse_length(value);
            return content_length_ >= 0 ? Field::regular : bad;
        default:
            break;
    }
    if (!valid_value(value)) return bad;
    return name_classes & kNoUnderscore ? Field::regular : Field::underscored;
}

bool RequestChecks::on_head_end() {
    if ((flags_ & kConnect) && !(flags_ & kProtocol)) {
        // CONNECT (RFC 9113 8.5): :authority only, and a body of no declared length.
        if ((flags_ & (kScheme | kPathField)) || !(flags_ & kAuthorityField)) return false;
        content_length_ = -1;
        return true;
    }
    constexpr uint32_t required = kMethod | kScheme | kPathField;
    if ((flags_ & required) != required || !(flags_ & (kAuthorityField | kHost))) return false;
    // An extended CONNECT (RFC 8441 4) names its :authority.
    if ((flags_ & kProtocol) && (!(flags_ & kConnect) || !(flags_ & kAuthorityField))) return false;
    // http(s) (RFC 9113 8.3.1): an origin-form path, or "*" for a server-wide OPTIONS.
    if ((flags_ & kSchemeHttp) && !(flags_ & kPathSlash) &&
        !((flags_ & kOptions) && (flags_ & kPathAsterisk)))
        return false;
    return true;
}

}  // namespace torii::h2
