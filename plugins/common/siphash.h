/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed
 * 64-bit function whose outputs cannot be predicted nor made to collide without the 128-bit
 * key. For looking up secrets (auth's API keys) by a tag that reveals nothing about them and
 * that an attacker cannot aim at, at a fraction of a SHA-256's cost on short inputs.
 * Header-only and static inline, like fnv.h; the unit tests check the paper's vectors. */
#ifndef TORII_PLUGINS_COMMON_SIPHASH_H
#define TORII_PLUGINS_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t pc_sip_rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t pc_sip_le64(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

#define PC_SIPROUND(v0, v1, v2, v3)                                             \
    do {                                                                        \
        v0 += v1, v1 = pc_sip_rotl(v1, 13), v1 ^= v0, v0 = pc_sip_rotl(v0, 32); \
        v2 += v3, v3 = pc_sip_rotl(v3, 16), v3 ^= v2;                           \
        v0 += v3, v3 = pc_sip_rotl(v3, 21), v3 ^= v0;                           \
        v2 += v1, v1 = pc_sip_rotl(v1, 17), v1 ^= v2, v2 = pc_sip_rotl(v2, 32); \
    } while (0)

/* SipHash-2-4 of n bytes under the key k (16 bytes, read little-endian as k0, k1). */
static inline uint64_t pc_siphash24(const unsigned char key[16], const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t k0 = pc_sip_le64(key), k1 = pc_sip_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull,
             v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = pc_sip_le64(p + i);
        v3 ^= m;
        PC_SIPROUND(v0, v1, v2, v3);
        PC_SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56; /* the length's low byte, then the bytes left */
    for (size_t i = 0; i < n % 8; ++i)
        last |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= last;
    PC_SIPROUND(v0, v1, v2, v3);
    PC_SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i)
        PC_SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif /* TORII_PLUGINS_COMMON_SIPHASH_H */
