#include "core/config/target_id.h"

#include <string>

#include "core/base/socket_address.h"

namespace torii {

// FNV-1a, 64 bits: computed at config load only; what matters is that it is fixed across
// builds and processes (std::hash is not promised to be).
static uint64_t fnv1a(uint64_t h, std::string_view s) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t stable_target_id(std::string_view upstream, const SocketAddress &address,
                          unsigned occurrence) {
    uint64_t h = fnv1a(0xcbf29ce484222325ull, upstream);
    h = fnv1a(h, std::string_view("\0", 1));  // "ab"+"c" and "a"+"bc" differ
    h = fnv1a(h, address.to_string());        // canonical: "127.0.0.1:80", "[::1]:80"
    h = fnv1a(h, std::string_view("\0", 1));
    return fnv1a(h, std::to_string(occurrence));
}

}  // namespace torii
