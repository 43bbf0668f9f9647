#include "modules/health/health_checker.h"

#include <cstdlib>

#include "core/base/log.h"
#include "core/fleet/target_table.h"

namespace torii {

HealthChecker::HealthChecker(event_base *base, const UpstreamConfig &upstream, TargetTable &table,
                             int table_upstream)
    : base_(base), upstream_(upstream), table_(table), index_(table_upstream) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start() {
    timer_.reset(evtimer_new(base_, on_round_cb, this));
    do_round();
}

void HealthChecker::on_round_cb(evutil_socket_t, short, void *ctx) {
    static_cast<HealthChecker *>(ctx)->do_round();
}

void HealthChecker::do_schedule() {
    int64_t interval = upstream_.health.interval;
    int64_t jitter = interval / 10;
    int64_t next = interval + (jitter > 0 ? (random() % (2 * jitter + 1)) - jitter : 0);
    timeval tv = to_timeval(next > 0 ? next : 1);
    evtimer_add(timer_.get(), &tv);
}

void HealthChecker::do_round() {
    finished_.clear();
    uint64_t version = 0;
    for (const TargetTable::Member &m : table_.members(index_, &version)) {
        bool busy = false;  // the previous probe of this target has not answered yet
        for (const auto &r : running_)
            busy |= r->slot == m.slot && r->id == m.id;
        if (busy) continue;
        auto r = std::make_unique<Running>(Running{m.slot, m.id, m.address, nullptr});
        Running *raw = r.get();
        ProbeResult failed;
        r->probe = start_health_probe(
            base_, upstream_, m.sockaddr, m.address,
            [this, raw](ProbeResult res) { on_result(raw, res); }, &failed);
        if (!r->probe) {
            running_.push_back(std::move(r));
            on_result(raw, failed);
            continue;
        }
        running_.push_back(std::move(r));
    }
    do_schedule();
}

void HealthChecker::on_result(Running *r, const ProbeResult &result) {
    int turned = table_.record_check(r->slot, r->id, result.ok, result.message,
                                     upstream_.health.healthy, upstream_.health.unhealthy);
    if (turned < 0)
        log_warn("upstream \"%s\": target %s is down: %d active check(s) in a row failed (%s)",
                 upstream_.name.c_str(), r->address.c_str(), upstream_.health.unhealthy,
                 result.message.c_str());
    else if (turned > 0)
        log_notice("upstream \"%s\": target %s is up again: %d active check(s) in a row passed",
                   upstream_.name.c_str(), r->address.c_str(), upstream_.health.healthy);
    for (auto it = running_.begin(); it != running_.end(); ++it) {
        if (it->get() != r) continue;
        finished_.push_back(std::move(*it));
        running_.erase(it);
        break;
    }
}

}  // namespace torii
