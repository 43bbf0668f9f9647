#include "modules/discovery/discovery_report.h"

#include <algorithm>
#include <cstring>

namespace torii {

namespace {

// The address bytes, for ordering: 4 for IPv4, 16 for IPv6.
std::string_view address_bytes(const SocketAddress &a) {
    if (a.family() == AF_INET) {
        const auto *sin = reinterpret_cast<const sockaddr_in *>(&a.storage);
        return {reinterpret_cast<const char *>(&sin->sin_addr), 4};
    }
    if (a.family() == AF_INET6) {
        const auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(&a.storage);
        return {reinterpret_cast<const char *>(&sin6->sin6_addr), 16};
    }
    return {};
}

int compare_address(const SocketAddress &a, const SocketAddress &b) {
    if (a.family() != b.family()) return a.family() < b.family() ? -1 : 1;
    if (int c = address_bytes(a).compare(address_bytes(b))) return c < 0 ? -1 : 1;
    if (a.port() != b.port()) return a.port() < b.port() ? -1 : 1;
    return 0;
}

}  // namespace

void normalize_targets(std::vector<DiscoveredTarget> &targets) {
    std::sort(targets.begin(), targets.end(), [](const auto &a, const auto &b) {
        return compare_address(a.address, b.address) < 0;
    });
    size_t out = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
        if (out > 0 && compare_address(targets[out - 1].address, targets[i].address) == 0) {
            int64_t sum = int64_t(targets[out - 1].weight) + targets[i].weight;
            targets[out - 1].weight = int(std::min<int64_t>(sum, kMaxDiscoveredWeight));
        } else {
            targets[out++] = targets[i];
        }
    }
    targets.resize(out);
}

bool same_targets(const std::vector<DiscoveredTarget> &a, const std::vector<DiscoveredTarget> &b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (compare_address(a[i].address, b[i].address) != 0 || a[i].weight != b[i].weight)
            return false;
    return true;
}

void DiscoveryReport::targets(std::vector<DiscoveredTarget> targets) {
    normalize_targets(targets);
    if (last_ && error_.empty() && same_targets(*last_, targets)) return;
    last_ = targets;
    error_.clear();
    sink_.on_targets(std::move(targets));
}

void DiscoveryReport::error(std::string message) {
    if (message == error_) return;
    error_ = message;
    sink_.on_source_error(message);  // our own copy: the sink may destroy whoever passed it
}

}  // namespace torii
