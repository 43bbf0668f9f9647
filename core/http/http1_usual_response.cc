#include "core/http/http1_usual_response.h"

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/base/byte_classes.h"
#include "core/http/headers.h"

namespace torii {

namespace {

enum : uint8_t {
    kName = 1,   // tchar (RFC 9110 5.6.2)
    kValue = 2,  // VCHAR, SP, HTAB: a field value or reason phrase without obs-text
    kEdge = 4,   // VCHAR: what a value may start and end with
};

constexpr ByteClassTable make_table() {
    ByteClassTable t{};
    for (int c = 0x21; c < 0x7f; ++c) {
        t[c] = kValue | kEdge;
        if (std::string_view("\"(),/:;<=>?@[\\]{}").find(char(c)) == std::string_view::npos)
            t[c] |= kName;
    }
    t[' '] = t['\t'] = kValue;
    return t;
}

constexpr ByteClassTable kTable = make_table();

bool all_in(std::string_view s, uint8_t cls) {
    return (classes_of(kTable, s) & cls) != 0;
}

// The end of the line starting at p: the CR of its CRLF, or null (no CR before `end`, or a
// CR not followed by LF). A LF before that CR is caught by the caller's class check.
const char *line_end(const char *p, const char *end) {
    const void *cr = std::memchr(p, '\r', static_cast<size_t>(end - p));
    if (!cr) return nullptr;
    const char *c = static_cast<const char *>(cr);
    return c + 1 < end && c[1] == '\n' ? c : nullptr;
}

// 1 to 18 digits (no sign, no white space, no overflow); -1 otherwise.
int64_t parse_length(std::string_view v) {
    if (v.empty() || v.size() > 18) return -1;
    int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
    }
    return n;
}

}  // namespace

size_t parse_usual_response_head(const char *buf, size_t len, uint64_t max_counted,
                                 ResponseHead *resp, Arena *arena) {
    // "HTTP/1.1 NNN " and at least the CRLF of the status line and of the blank line.
    constexpr size_t kShortest = 17;
    if (len < kShortest || std::memcmp(buf, "HTTP/1.1 ", 9) != 0 || buf[12] != ' ') return 0;
    unsigned d0 = static_cast<unsigned char>(buf[9]) - '0',
             d1 = static_cast<unsigned char>(buf[10]) - '0',
             d2 = static_cast<unsigned char>(buf[11]) - '0';
    if (d0 > 9 || d1 > 9 || d2 > 9) return 0;
    int status = static_cast<int>(d0 * 100 + d1 * 10 + d2);
    // 1xx, 204 and 304 have no body whatever the head says; their framing is llhttp's.
    if (status < 200 || status > 599 || status == 204 || status == 304) return 0;
    const char *end = buf + len;
    const char *p = buf + 13;
    const char *eol = line_end(p, end);
    if (!eol) return 0;
    std::string_view reason(p, static_cast<size_t>(eol - p));
    if (!all_in(reason, kValue)) return 0;
    uint64_t counted = reason.size();
    p = eol + 2;

    HeaderList &fields = resp->headers;
    size_t first = fields.size();
    auto decline = [&] {
        fields.truncate(first);
        return size_t{0};
    };
    int64_t length = -1;
    for (;;) {
        if (end - p < 2) return decline();
        if (p[0] == '\r') {
            if (p[1] != '\n') return decline();
            p += 2;
            break;
        }
        eol = line_end(p, end);
        if (!eol) return decline();
        const char *colon =
            static_cast<const char *>(std::memchr(p, ':', static_cast<size_t>(eol - p)));
        if (!colon || colon == p) return decline();
        std::string_view name(p, static_cast<size_t>(colon - p));
        // At most one SP or HTAB before the value, as every server writes it: the head is
        // copied whole, and white space is not counted toward the limit.
        const char *v = colon + 1;
        if (v < eol && (*v == ' ' || *v == '\t')) ++v;
        if (v < eol && (*v == ' ' || *v == '\t')) return decline();
        std::string_view value(v, static_cast<size_t>(eol - v));
        if (!all_in(name, kName) || !all_in(value, kValue) ||
            (!value.empty() && !(kTable[static_cast<uint8_t>(value.back())] & kEdge)) ||
            fields.size() - first >= kMaxRequestHeaderFields)
            return decline();
        counted += name.size() + value.size() + 4;
        if (counted > max_counted) return decline();
        HeaderId id = classify_header(name);
        switch (id) {
            case HeaderId::content_length:
                if (length >= 0 || (length = parse_length(value)) < 0) return decline();
                break;
            case HeaderId::connection:
                if (!iequals(value, "keep-alive")) return decline();
                break;
            // Framing and connection semantics llhttp decides: its path for those.
            case HeaderId::transfer_encoding:
            case HeaderId::upgrade:
            case HeaderId::proxy_connection:
                return decline();
            default:
                break;
        }
        fields.add(name, value, id);
        p = eol + 2;
    }
    if (length < 0) return decline();

    // One copy of the head's text into the arena (the buffer is a socket's read), and the
    // views moved onto it.
    size_t head_len = static_cast<size_t>(p - buf);
    char *copy = arena->alloc(head_len);
    std::memcpy(copy, buf, head_len);
    auto rebase = [&](std::string_view v) {
        return std::string_view(copy + (v.data() - buf), v.size());
    };
    resp->status = status;
    resp->reason = reason.empty() ? std::string_view() : rebase(reason);
    for (auto it = fields.begin() + static_cast<ptrdiff_t>(first); it != fields.end(); ++it) {
        it->name = rebase(it->name);
        it->value = rebase(it->value);
    }
    resp->content_length = length;
    resp->chunked = false;
    resp->no_body = false;
    resp->until_close = false;
    return head_len;
}

}  // namespace torii
