// A fast, non-cryptographic PRNG for values that must be unique and unpredictable enough
// but are made on every request ($request_id): xoshiro256** (Blackman and Vigna), one per
// process, seeded from getrandom(2). A syscall per request would cost more than the rest of
// the id; a generator seeded before fork would give every worker the same ids, so each
// worker reseeds in Worker::init (after the fork) and the first use seeds a process that
// never did (the master's -T, the unit tests).
#pragma once

#include <cstdint>

namespace torii::fast_random {

// Takes a new seed from the kernel (getrandom, falling back to the clock and pid).
void reseed();

namespace detail {
inline uint64_t state[4];
inline bool seeded = false;
inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}
}  // namespace detail

// The next 64 random bits. Inline: a request id takes two.
inline uint64_t next() {
    using namespace detail;
    if (!seeded) [[unlikely]]
        reseed();
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

}  // namespace torii::fast_random
