// A log-linear latency histogram in the spirit of HdrHistogram: fixed memory, constant-time
// record, every value kept within 1/128 (0.8%) of its true size.
//
// Values below 256 have a counter each. Above, each power of two [2^e, 2^(e+1)) is split into
// 128 equal sub-buckets, so a counter covers at most 2^(e-7) values: the relative width never
// exceeds 1/128. Every uint64_t fits (56 powers of two above 2^8), so nothing is clamped and a
// stall of any length lands in the tail where it belongs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace torii::loadgen {

class Histogram {
public:
    static constexpr unsigned kSubBits = 7;                       // 128 sub-buckets per power
    static constexpr uint64_t kLinear = uint64_t{2} << kSubBits;  // 256 exact counters
    static constexpr size_t kCounters = kLinear + (64 - (kSubBits + 1)) * (kLinear / 2);

    void record(uint64_t value, uint64_t count = 1);

    uint64_t count() const { return total_; }
    uint64_t min() const { return total_ ? min_ : 0; }
    uint64_t max() const { return max_; }
    double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }

    // The smallest recorded value v such that at least `percent`% of the values are <= v, as
    // the highest value of its counter (never above max()); 0 when empty. percent in [0, 100].
    uint64_t percentile(double percent) const;

    // Counter index of a value and the range of values that counter holds (tests, and the
    // percentile walk).
    static size_t index_of(uint64_t value);
    static uint64_t lowest_of(size_t index);
    static uint64_t highest_of(size_t index);

private:
    std::array<uint64_t, kCounters> counts_{};
    uint64_t total_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
    double sum_ = 0.0;
};

}  // namespace torii::loadgen
