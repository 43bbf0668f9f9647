#include "core/base/json_escape.h"

namespace torii {

static inline bool continuation(unsigned char c) {
    return (c & 0xC0) == 0x80;
}

size_t utf8_sequence_length(std::string_view s) {
    if (s.empty()) return 0;
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    // The second byte's range is what rules out overlong forms (E0, F0), UTF-16 surrogates
    // (ED) and code points past U+10FFFF (F4): RFC 3629 section 4.
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF
    }
    if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
    for (size_t i = 2; i < n; ++i)
        if (!continuation(b(i))) return 0;
    return n;
}

// Bytes that need more than a copy: the two JSON metacharacters, control bytes, DEL, and
// every non-ASCII byte (checked as UTF-8).
static inline bool special(unsigned char c) {
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x7F;
}

void append_json_escaped(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, n = s.size();
    while (i < n) {
        size_t start = i;
        while (i < n && !special(static_cast<unsigned char>(s[i])))
            ++i;
        out.append(s.data() + start, i - start);
        if (i == n) break;
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            size_t len = utf8_sequence_length(s.substr(i));
            if (len) {
                out.append(s.data() + i, len);
                i += len;
            } else {
                out += "\\ufffd";
                ++i;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default: {  // other control bytes and DEL
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out.append(esc, sizeof esc);
            }
        }
        ++i;
    }
}

void append_json_string(std::string &out, std::string_view s) {
    out += '"';
    append_json_escaped(out, s);
    out += '"';
}

}  // namespace torii
