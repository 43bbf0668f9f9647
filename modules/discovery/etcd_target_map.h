// The targets under an etcd prefix as etcd last described them: one per key whose value is
// a valid target, in key order. A range replaces the whole map; watch events change it key
// by key. A key whose value is not a valid target is left out (an update that breaks a good
// key removes its target too: the map is then what a fresh range would give, whether or not
// torii was connected when the update happened) and named in an error; the others stay.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "modules/discovery/discovery_source.h"
#include "modules/discovery/etcd_codec.h"

namespace torii {

class EtcdTargetMap {
public:
    // Everything from a range response. Each skipped key adds a message to `errors`.
    void reset(const std::vector<etcd::KeyValue> &kvs, std::vector<std::string> &errors);
    // A batch of watch events, in order. True when the targets changed.
    bool apply(const std::vector<etcd::WatchEvent> &events, std::vector<std::string> &errors);

    std::vector<DiscoveredTarget> targets() const;
    size_t size() const { return targets_.size(); }

private:
    // True when the map changed.
    bool put(const etcd::KeyValue &kv, std::vector<std::string> &errors);

    std::map<std::string, DiscoveredTarget> targets_;
};

}  // namespace torii
