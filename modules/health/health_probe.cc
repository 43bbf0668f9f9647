// Placeholder until the probe lands (branch fleet-probe): every check reports that probes
// are not available, so no target is ever marked down by an active check.
#include "modules/health/health_probe.h"

namespace torii {

std::unique_ptr<HealthProbe> start_health_probe(event_base *, const UpstreamConfig &,
                                                const SocketAddress &, const std::string &,
                                                std::function<void(ProbeResult)>,
                                                ProbeResult *result) {
    result->ok = true;
    result->message = "active probes not available in this build";
    return nullptr;
}

}  // namespace torii
