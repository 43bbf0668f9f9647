#include "bench/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace torii::loadgen {

namespace {
constexpr uint64_t kHalf = Histogram::kLinear / 2;  // sub-buckets per power of two
}

size_t Histogram::index_of(uint64_t value) {
    if (value < kLinear) return static_cast<size_t>(value);
    const unsigned e = static_cast<unsigned>(std::bit_width(value)) - 1;  // >= kSubBits + 1
    const unsigned shift = e - kSubBits;
    const uint64_t sub = value >> shift;  // in [kHalf, 2 * kHalf)
    return static_cast<size_t>(kLinear + (e - (kSubBits + 1)) * kHalf + (sub - kHalf));
}

uint64_t Histogram::lowest_of(size_t index) {
    if (index < kLinear) return index;
    const size_t above = index - kLinear;
    const unsigned shift = static_cast<unsigned>(above / kHalf) + 1;
    return (kHalf + above % kHalf) << shift;
}

uint64_t Histogram::highest_of(size_t index) {
    if (index < kLinear) return index;
    const unsigned shift = static_cast<unsigned>((index - kLinear) / kHalf) + 1;
    return lowest_of(index) + ((uint64_t{1} << shift) - 1);
}

void Histogram::record(uint64_t value, uint64_t count) {
    if (count == 0) return;
    counts_[index_of(value)] += count;
    total_ += count;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    sum_ += static_cast<double>(value) * static_cast<double>(count);
}

uint64_t Histogram::percentile(double percent) const {
    if (total_ == 0) return 0;
    percent = std::clamp(percent, 0.0, 100.0);
    // The rank of the value asked for, 1-based: at least the first one.
    auto rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(total_)));
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (size_t i = index_of(min_); i < kCounters; ++i) {
        seen += counts_[i];
        if (seen >= rank) return std::min(highest_of(i), max_);
    }
    return max_;
}

}  // namespace torii::loadgen
