// Character classes by table: each byte of a string looked up in a 256-entry table of class
// bits, the bits ANDed. One load and AND per byte and no branch on the bytes, for the loops
// that run over every byte of every header field (HTTP/2 request fields, HTTP/1 upstream
// response heads).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace torii {

using ByteClassTable = std::array<uint8_t, 256>;

// The classes every byte of `s` is in (0xff for an empty string). ANDing a byte twice
// changes nothing, so the last block overlaps the one before it instead of a byte loop for
// the tail.
[[gnu::always_inline]] inline uint8_t classes_of(const ByteClassTable &t, std::string_view s) {
    const auto *p = reinterpret_cast<const uint8_t *>(s.data());
    size_t n = s.size();
    if (n < 4) {  // 0 to 3 bytes; an empty string is in every class
        return n ? t[p[0]] & t[p[n / 2]] & t[p[n - 1]] : 0xff;
    }
    if (n < 8)
        return t[p[0]] & t[p[1]] & t[p[2]] & t[p[3]] & t[p[n - 4]] & t[p[n - 3]] & t[p[n - 2]] &
               t[p[n - 1]];
    uint8_t a = t[p[n - 8]] & t[p[n - 4]], b = t[p[n - 7]] & t[p[n - 3]],
            c = t[p[n - 6]] & t[p[n - 2]], d = t[p[n - 5]] & t[p[n - 1]];
    for (size_t i = 0; i + 8 < n; i += 8) {
        a &= t[p[i]] & t[p[i + 4]];
        b &= t[p[i + 1]] & t[p[i + 5]];
        c &= t[p[i + 2]] & t[p[i + 6]];
        d &= t[p[i + 3]] & t[p[i + 7]];
    }
    return a & b & c & d;
}

}  // namespace torii
