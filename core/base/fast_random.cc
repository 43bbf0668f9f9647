#include "core/base/fast_random.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace torii::fast_random {

namespace {

// Spreads a weak seed over the whole state (Vigna's recommendation for xoshiro).
uint64_t splitmix64(uint64_t &x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
}  // namespace

void reseed() {
    using namespace detail;
    size_t got = 0;
    auto *bytes = reinterpret_cast<unsigned char *>(state);
    while (got < sizeof state) {
        ssize_t n = getrandom(bytes + got, sizeof state - got, 0);
        if (n > 0) {
            got += static_cast<size_t>(n);
        } else if (n < 0 && errno != EINTR) {
            break;
        }
    }
    if (got < sizeof state) {
        // No getrandom (a very old kernel or a seccomp filter): the clock and pid still make
        // two workers differ.
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
                     static_cast<uint64_t>(ts.tv_nsec) + (static_cast<uint64_t>(getpid()) << 32);
        for (uint64_t &s : state)
            s ^= splitmix64(x);
    }
    if ((state[0] | state[1] | state[2] | state[3]) == 0) state[0] = 1;  // the one bad state
    seeded = true;
}

}  // namespace torii::fast_random
