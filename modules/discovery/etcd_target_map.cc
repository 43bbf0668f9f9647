#include "modules/discovery/etcd_target_map.h"

#include <cstring>

namespace torii {

static bool same_target(const DiscoveredTarget &a, const DiscoveredTarget &b) {
    return a.weight == b.weight && a.address.length == b.address.length &&
           std::memcmp(&a.address.storage, &b.address.storage, a.address.length) == 0;
}

void EtcdTargetMap::reset(const std::vector<etcd::KeyValue> &kvs,
                          std::vector<std::string> &errors) {
    targets_.clear();
    for (const etcd::KeyValue &kv : kvs)
        put(kv, errors);
}

bool EtcdTargetMap::apply(const std::vector<etcd::WatchEvent> &events,
                          std::vector<std::string> &errors) {
    bool changed = false;
    for (const etcd::WatchEvent &e : events) {
        if (e.deleted)
            changed |= targets_.erase(e.kv.key) > 0;
        else
            changed |= put(e.kv, errors);
    }
    return changed;
}

bool EtcdTargetMap::put(const etcd::KeyValue &kv, std::vector<std::string> &errors) {
    Result<DiscoveredTarget> target = etcd::parse_target(kv.value);
    if (!target) {
        errors.push_back("key \"" + etcd::printable(kv.key) + "\": " + target.error());
        return targets_.erase(kv.key) > 0;
    }
    auto [it, added] = targets_.try_emplace(kv.key, *target);
    if (added) return true;
    if (same_target(it->second, *target)) return false;
    it->second = *target;
    return true;
}

std::vector<DiscoveredTarget> EtcdTargetMap::targets() const {
    std::vector<DiscoveredTarget> out;
    out.reserve(targets_.size());
    for (const auto &[key, target] : targets_)
        out.push_back(target);
    return out;
}

}  // namespace torii
