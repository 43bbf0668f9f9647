#include "core/http/path_normalizer.h"

#include <cstring>

#include "core/http/query_args.h"

namespace torii {

// RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~" mean the same encoded or not.
static bool is_unreserved(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

// Most paths have nothing to normalise: one scan decides.
static bool needs_work(std::string_view p) {
    for (size_t i = 0; i < p.size(); ++i) {
        char c = p[i];
        if (c == '%') return true;
        if (c == '/' && i + 1 < p.size() && (p[i + 1] == '/' || p[i + 1] == '.')) return true;
    }
    return false;
}

int normalize_path(std::string_view path, Arena &arena, std::string_view *out, const char **why) {
    if (!needs_work(path)) {
        *out = path;
        return 0;
    }
    static const char kHex[] = "0123456789ABCDEF";
    char *buf = arena.alloc(path.size());
    size_t n = 0;
    // Pass 1: decode the unreserved characters; keep other escapes, with upper-case digits.
    for (size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c != '%') {
            buf[n++] = c;
            continue;
        }
        int hi = i + 2 < path.size() ? hex_digit(path[i + 1]) : -1;
        int lo = i + 2 < path.size() ? hex_digit(path[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *why = "malformed percent-encoding in the path";
            return 400;
        }
        unsigned char v = static_cast<unsigned char>(hi * 16 + lo);
        if (v == 0) {
            *why = "encoded NUL in the path";
            return 400;
        }
        if (is_unreserved(v)) {
            buf[n++] = static_cast<char>(v);
        } else {
            buf[n++] = '%';
            buf[n++] = kHex[v >> 4];
            buf[n++] = kHex[v & 15];
        }
        i += 2;
    }
    // Pass 2, in place (the write position never passes the read position): merge slashes,
    // drop "." segments, let ".." remove the segment before it.
    size_t w = 0, i = 0;
    bool trailing_slash = false;
    while (i < n) {
        while (i < n && buf[i] == '/')
            ++i;
        size_t start = i;
        while (i < n && buf[i] != '/')
            ++i;
        size_t len = i - start;
        trailing_slash = i < n || len == 0;
        if (len == 0) break;  // the path ended with slashes
        if (len == 1 && buf[start] == '.') {
            trailing_slash = true;
            continue;
        }
        if (len == 2 && buf[start] == '.' && buf[start + 1] == '.') {
            if (w == 0) {
                *why = "the path climbs above the root";
                return 400;
            }
            while (w > 0 && buf[w - 1] != '/')
                --w;
            --w;  // the segment's slash
            trailing_slash = true;
            continue;
        }
        buf[w++] = '/';
        std::memmove(buf + w, buf + start, len);
        w += len;
    }
    if (trailing_slash || w == 0) buf[w++] = '/';
    if (w == path.size() && std::memcmp(buf, path.data(), w) == 0)
        *out = path;
    else
        *out = {buf, w};
    return 0;
}

}  // namespace torii
