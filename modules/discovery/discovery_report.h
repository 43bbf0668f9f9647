// What a DNS or file source tells its sink, and when: a source re-reads its origin every few
// seconds, but the fleet should hear only news. The sink is called when
//   - the list differs from the last one reported (the first list always does),
//   - a list arrives after an error (the same list again: the source has recovered),
//   - an error differs from the last thing reported (the same error twice is said once).
// Lists are compared sorted with duplicates merged, so the order of DNS answers or of lines
// in a file is no news.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "modules/discovery/discovery_source.h"

namespace torii {

// Sorts by family, address and port and merges entries of the same address and port into
// one whose weight is their sum (capped at 1'000'000): the same address listed twice gets
// twice the share, as it would as two entries.
void normalize_targets(std::vector<DiscoveredTarget> &targets);

bool same_targets(const std::vector<DiscoveredTarget> &a, const std::vector<DiscoveredTarget> &b);

class DiscoveryReport {
public:
    explicit DiscoveryReport(DiscoverySink &sink) : sink_(sink) {}

    // Both call the sink last, so the sink may destroy the source (and this) from inside.
    void targets(std::vector<DiscoveredTarget> targets);
    void error(std::string message);

private:
    DiscoverySink &sink_;
    std::optional<std::vector<DiscoveredTarget>> last_;  // none reported yet
    std::string error_;                                  // the current error, if any
};

}  // namespace torii
