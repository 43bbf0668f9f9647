// Copies of the short strings a head is made of (names and values, mostly under 16 bytes):
// inline with two overlapping moves rather than a call into libc's memcpy, about 8
// instructions fewer per piece, and a head has two dozen pieces. Used by the HTTP/1 head
// writer and by the HTTP/2 request fields' arena copy.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace torii {

// n bytes, sizeof(Word) <= n <= 2 * sizeof(Word): the first and the last word (overlapping).
template <typename Word>
inline void copy_two_words(char *p, const char *from, size_t n) {
    Word a, b;
    std::memcpy(&a, from, sizeof a);
    std::memcpy(&b, from + n - sizeof b, sizeof b);
    std::memcpy(p, &a, sizeof a);
    std::memcpy(p + n - sizeof b, &b, sizeof b);
}

// Copies s to p; returns the end of the copy.
inline char *copy_small(char *p, std::string_view s) {
    size_t n = s.size();
    const char *from = s.data();
    if (n > 16) {
        std::memcpy(p, from, n);
    } else if (n >= 8) {
        copy_two_words<uint64_t>(p, from, n);
    } else if (n >= 4) {
        copy_two_words<uint32_t>(p, from, n);
    } else if (n > 0) {  // an empty view may have a null data()
        p[0] = from[0];
        p[n / 2] = from[n / 2];
        p[n - 1] = from[n - 1];
    }
    return p + n;
}

}  // namespace torii
