// Counts one exchange in its target's in_flight (what least_conn and the admin view read)
// for exactly as long as the handle lives or until release(): no path can forget the
// decrement or do it twice.
#pragma once

#include <cstdint>

namespace torii {

class InFlight {
public:
    InFlight() = default;
    explicit InFlight(uint32_t *count) : count_(count) { ++*count_; }
    InFlight(const InFlight &) = delete;
    InFlight &operator=(const InFlight &) = delete;
    InFlight(InFlight &&o) noexcept : count_(o.count_) { o.count_ = nullptr; }
    InFlight &operator=(InFlight &&o) noexcept {
        release();
        count_ = o.count_;
        o.count_ = nullptr;
        return *this;
    }
    ~InFlight() { release(); }
    void release() {
        if (count_) --*count_;
        count_ = nullptr;
    }

private:
    uint32_t *count_ = nullptr;
};

}  // namespace torii
