#include "core/plugin/chain_origin.h"

#include <algorithm>

#include "core/config/config.h"

namespace torii {

ChainOrigin chain_origin(const PluginInstance *inst, const PhaseChain *server,
                         const LocationConfig *location) {
    if (!server || !location) return ChainOrigin::own;
    const auto &members = server->members;
    if (std::find(members.begin(), members.end(), inst) == members.end()) return ChainOrigin::own;
    const std::string &name = inst->plugin->name();
    bool listed = std::any_of(location->plugins.begin(), location->plugins.end(),
                              [&](const PluginUse &u) { return u.name == name && u.enabled; });
    return listed ? ChainOrigin::switched_on : ChainOrigin::inherited;
}

}  // namespace torii
