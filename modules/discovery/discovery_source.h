// A discovery source: where an upstream's targets come from besides its `targets` list
// ([upstream.X] discovery = { type = "dns" | "file" | "etcd", ... }). Sources run in the
// fleet process (core/fleet), one per upstream that has discovery, on its event loop; they
// never block it (no sync DNS, no sync network I/O; a file is read only when its
// modification time or size changed).
//
// A source reports the whole current list each time it learns something new; the fleet
// turns that into target-table changes (additions join the balancers, removals drain).
// A source that fails reports an error instead and the last known list stays in force.
#pragma once

#include <event2/event.h>

#include <memory>
#include <string>
#include <vector>

#include "core/base/socket_address.h"
#include "core/config/config.h"

namespace torii {

// The largest weight a discovered target may have (a file's entry, or merged duplicates).
constexpr int kMaxDiscoveredWeight = 1'000'000;

struct DiscoveredTarget {
    SocketAddress address;
    int weight = 1;  // 1..kMaxDiscoveredWeight
};

class DiscoverySink {
public:
    // The complete current list (possibly empty: every target went away).
    virtual void on_targets(std::vector<DiscoveredTarget> targets) = 0;
    // Why the source could not be read now ("dns: timeout from 127.0.0.1:5353",
    // "file: line 3: bad port"); the last known list is kept.
    virtual void on_source_error(const std::string &message) = 0;

protected:
    ~DiscoverySink() = default;
};

class DiscoverySource {
public:
    virtual ~DiscoverySource() = default;
    // Starts the first lookup now; later ones follow on the source's own timers.
    virtual void start() = 0;
};

// One per discovery type; nullptr when `upstream.discovery.type` is not theirs. The sink
// outlives the source.
std::unique_ptr<DiscoverySource> make_dns_discovery(event_base *base,
                                                    const UpstreamConfig &upstream,
                                                    DiscoverySink &sink);
std::unique_ptr<DiscoverySource> make_file_discovery(event_base *base,
                                                     const UpstreamConfig &upstream,
                                                     DiscoverySink &sink);
std::unique_ptr<DiscoverySource> make_etcd_discovery(event_base *base,
                                                     const UpstreamConfig &upstream,
                                                     DiscoverySink &sink);

}  // namespace torii
