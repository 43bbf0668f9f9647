// One active health check of one target ([upstream.X.health]): type = "tcp" connects;
// type = "http" sends `GET path` (Host: `host` or the target's address; over TLS with the
// upstream's TLS settings when the upstream uses TLS) and checks the status against
// `statuses` (default 2xx/3xx) and the body against `body_contains`; type = "grpc" (h2 and
// h2c upstreams) asks grpc.health.v1.Health/Check about `service` and passes on SERVING.
// Everything is bounded by `timeout`. Probes run in the fleet process (core/fleet) on its event
// loop, never blocking.
//
// The scheduler (interval with jitter, healthy/unhealthy thresholds, transitions) is the
// fleet's HealthChecker; a probe only answers "did this one check pass, and why not".
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>

#include "core/base/socket_address.h"
#include "core/config/config.h"

namespace torii {

struct ProbeResult {
    bool ok = false;
    // For logs and GET /upstreams: "HTTP 200", "HTTP 503", "connection refused", "timeout",
    // "TLS: certificate verify failed", "body lacks \"ready\"".
    std::string message;
};

class HealthProbe {
public:
    virtual ~HealthProbe() = default;
};

// Starts one check of `target` (`address_text` as in the table, "127.0.0.1:9001"). `done`
// is called exactly once, from the event loop (never from inside this call), unless the
// probe is destroyed first, which cancels it. nullptr only when nothing can be started, and
// then *result says why.
std::unique_ptr<HealthProbe> start_health_probe(event_base *base, const UpstreamConfig &upstream,
                                                const SocketAddress &target,
                                                const std::string &address_text,
                                                std::function<void(ProbeResult)> done,
                                                ProbeResult *result);

}  // namespace torii
