// Where a member of a location's plugin chain comes from: the location's own table, the
// server's instance inherited, or the server's instance switched back on by a bare table in
// the location. `torii -T` (core/process/config_dump.cc) writes it as a comment and the
// admin /config view (modules/admin/config_view.cc) as a field; both ask here.
#pragma once

#include "core/plugin/plugin_set.h"

namespace torii {

struct LocationConfig;

enum class ChainOrigin { own, inherited, switched_on };

// `server` is the server's chain; `location` is null for the server's own chain (whose
// members are all `own`).
ChainOrigin chain_origin(const PluginInstance *inst, const PhaseChain *server,
                         const LocationConfig *location);

}  // namespace torii
