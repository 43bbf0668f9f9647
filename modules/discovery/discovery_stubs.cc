// Placeholders until the sources land (branch fleet-etcd): no source, so the fleet logs
// that this discovery type is not available and keeps the config's targets. The DNS and
// file sources are in dns_discovery.cc and file_discovery.cc.
#include "modules/discovery/discovery_source.h"

namespace torii {

std::unique_ptr<DiscoverySource> make_etcd_discovery(event_base *, const UpstreamConfig &,
                                                     DiscoverySink &) {
    return nullptr;
}

}  // namespace torii
