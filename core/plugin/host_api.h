// The function table torii hands every plugin (torii_host_t): request and response heads,
// variables, respond, pause/resume, timers, shared state, logging and config access.
#pragma once

#include <torii/plugin.h>

#include <vector>

namespace torii {

class SharedZone;

const torii_host_t *host_api();
// The shared-memory zone behind counter_* and kv_* (made by the process model before the
// workers start). Without one, those calls answer TORII_EINVAL.
void set_shared_zone(SharedZone *zone);
SharedZone *shared_zone();

// host->timer_add and io_watch called from create() (in the master, or before the worker's
// loop exists) make handles that wait here, in the PluginSet being loaded; PluginSet's
// worker_init arms them on the worker's loop (each worker its own, inherited by fork), and
// its destructor frees those never armed.
struct DeferredHandles {
    std::vector<torii_timer *> timers;
    std::vector<torii_io *> ios;
    void arm();      // in the worker, before worker_init hooks run
    void release();  // frees what was never armed
};

}  // namespace torii
