// An upstream as one worker sees it at runtime: its targets with their keep-alive pools,
// in-flight counts and passive health, built from the immutable UpstreamConfig.
//
// Picking a target is done by the built-in round robin below until the balancer plugins
// (issue #3) take over; the peer state kept here is what they will read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config/config.h"

namespace torii {

class UpstreamConnection;

struct TargetState {
    const TargetConfig *config = nullptr;
    uint32_t in_flight = 0;
    uint32_t fails = 0;  // failures since fail_window_start_ms
    uint64_t fail_window_start_ms = 0;
    uint64_t down_until_ms = 0;  // passive health: skipped until then
    // Idle keep-alive connections, oldest first; reused from the back (warmest).
    std::vector<std::unique_ptr<UpstreamConnection>> idle;
};

class UpstreamRuntime {
public:
    explicit UpstreamRuntime(const UpstreamConfig &config);
    ~UpstreamRuntime();

    const UpstreamConfig &config() const { return config_; }
    size_t size() const { return targets_.size(); }
    TargetState &target(size_t i) { return targets_[i]; }

    static constexpr int kNoneLeft = -1;     // every target was tried
    static constexpr int kNoneHealthy = -2;  // targets remain, but all are marked down
    // Round robin over targets not in `tried` (a bitmask) and not marked down.
    int pick(uint64_t tried);

    // An idle pooled connection to `target`, or nullptr.
    std::unique_ptr<UpstreamConnection> take_idle(int target);
    // Returns a connection whose last exchange completed cleanly.
    void release(std::unique_ptr<UpstreamConnection> conn);
    // The pool noticed that an idle connection was closed by the upstream.
    void drop_idle(UpstreamConnection *conn);

    // Passive health feedback from an attempt.
    void report_failure(int target);
    void report_success(int target);

private:
    const UpstreamConfig &config_;
    std::vector<TargetState> targets_;
    size_t next_ = 0;
};

}  // namespace torii
