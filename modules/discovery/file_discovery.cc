// Placeholder until the file source lands (branch fleet-dns): no source, so the fleet
// logs that this discovery type is not available and keeps the config's targets.
#include "modules/discovery/discovery_source.h"

namespace torii {

std::unique_ptr<DiscoverySource> make_file_discovery(event_base *, const UpstreamConfig &,
                                                     DiscoverySink &) {
    return nullptr;
}

}  // namespace torii
