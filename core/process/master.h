// The master process: owns the configuration, the listening sockets, the shared-memory zone
// and the plugin set, and runs generations of worker processes on them.
//
//   start:   load + validate → open sockets → shared zone → pid file → fork N workers (gen 1)
//   SIGHUP:  load + validate afresh (plugins from content-addressed copies) → open new
//            sockets → fork N workers (gen n+1) → SIGQUIT the old generation, which stops
//            accepting and drains; a failure at any step keeps generation n and logs why
//   SIGCHLD: a current-generation worker that died is replaced at once (after a short
//            back-off, at most 250 ms, only when it keeps dying right after start); a
//            crash is logged with its signal and the worker's last request line; an old
//            worker that exits leaves its draining generation
//   SIGQUIT: graceful stop (workers drain up to shutdown_timeout); SIGTERM/SIGINT: fast stop
//   SIGUSR1: reopen logs, in the master and every worker
//
// Listening sockets are never closed while a generation uses them, so no connection waiting
// in an accept queue is lost across a reload.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/result.h"
#include "core/config/config.h"
#include "core/process/master_status.h"

namespace torii {

class PluginSet;
class SharedZone;
class TargetTable;
struct RestartCtx;

class Master {
public:
    explicit Master(std::string config_file);
    ~Master();

    // Runs until stopped; the process exit code.
    int run();

private:
    struct Worker {
        pid_t pid = 0;
        uint64_t started_ms = 0;
        int quick_deaths = 0;    // consecutive deaths soon after start, for back-off
        int status_slot = -1;    // its WorkerSlot in MasterStatus while it runs
        EventPtr restart_timer;  // armed while a restart waits out its back-off
        std::unique_ptr<RestartCtx> restart_ctx;
    };
    struct Generation {
        uint32_t number = 0;
        std::shared_ptr<const Config> config;  // released once the generation drains
        std::shared_ptr<PluginSet> plugins;
        std::vector<Worker> workers;
        time_t loaded_at = 0;
        uint64_t drain_deadline_ms = 0;  // SIGKILL stragglers after this
        bool retired = false;  // told to close now (SIGUSR2): beyond max_draining_generations
    };
    struct Loaded {
        std::shared_ptr<const Config> config;
        std::shared_ptr<PluginSet> plugins;
    };

    static void on_signal_cb(evutil_socket_t sig, short, void *ctx);
    static void on_restart_cb(evutil_socket_t, short, void *ctx);
    static void on_tick_cb(evutil_socket_t, short, void *ctx);
    static void on_fleet_restart_cb(evutil_socket_t, short, void *ctx);

    Result<Loaded> do_load();
    Result<void> do_open_sockets(const Config &config);
    void do_close_unused_sockets();
    void do_spawn(Generation &gen, size_t slot);
    // In a freshly forked child: let go of the master's loop and events.
    void do_leave_master_loop(Generation *gen);
    // The fleet process (core/fleet) for the current generation, when its config needs one.
    void do_spawn_fleet();
    void do_stop_fleet();
    int do_take_status_slot(const Generation &gen) const;
    std::string last_request(Worker &w);  // reads and frees the worker's status slot
    void do_reap_current(size_t i, pid_t pid, int status);
    void do_reload();
    void do_retire_excess(int max_draining);
    void do_stop(bool graceful);
    void do_reap();
    void do_publish_status();
    void do_signal_all(int sig);
    size_t live_workers() const;

    std::string config_file_;
    EventBasePtr base_;
    std::vector<EventPtr> signal_events_;
    EventPtr tick_;
    std::map<std::string, int> sockets_;  // listen address (or "admin") → fd
    std::unique_ptr<Generation> current_;
    std::list<std::unique_ptr<Generation>> draining_;
    SharedZone *zone_ = nullptr;
    TargetTable *table_ = nullptr;
    pid_t fleet_pid_ = 0;
    EventPtr fleet_restart_;
    MasterStatus *status_ = nullptr;
    std::string plugin_copy_dir_;
    uint32_t next_generation_ = 1;
    uint64_t reloads_ = 0;
    uint64_t reload_failures_ = 0;
    std::deque<ReloadEvent> reload_history_;  // the last MasterStatus::kReloadHistory attempts
    void do_note_reload(bool ok, const std::string &error);
    bool stopping_ = false;
    uint64_t stop_deadline_ms_ = 0;
};

}  // namespace torii
