// Stable target ids. A target is known by a 64-bit id derived from what it is — its
// upstream's name, its address in canonical form and, for an address listed more than once,
// which occurrence — not by its index: reordering the list, adding or removing other
// targets, or reloading keeps the id of every target that stays. State that must outlive a
// reload or a change of the set (health, drain, the shared target table) is keyed by it.
#pragma once

#include <cstdint>
#include <string_view>

namespace torii {

struct SocketAddress;

uint64_t stable_target_id(std::string_view upstream, const SocketAddress &address,
                          unsigned occurrence);

}  // namespace torii
