// A fast, non-cryptographic PRNG for values that must be unique but are made on every
// request ($request_id): wyrand (Wang Yi's, from wyhash), one per process, seeded from
// getrandom(2). Its 64-bit state is a Weyl sequence, so a process never repeats an output
// within 2^64 calls, and two seeds from the kernel almost surely never run into each
// other's sequence. Not for secrets: the outputs reveal the state.
//
// A syscall per request would cost more than the rest of the id; a generator seeded before
// fork would give every worker the same ids, so each worker reseeds in Worker::init (after
// the fork), and the first use seeds a process that never did (unit tests, single process).
#pragma once

#include <cstdint>

namespace torii::fast_random {

// Takes a new seed from the kernel (getrandom, falling back to the clock and pid).
void reseed();

namespace detail {
inline uint64_t state = 0;
inline bool seeded = false;
}  // namespace detail

// The next 64 random bits. Inline: a request id takes two.
inline uint64_t next() {
    using namespace detail;
    if (!seeded) [[unlikely]]
        reseed();
    state += 0xa0761d6478bd642full;
    __uint128_t t = static_cast<__uint128_t>(state) * (state ^ 0xe7037ed1a0b428dbull);
    return static_cast<uint64_t>(t >> 64) ^ static_cast<uint64_t>(t);
}

}  // namespace torii::fast_random
