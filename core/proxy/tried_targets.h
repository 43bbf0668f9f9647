// The targets one request has tried, for any number of targets: a 64-bit word inline (no
// allocation for the usual upstream) and a heap bitmap only for larger upstreams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace torii {

class TriedTargets {
public:
    bool has(size_t i) const {
        if (i < 64) return (small_ >> i) & 1;
        size_t w = i / 64 - 1;
        return w < big_.size() && ((big_[w] >> (i % 64)) & 1);
    }
    void add(size_t i) {
        if (i < 64) {
            small_ |= uint64_t{1} << i;
            return;
        }
        size_t w = i / 64 - 1;
        if (w >= big_.size()) big_.resize(w + 1);
        big_[w] |= uint64_t{1} << (i % 64);
    }
    void remove(size_t i) {
        if (i < 64) {
            small_ &= ~(uint64_t{1} << i);
            return;
        }
        size_t w = i / 64 - 1;
        if (w < big_.size()) big_[w] &= ~(uint64_t{1} << (i % 64));
    }

private:
    uint64_t small_ = 0;
    std::vector<uint64_t> big_;  // targets 64 and up
};

}  // namespace torii
