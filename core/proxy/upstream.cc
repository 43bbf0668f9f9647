#include "core/proxy/upstream.h"

#include "core/proxy/upstream_connection.h"
#include "core/worker/worker.h"

namespace torii {

// How long an idle pooled connection is kept (nginx's keepalive_timeout in upstream{}).
static constexpr int64_t kIdleTimeoutMs = 60'000;

UpstreamRuntime::UpstreamRuntime(const UpstreamConfig &config) : config_(config) {
    targets_.resize(config.targets.size());
    for (size_t i = 0; i < targets_.size(); ++i)
        targets_[i].config = &config.targets[i];
}

UpstreamRuntime::~UpstreamRuntime() = default;

int UpstreamRuntime::pick(uint64_t tried) {
    size_t n = targets_.size();
    if (n == 0) return kNoneLeft;
    uint64_t now = Worker::now_ms();
    bool any_untried = false;
    for (size_t k = 0; k < n; ++k) {
        size_t i = (next_ + k) % n;
        if (i < 64 && (tried & (uint64_t{1} << i))) continue;
        any_untried = true;
        if (targets_[i].down_until_ms > now) continue;
        next_ = i + 1;
        return static_cast<int>(i);
    }
    return any_untried ? kNoneHealthy : kNoneLeft;
}

std::unique_ptr<UpstreamConnection> UpstreamRuntime::take_idle(int target) {
    auto &idle = targets_[target].idle;
    if (idle.empty()) return nullptr;
    std::unique_ptr<UpstreamConnection> conn = std::move(idle.back());
    idle.pop_back();
    return conn;
}

void UpstreamRuntime::release(std::unique_ptr<UpstreamConnection> conn) {
    auto &idle = targets_[conn->target()].idle;
    if (config_.keepalive <= 0) {
        Worker::current().defer_delete(std::move(conn));
        return;
    }
    if (idle.size() >= static_cast<size_t>(config_.keepalive)) {
        // Full: the least recently used connection makes room.
        Worker::current().defer_delete(std::move(idle.front()));
        idle.erase(idle.begin());
    }
    conn->park(kIdleTimeoutMs);
    idle.push_back(std::move(conn));
}

void UpstreamRuntime::drop_idle(UpstreamConnection *conn) {
    auto &idle = targets_[conn->target()].idle;
    for (auto it = idle.begin(); it != idle.end(); ++it) {
        if (it->get() == conn) {
            Worker::current().defer_delete(std::move(*it));
            idle.erase(it);
            return;
        }
    }
}

void UpstreamRuntime::report_failure(int target) {
    // A lone target is never marked down: there is nowhere else to go (nginx does the same).
    if (targets_.size() < 2) return;
    TargetState &t = targets_[target];
    const HealthConfig &h = config_.health;
    uint64_t now = Worker::now_ms();
    if (now - t.fail_window_start_ms > static_cast<uint64_t>(h.fail_timeout)) {
        t.fail_window_start_ms = now;
        t.fails = 0;
    }
    if (++t.fails >= static_cast<uint32_t>(h.max_fails > 0 ? h.max_fails : 1)) {
        t.down_until_ms = now + static_cast<uint64_t>(h.fail_timeout);
        t.fails = 0;
    }
}

void UpstreamRuntime::report_success(int target) {
    targets_[target].fails = 0;
}

}  // namespace torii
