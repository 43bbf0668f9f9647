// The function table torii hands every plugin (torii_host_t): request and response heads,
// variables, respond, pause/resume, timers, shared state, logging and config access.
#pragma once

#include <torii/plugin.h>

namespace torii {

class SharedZone;

const torii_host_t *host_api();
// The shared-memory zone behind counter_* and kv_* (made by the process model before the
// workers start). Without one, those calls answer TORII_EINVAL.
void set_shared_zone(SharedZone *zone);
SharedZone *shared_zone();

}  // namespace torii
