#include "core/base/fast_random.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace torii::fast_random {

void reseed() {
    using namespace detail;
    uint64_t seed = 0;
    auto *bytes = reinterpret_cast<unsigned char *>(&seed);
    size_t got = 0;
    while (got < sizeof seed) {
        ssize_t n = getrandom(bytes + got, sizeof seed - got, 0);
        if (n > 0) {
            got += static_cast<size_t>(n);
        } else if (n < 0 && errno != EINTR) {
            break;
        }
    }
    if (got < sizeof seed) {
        // No getrandom (a very old kernel, a seccomp filter): the clock and the pid still
        // make two workers differ.
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed ^= static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
                static_cast<uint64_t>(ts.tv_nsec) + (static_cast<uint64_t>(getpid()) << 40);
    }
    state = seed;
    seeded = true;
}

}  // namespace torii::fast_random
