// What the master tells the workers about the process tree, for the admin /status page:
// generation, its workers' PIDs, when the config was loaded, how many old workers still
// drain. One anonymous MAP_SHARED page written only by the master and read by workers
// under a sequence counter (a reader retries while a write is under way).
//
// The same mapping holds one WorkerSlot per running worker, written the other way: by its
// worker, read by the master after the worker died (core/process/worker_slot.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "core/process/worker_slot.h"

namespace torii {

// A worker of an old generation that still drains; `slot` is its WorkerSlot, where it
// counts its open connections.
struct DrainingWorker {
    uint32_t generation = 0;
    pid_t pid = 0;
    int slot = -1;
    bool closing = false;  // retired early (max_draining_generations): closing right now
};

// One reload attempt, for the dashboard's reload history.
struct ReloadEvent {
    time_t at = 0;
    uint32_t generation = 0;  // the one serving afterwards: the new one, or the kept one
    bool ok = false;
    std::string error;  // why it failed (first kReloadErrorMax bytes)
};

struct StatusSnapshot {
    uint32_t generation = 0;
    time_t config_loaded = 0;
    std::vector<pid_t> workers;
    uint32_t draining = 0;
    std::vector<DrainingWorker> draining_workers;  // oldest generation first
    uint64_t reloads = 0;                          // successful
    uint64_t reload_failures = 0;
    pid_t master = 0;
    std::vector<ReloadEvent> reload_history;  // the last kReloadHistory attempts, oldest first
};

class MasterStatus {
public:
    static MasterStatus *create();  // before the first fork
    static void destroy(MasterStatus *s);

    void publish(const StatusSnapshot &s);  // master only
    StatusSnapshot read() const;            // any process

    // Slots for the workers' last request lines; the master hands one to each worker it
    // forks and reads it back when that worker dies.
    static constexpr int kSlots = 1024;
    static constexpr size_t kReloadHistory = 16;
    static constexpr size_t kReloadErrorMax = 240;
    WorkerSlot *worker_slot(int i);

private:
    struct Page;
    Page *page_ = nullptr;
};

}  // namespace torii
