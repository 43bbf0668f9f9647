// Active health checks of one upstream ([upstream.X.health]), run by the fleet (once per
// machine): every `interval` (jittered by up to ±10% so that many upstreams and machines do
// not probe in step) each live target gets one probe (modules/health/health_probe.h), at most
// one at a time. `unhealthy` failures in a row mark a target down for every worker,
// `healthy` passes in a row bring it back (the rise/fall thresholds against flapping); each
// transition is logged, and every result is kept for GET /upstreams.
#pragma once

#include <event2/event.h>

#include <memory>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/config/config.h"
#include "modules/health/health_probe.h"

namespace torii {

class TargetTable;

class HealthChecker {
public:
    HealthChecker(event_base *base, const UpstreamConfig &upstream, TargetTable &table,
                  int table_upstream);
    ~HealthChecker();
    HealthChecker(const HealthChecker &) = delete;
    HealthChecker &operator=(const HealthChecker &) = delete;

    void start();  // the first round now

private:
    struct Running {
        uint32_t slot;
        uint64_t id;
        std::string address;
        std::unique_ptr<HealthProbe> probe;
    };
    static void on_round_cb(evutil_socket_t, short, void *ctx);
    void do_round();
    void do_schedule();
    void on_result(Running *r, const ProbeResult &result);

    event_base *base_;
    const UpstreamConfig &upstream_;
    TargetTable &table_;
    int index_;
    EventPtr timer_;
    std::vector<std::unique_ptr<Running>> running_;
    // Probes whose callback ran: freed at the next round, not inside their own callback.
    std::vector<std::unique_ptr<Running>> finished_;
};

}  // namespace torii
