#include "core/http/request_id.h"

#include <cstdint>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base/fast_random.h"
#include "core/http/request.h"

namespace torii {

// 16 random bytes as 32 lowercase hex digits, without a loop (this runs on every proxied
// request). The digits come out in no particular nibble order, which random bits do not mind.
#ifdef __SSE2__
static inline void hex32(char *out, uint64_t a, uint64_t b) {
    __m128i v = _mm_set_epi64x(static_cast<long long>(b), static_cast<long long>(a));
    __m128i nibble = _mm_set1_epi8(0x0f);
    __m128i halves[2] = {_mm_and_si128(v, nibble), _mm_and_si128(_mm_srli_epi16(v, 4), nibble)};
    for (int i = 0; i < 2; ++i) {
        __m128i n = halves[i];
        __m128i letter = _mm_cmpgt_epi8(n, _mm_set1_epi8(9));
        __m128i digit = _mm_add_epi8(n, _mm_set1_epi8('0'));
        digit = _mm_add_epi8(digit, _mm_and_si128(letter, _mm_set1_epi8('a' - '0' - 10)));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + 16 * i), digit);
    }
}
#else
// Each nibble of 32 bits spread into a byte of its own, then '0' or 'a' - 10 added.
static inline void hex8(char *out, uint32_t bits) {
    uint64_t x = bits;
    x = (x | (x << 16)) & 0x0000FFFF0000FFFFull;
    x = (x | (x << 8)) & 0x00FF00FF00FF00FFull;
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0Full;
    uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;  // >= 10
    x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
    std::memcpy(out, &x, 8);
}

static inline void hex32(char *out, uint64_t a, uint64_t b) {
    hex8(out, static_cast<uint32_t>(a));
    hex8(out + 8, static_cast<uint32_t>(a >> 32));
    hex8(out + 16, static_cast<uint32_t>(b));
    hex8(out + 24, static_cast<uint32_t>(b >> 32));
}
#endif

void make_request_id(char *out) {
    uint64_t a = fast_random::next();
    hex32(out, a, fast_random::next());
}

std::string_view request_id(Request &req) {
    if (!req.request_id.empty()) return req.request_id;
    std::string_view sent;
    for (const Header &h : req.headers) {
        if (h.id == HeaderId::x_request_id && !h.value.empty()) {
            sent = h.value;
            break;
        }
    }
    return request_id(req, sent);
}

}  // namespace torii
