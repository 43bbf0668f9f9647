// One fast seeded 64-bit hash for tables and rings (not cryptographic), handed to plugins as
// host->hash64 so that each does not carry its own FNV. Eight bytes a step with a
// multiply-xorshift mix (the shape of wyhash and MurmurHash3's finaliser); stable across
// processes and versions of one ABI major, since rings and shared keys depend on it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace torii {

uint64_t hash64(const void *data, size_t len, uint64_t seed);

}  // namespace torii
