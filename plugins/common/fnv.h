/* FNV-1a hashes shared by the bundled plugins (compiled into each one that includes this).
 * Header-only and static inline: stats hashes every request's labels, so a call per byte
 * range would show on the hot path. */
#ifndef TORII_PLUGINS_COMMON_FNV_H
#define TORII_PLUGINS_COMMON_FNV_H

#include <stddef.h>
#include <stdint.h>

#define PC_FNV64_INIT 1469598103934665603ull
#define PC_FNV64_PRIME 1099511628211ull

/* Continues a 64-bit FNV-1a hash `h` (start with PC_FNV64_INIT) over n bytes. */
static inline uint64_t pc_fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= PC_FNV64_PRIME;
    }
    return h;
}

/* 32-bit FNV-1a of n bytes. */
static inline uint32_t pc_fnv32(const void *p, size_t n) {
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

/* FNV-1a of n bytes (its basis xor `seed`), then a 64-bit finaliser (MurmurHash3's fmix64) so
 * that similar strings spread over all 64 bits: for hash rings and fixed-width keys. */
static inline uint64_t pc_hash64(const void *p, size_t n, uint64_t seed) {
    uint64_t h = pc_fnv64(PC_FNV64_INIT ^ seed, p, n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif /* TORII_PLUGINS_COMMON_FNV_H */
