// The fleet: the once-per-machine work on the target table (core/fleet/target_table.h) —
// discovery sources, active health checks, and saving the admin API's changes to
// [admin] state_file. The master forks one fleet process per generation
// (core/fleet/fleet_process.h) and restarts it when it dies; with master_process = false the
// one process runs it on its own loop. Workers never probe or resolve: they read the table.
#pragma once

#include <event2/event.h>

#include <memory>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/config/config.h"

namespace torii {

class TargetTable;
class HealthChecker;

// Whether `config` gives the fleet anything to do (health checks, discovery, a state file).
bool fleet_needed(const Config &config);
// At start: lays the admin changes saved in [admin] state_file over the config's targets.
// A missing file is no error (nothing was changed yet).
Result<void> restore_admin_state(TargetTable &table, const Config &config);

class Fleet {
public:
    Fleet(event_base *base, std::shared_ptr<const Config> config, TargetTable &table);
    ~Fleet();
    Fleet(const Fleet &) = delete;
    Fleet &operator=(const Fleet &) = delete;

    void start();
    // Writes the state file now if admin changes are not saved yet (before the process exits).
    void save_state();

private:
    struct Discovery;
    static void on_state_tick_cb(evutil_socket_t, short, void *ctx);

    event_base *base_;
    std::shared_ptr<const Config> config_;
    TargetTable &table_;
    std::vector<std::unique_ptr<Discovery>> discoveries_;
    std::vector<std::unique_ptr<HealthChecker>> checkers_;
    EventPtr state_timer_;
    uint64_t saved_changes_ = 0;
};

}  // namespace torii
