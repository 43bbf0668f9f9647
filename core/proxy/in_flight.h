// Counts one exchange in its target's in_flight — this worker's count and the machine's in
// the shared target table (what least_conn and the admin view read) — for exactly as long as
// the handle lives or until release(): no path can forget the decrement or do it twice.
#pragma once

#include <atomic>
#include <cstdint>

namespace torii {

class InFlight {
public:
    InFlight() = default;
    InFlight(uint32_t *count, std::atomic<uint32_t> *shared) : count_(count), shared_(shared) {
        ++*count_;
        shared_->fetch_add(1, std::memory_order_relaxed);
    }
    InFlight(const InFlight &) = delete;
    InFlight &operator=(const InFlight &) = delete;
    InFlight(InFlight &&o) noexcept : count_(o.count_), shared_(o.shared_) { o.count_ = nullptr; }
    InFlight &operator=(InFlight &&o) noexcept {
        release();
        count_ = o.count_;
        shared_ = o.shared_;
        o.count_ = nullptr;
        return *this;
    }
    ~InFlight() { release(); }
    void release() {
        if (count_) {
            --*count_;
            shared_->fetch_sub(1, std::memory_order_relaxed);
        }
        count_ = nullptr;
    }

private:
    uint32_t *count_ = nullptr;
    std::atomic<uint32_t> *shared_ = nullptr;
};

}  // namespace torii
