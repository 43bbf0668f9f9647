#include "core/base/hash64.h"

#include <cstring>

namespace torii {

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t hash64(const void *data, size_t len, uint64_t seed) {
    const auto *p = static_cast<const unsigned char *>(data);
    constexpr uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = seed ^ (len * k);
    while (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);  // little-endian machines give the same value everywhere we run
        h = (h ^ mix(w * k)) * k;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; ++i)
        tail |= static_cast<uint64_t>(p[i]) << (8 * i);
    h ^= mix(tail * k + len);
    return mix(h);
}

}  // namespace torii
