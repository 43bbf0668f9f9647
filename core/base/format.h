// Decimal formatting without printf, for numbers written on every request (Content-Length).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace torii {

// Writes v in decimal at buf (at least 20 bytes); returns the length.
inline size_t format_u64(char *buf, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
    return n;
}

}  // namespace torii
