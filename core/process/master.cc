#include "core/process/master.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/base/log.h"
#include "core/config/pending_features.h"
#include "core/fleet/fleet.h"
#include "core/fleet/fleet_process.h"
#include "core/fleet/target_table.h"
#include "core/net/fd_limit.h"
#include "core/net/listener.h"
#include "core/plugin/host_api.h"
#include "core/plugin/plugin_loader.h"
#include "core/plugin/plugin_set.h"
#include "core/process/child_exit.h"
#include "core/process/listen_sockets.h"
#include "core/process/master_status.h"
#include "core/process/pid_file.h"
#include "core/process/zone_state.h"
#include "core/process/worker_process.h"
#include "core/shm/shared_zone.h"
#include "core/worker/worker.h"

namespace torii {

// Extra time past shutdown_timeout before old workers are killed: they stop themselves at
// shutdown_timeout; this only catches a worker that hangs.
static constexpr uint64_t kKillGraceMs = 5000;
// How long a fast stop waits for workers before SIGKILL. In the sanitizer build a worker may
// be writing a LeakSanitizer report on its way out, and symbolizing one takes seconds: the
// SIGKILL would cut it.
#if defined(__SANITIZE_ADDRESS__)
static constexpr uint64_t kFastStopMs = 20000;
#else
static constexpr uint64_t kFastStopMs = 3000;
#endif
// Restart policy. A worker that died while handling requests is replaced at once, always:
// the cause is a request (a plugin crashing on it), each replacement costs one such
// request, so the restart rate can never exceed the rate of bad requests, and a pause would
// only add an outage on top of it (the listening socket stays open and queues, with
// workers = 1 nothing answers). A 30 s back-off once turned 20 aborted requests a second
// into 20 s of silence.
//
// Back-off is for a worker that dies soon after start without having started a request
// (say a plugin crashing in worker_init): nothing outside bounds that loop. After
// kFreeRestarts such deaths in a row the delay doubles from kFirstBackoffMs up to
// kMaxBackoffMs, kept short so a slot is never empty for long.
static constexpr uint64_t kQuickDeathMs = 2000;
static constexpr int kFreeRestarts = 3;
static constexpr uint64_t kFirstBackoffMs = 50;
static constexpr uint64_t kMaxBackoffMs = 250;

static uint64_t restart_delay_ms(int quick_deaths) {
    if (quick_deaths <= kFreeRestarts) return 0;
    int doublings = std::min(quick_deaths - kFreeRestarts - 1, 8);
    return std::min<uint64_t>(kFirstBackoffMs << doublings, kMaxBackoffMs);
}

// Context of a pending restart: the slot of the generation it was scheduled for.
struct RestartCtx {
    Master *master;
    void *generation;
    size_t slot;
};

Master::Master(std::string config_file) : config_file_(std::move(config_file)) {}

Master::~Master() {
    current_.reset();
    draining_.clear();
    for (auto &[key, fd] : sockets_)
        ::close(fd);
    signal_events_.clear();
    tick_.reset();
    fleet_restart_.reset();
    base_.reset();
    set_shared_zone(nullptr);
    SharedZone::destroy(zone_);
    TargetTable::destroy(table_);
    MasterStatus::destroy(status_);
    if (!plugin_copy_dir_.empty()) ::rmdir(plugin_copy_dir_.c_str());
}

Result<Master::Loaded> Master::do_load() {
    auto config = load_config(config_file_);
    if (!config) return make_error(config.error());
    for (const std::string &w : pending_feature_warnings(*config.value()))
        log_warn("%s", w.c_str());
    auto plugins = PluginSet::load(*config.value());
    if (!plugins) return make_error(plugins.error());
    return Loaded{config.value(), std::shared_ptr<PluginSet>(std::move(plugins.value()))};
}

Result<void> Master::do_open_sockets(const Config &config) {
    return open_missing_sockets(config, sockets_);
}

void Master::do_close_unused_sockets() {
    std::set<std::string> used;
    if (current_ && current_->config)
        for (auto &[key, addr] : listen_keys(*current_->config))
            used.insert(key);
    for (auto it = sockets_.begin(); it != sockets_.end();) {
        if (used.count(it->first)) {
            ++it;
            continue;
        }
        // Old workers still hold their own copy until they finish draining.
        ::close(it->second);
        it = sockets_.erase(it);
    }
}

int Master::do_take_status_slot(const Generation &gen) const {
    std::vector<bool> used(MasterStatus::kSlots);
    auto mark = [&used](const Generation &g) {
        for (const Worker &w : g.workers)
            if (w.status_slot >= 0) used[static_cast<size_t>(w.status_slot)] = true;
    };
    if (current_) mark(*current_);
    for (const auto &g : draining_)
        mark(*g);
    mark(gen);
    for (int i = 0; i < MasterStatus::kSlots; ++i)
        if (!used[static_cast<size_t>(i)]) return i;
    return -1;  // more than kSlots workers: the extra ones report no last request
}

std::string Master::last_request(Worker &w) {
    WorkerSlot *slot = status_->worker_slot(w.status_slot);
    w.status_slot = -1;
    std::string line = slot ? slot->request_line() : std::string();
    return line.empty() ? std::string("none") : "\"" + line + "\"";
}

// Signals stay blocked across fork: in the child, until it has installed its own handlers, a
// signal (the next reload's SIGQUIT, a SIGUSR1) would otherwise run the master's handler,
// which writes into the master's signal pipe, or kill the child. The parent unblocks at once.
static pid_t fork_with_signals_blocked() {
    flush_before_fork();
    sigset_t all, saved;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    pid_t pid = fork();
    if (pid != 0) sigprocmask(SIG_SETMASK, &saved, nullptr);
    return pid;
}

void Master::do_spawn(Generation &gen, size_t slot) {
    Worker &w = gen.workers[slot];
    if (w.status_slot < 0) w.status_slot = do_take_status_slot(gen);
    if (WorkerSlot *ws = status_->worker_slot(w.status_slot)) ws->clear();
    pid_t pid = fork_with_signals_blocked();
    if (pid < 0) {
        log_error("fork: %s; retrying in %llums", strerror(errno),
                  static_cast<unsigned long long>(kMaxBackoffMs));
        w.restart_ctx = std::make_unique<RestartCtx>(RestartCtx{this, &gen, slot});
        timeval tv = to_timeval(static_cast<int64_t>(kMaxBackoffMs));
        w.restart_timer.reset(evtimer_new(base_.get(), on_restart_cb, w.restart_ctx.get()));
        evtimer_add(w.restart_timer.get(), &tv);
        return;
    }
    if (pid == 0) {
        // The child leaves the master's loop behind: its events and base go here, so the
        // worker's own base is the only one handling signals in this process. The epoll
        // instance is shared with the master across fork: event_reinit gives the child its
        // own first, or removing these events would remove the master's registrations.
        do_leave_master_loop(&gen);
        // The worker becomes the only owner of its generation's config and plugins in this
        // copy of memory, so that it destroys them (plugins' destroy after their
        // worker_init) when it stops. The master's other objects here are not this
        // process's to destroy: exit_forked_child leaves without running their destructors.
        WorkerProcessArgs args{std::move(gen.config),
                               std::move(gen.plugins),
                               &sockets_,
                               gen.number,
                               status_,
                               config_file_,
                               status_->worker_slot(w.status_slot)};
        exit_forked_child(run_worker_process(std::move(args)));
    }
    w.pid = pid;
    w.started_ms = torii::Worker::now_ms();
    log_notice("generation %u: worker %d started", gen.number, static_cast<int>(pid));
}

void Master::do_leave_master_loop(Generation *gen) {
    event_reinit(base_.get());
    signal_events_.clear();
    tick_.reset();
    fleet_restart_.reset();
    if (current_)
        for (Worker &x : current_->workers)
            x.restart_timer.reset();
    for (auto &g : draining_)
        for (Worker &x : g->workers)
            x.restart_timer.reset();
    if (gen)
        for (Worker &x : gen->workers)
            x.restart_timer.reset();
    base_.reset();
}

// One fleet process per machine, for the serving generation: a reload replaces it (its
// config may have other checks and sources), a crash restarts it after a second.
void Master::do_spawn_fleet() {
    fleet_restart_.reset();
    if (stopping_ || !current_ || !current_->config || !fleet_needed(*current_->config)) return;
    pid_t pid = fork_with_signals_blocked();
    if (pid < 0) {
        log_error("fork (fleet process): %s; retrying in 1s", strerror(errno));
        fleet_restart_.reset(evtimer_new(base_.get(), on_fleet_restart_cb, this));
        timeval tv = to_timeval(1000);
        evtimer_add(fleet_restart_.get(), &tv);
        return;
    }
    if (pid == 0) {
        std::shared_ptr<const Config> config = std::move(current_->config);
        do_leave_master_loop(nullptr);
        exit_forked_child(run_fleet_process(std::move(config), table_, sockets_));
    }
    fleet_pid_ = pid;
    log_notice("generation %u: fleet process %d started (health checks, discovery)",
               current_->number, static_cast<int>(pid));
}

void Master::do_stop_fleet() {
    if (fleet_pid_) kill(fleet_pid_, SIGTERM);
    fleet_pid_ = 0;  // its exit is reaped like any child's
    fleet_restart_.reset();
}

void Master::on_fleet_restart_cb(evutil_socket_t, short, void *arg) {
    static_cast<Master *>(arg)->do_spawn_fleet();
}

void Master::on_restart_cb(evutil_socket_t, short, void *arg) {
    auto *ctx = static_cast<RestartCtx *>(arg);
    Master *m = ctx->master;
    void *gen = ctx->generation;
    size_t slot = ctx->slot;
    // Only the current generation is restarted; a reload since then made its own workers.
    if (!m->stopping_ && m->current_ && m->current_.get() == gen) {
        Worker &w = m->current_->workers[slot];
        w.restart_timer.reset();  // the event is done; freeing it inside its callback is fine
        w.restart_ctx.reset();
        m->do_spawn(*m->current_, slot);
        m->do_publish_status();
    }
}

size_t Master::live_workers() const {
    size_t n = 0;
    if (current_)
        for (const Worker &w : current_->workers)
            n += w.pid != 0;
    for (const auto &g : draining_)
        for (const Worker &w : g->workers)
            n += w.pid != 0;
    return n;
}

void Master::do_signal_all(int sig) {
    if (current_)
        for (Worker &w : current_->workers)
            if (w.pid) kill(w.pid, sig);
    for (auto &g : draining_)
        for (Worker &w : g->workers)
            if (w.pid) kill(w.pid, sig);
}

void Master::do_note_reload(bool ok, const std::string &error) {
    if (reload_history_.size() == MasterStatus::kReloadHistory) reload_history_.pop_front();
    reload_history_.push_back({::time(nullptr), current_ ? current_->number : 0, ok, error});
}

void Master::do_publish_status() {
    StatusSnapshot s;
    s.master = getpid();
    s.reloads = reloads_;
    s.reload_failures = reload_failures_;
    s.reload_history.assign(reload_history_.begin(), reload_history_.end());
    if (current_) {
        s.generation = current_->number;
        s.config_loaded = current_->loaded_at;
        for (const Worker &w : current_->workers)
            if (w.pid) s.workers.push_back(w.pid);
    }
    for (const auto &g : draining_) {
        for (const Worker &w : g->workers) {
            if (!w.pid) continue;
            s.draining++;
            s.draining_workers.push_back({g->number, w.pid, w.status_slot, g->retired});
        }
    }
    status_->publish(s);
}

// "killed by signal 11 (SIGSEGV), core dumped" / "exited with code 2"
static std::string describe_exit(int status) {
    char buf[96];
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = sigabbrev_np(sig);
        snprintf(buf, sizeof buf, "killed by signal %d (SIG%s), %s", sig, name ? name : "?",
                 WCOREDUMP(status) ? "core dumped" : "no core dump");
    } else {
        snprintf(buf, sizeof buf, "exited with code %d", WEXITSTATUS(status));
    }
    return buf;
}

// A worker of the serving generation died: a plugin crash, the OOM killer, a kill. It is
// replaced at once unless it keeps dying right after start before any request (then after a
// short back-off: see kFreeRestarts).
void Master::do_reap_current(size_t i, pid_t pid, int status) {
    Worker &w = current_->workers[i];
    w.pid = 0;
    const WorkerSlot *slot = status_->worker_slot(w.status_slot);
    bool served = slot && slot->len > 0;
    std::string request = last_request(w);
    if (stopping_) {
        // SIGKILL is ours past the stop deadline; any other signal is a crash while stopping.
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
            log_error("generation %u: worker %d %s while stopping; its last request: %s",
                      current_->number, static_cast<int>(pid), describe_exit(status).c_str(),
                      request.c_str());
        return;
    }
    uint64_t now = torii::Worker::now_ms();
    bool quick = !served && now - w.started_ms < kQuickDeathMs;
    w.quick_deaths = quick ? w.quick_deaths + 1 : 0;
    uint64_t delay = restart_delay_ms(w.quick_deaths);
    std::string next = "starting a new one";
    if (delay)
        next += " in " + std::to_string(delay) + "ms (" + std::to_string(w.quick_deaths) +
                " deaths in a row within " + std::to_string(kQuickDeathMs / 1000) +
                " s of start, before any request)";
    bool crashed = WIFSIGNALED(status) || WEXITSTATUS(status) != 0;
    if (crashed)
        log_error("generation %u: worker %d %s; its last request: %s; %s", current_->number,
                  static_cast<int>(pid), describe_exit(status).c_str(), request.c_str(),
                  next.c_str());
    else
        log_warn("generation %u: worker %d %s; %s", current_->number, static_cast<int>(pid),
                 describe_exit(status).c_str(), next.c_str());
    if (delay == 0) {
        do_spawn(*current_, i);
        return;
    }
    w.restart_ctx = std::make_unique<RestartCtx>(RestartCtx{this, current_.get(), i});
    timeval tv = to_timeval(static_cast<int64_t>(delay));
    w.restart_timer.reset(evtimer_new(base_.get(), on_restart_cb, w.restart_ctx.get()));
    evtimer_add(w.restart_timer.get(), &tv);
}

void Master::do_reap() {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        if (pid == fleet_pid_) {
            fleet_pid_ = 0;
            if (stopping_) continue;
            log_error("fleet process %d %s; starting a new one in 1s", static_cast<int>(pid),
                      describe_exit(status).c_str());
            fleet_restart_.reset(evtimer_new(base_.get(), on_fleet_restart_cb, this));
            timeval tv = to_timeval(1000);
            evtimer_add(fleet_restart_.get(), &tv);
            continue;
        }
        bool found = false;
        if (current_) {
            for (size_t i = 0; i < current_->workers.size() && !found; ++i) {
                if (current_->workers[i].pid != pid) continue;
                found = true;
                do_reap_current(i, pid, status);
            }
        }
        if (!found) {
            for (auto it = draining_.begin(); it != draining_.end(); ++it) {
                for (Worker &w : (*it)->workers) {
                    if (w.pid != pid) continue;
                    found = true;
                    w.pid = 0;
                    std::string request = last_request(w);
                    // SIGKILL is ours (past shutdown_timeout) or the OOM killer's; any other
                    // signal is a crash while draining.
                    if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
                        log_error(
                            "generation %u: worker %d %s while draining; its last "
                            "request: %s",
                            (*it)->number, static_cast<int>(pid), describe_exit(status).c_str(),
                            request.c_str());
                    else
                        log_notice("generation %u: worker %d finished draining (%s)", (*it)->number,
                                   static_cast<int>(pid), describe_exit(status).c_str());
                }
            }
            draining_.remove_if([](const std::unique_ptr<Generation> &g) {
                for (const Worker &w : g->workers)
                    if (w.pid) return false;
                return true;
            });
        }
    }
    do_publish_status();
    if (stopping_ && live_workers() == 0) event_base_loopexit(base_.get(), nullptr);
}

void Master::do_reload() {
    if (stopping_) return;
    log_notice("reloading %s", config_file_.c_str());
    auto loaded = do_load();
    Result<void> opened = loaded ? do_open_sockets(*loaded.value().config) : Result<void>();
    if (!loaded || !opened) {
        reload_failures_++;
        const std::string &why = !loaded ? loaded.error() : opened.error();
        log_error("reload failed, generation %u keeps serving: %s", current_->number, why.c_str());
        do_note_reload(false, why);
        do_close_unused_sockets();  // whatever this attempt opened
        do_publish_status();
        return;
    }
    const Config &config = *loaded.value().config;
    if (Result<void> laid = table_->apply_config(config, false); !laid) {
        reload_failures_++;
        log_error("reload failed, generation %u keeps serving: %s", current_->number,
                  laid.error().c_str());
        do_note_reload(false, laid.error());
        do_close_unused_sockets();
        do_publish_status();
        return;
    }
    LogLevel level = LogLevel::info;
    Log::parse_level(config.main.log_level, &level);
    Log::open(config.main.error_log, level, nullptr);
    std::string fd_warning = raise_fd_limit(config.main.worker_connections);
    if (!fd_warning.empty()) log_warn("%s", fd_warning.c_str());

    auto gen = std::make_unique<Generation>();
    gen->number = next_generation_++;
    gen->config = loaded.value().config;
    gen->plugins = loaded.value().plugins;
    gen->loaded_at = ::time(nullptr);
    gen->workers.resize(static_cast<size_t>(config.main.workers));
    for (size_t i = 0; i < gen->workers.size(); ++i)
        do_spawn(*gen, i);

    std::unique_ptr<Generation> old = std::move(current_);
    current_ = std::move(gen);
    // The old workers stop accepting and finish what they hold; they exit by themselves at
    // their shutdown_timeout, and the tick kills any that hang past it.
    old->drain_deadline_ms = torii::Worker::now_ms() +
                             static_cast<uint64_t>(old->config->main.shutdown_timeout) +
                             kKillGraceMs;
    for (Worker &w : old->workers) {
        w.restart_timer.reset();
        if (w.pid) kill(w.pid, SIGQUIT);
    }
    old->config.reset();
    old->plugins.reset();
    draining_.push_back(std::move(old));
    draining_.remove_if([](const std::unique_ptr<Generation> &g) {
        for (const Worker &w : g->workers)
            if (w.pid) return false;
        return true;
    });
    do_retire_excess(config.main.max_draining_generations);
    do_close_unused_sockets();
    do_stop_fleet();
    do_spawn_fleet();
    reloads_++;
    do_note_reload(true, {});
    log_notice("generation %u serving (%zu generation(s) draining)", current_->number,
               draining_.size());
    do_publish_status();
}

// Old generations pile up when reloads come faster than long-lived connections end: past
// max_draining_generations the oldest are told to close now (SIGUSR2), which each worker
// does the clean way of every protocol (a WebSocket close frame 1001, an HTTP/2 GOAWAY, a
// FIN) before it exits.
void Master::do_retire_excess(int max_draining) {
    size_t kept = 0;
    for (const auto &g : draining_)
        kept += !g->retired;
    uint64_t now = torii::Worker::now_ms();
    for (auto &g : draining_) {  // oldest first
        if (kept <= static_cast<size_t>(max_draining)) break;
        if (g->retired) continue;
        g->retired = true;
        --kept;
        log_notice(
            "generation %u: more than max_draining_generations = %d draining; closing "
            "its connections now",
            g->number, max_draining);
        for (Worker &w : g->workers)
            if (w.pid) kill(w.pid, SIGUSR2);
        g->drain_deadline_ms = std::min(g->drain_deadline_ms, now + kKillGraceMs);
    }
}

void Master::do_stop(bool graceful) {
    if (stopping_ && graceful) return;
    stopping_ = true;
    uint64_t grace =
        graceful && current_ && current_->config
            ? static_cast<uint64_t>(current_->config->main.shutdown_timeout) + kKillGraceMs
            : kFastStopMs;
    stop_deadline_ms_ = torii::Worker::now_ms() + grace;
    do_stop_fleet();
    if (current_)
        for (Worker &w : current_->workers)
            w.restart_timer.reset();
    do_signal_all(graceful ? SIGQUIT : SIGTERM);
    if (live_workers() == 0) event_base_loopexit(base_.get(), nullptr);
}

void Master::on_signal_cb(evutil_socket_t sig, short, void *ctx) {
    auto *m = static_cast<Master *>(ctx);
    switch (sig) {
        case SIGCHLD:
            m->do_reap();
            break;
        case SIGHUP:
            m->do_reload();
            break;
        case SIGQUIT:
            log_notice("SIGQUIT: graceful stop");
            m->do_stop(true);
            break;
        case SIGTERM:
        case SIGINT:
            log_notice("signal %d: fast stop", static_cast<int>(sig));
            m->do_stop(false);
            break;
        case SIGUSR1:
            log_notice("SIGUSR1: reopening log files");
            Log::reopen();
            m->do_signal_all(SIGUSR1);
            break;
    }
}

void Master::on_tick_cb(evutil_socket_t, short, void *ctx) {
    auto *m = static_cast<Master *>(ctx);
    uint64_t now = torii::Worker::now_ms();
    for (auto &g : m->draining_) {
        if (now < g->drain_deadline_ms) continue;
        for (Worker &w : g->workers) {
            if (!w.pid) continue;
            log_warn("generation %u: worker %d still running past shutdown_timeout; killing it",
                     g->number, static_cast<int>(w.pid));
            kill(w.pid, SIGKILL);
        }
    }
    if (m->stopping_ && now >= m->stop_deadline_ms_) m->do_signal_all(SIGKILL);
}

int Master::run() {
    // Plugins load from content-addressed copies, so a .so rebuilt on disk is loaded anew
    // on reload instead of dlopen handing back the image it already has.
    char dir[] = "/tmp/torii-plugins-XXXXXX";
    if (mkdtemp(dir)) {
        plugin_copy_dir_ = dir;
        set_plugin_copy_dir(plugin_copy_dir_);
    }
    auto loaded = do_load();
    if (!loaded) {
        fprintf(stderr, "%s\n", loaded.error().c_str());
        return 1;
    }
    const Config &config = *loaded.value().config;
    LogLevel level = LogLevel::info;
    Log::parse_level(config.main.log_level, &level);
    std::string error;
    if (!Log::open(config.main.error_log, level, &error)) {
        fprintf(stderr, "torii: %s\n", error.c_str());
        return 1;
    }
    // Before the first fork: workers inherit the raised limit.
    std::string fd_warning = raise_fd_limit(config.main.worker_connections);
    if (!fd_warning.empty()) log_warn("%s", fd_warning.c_str());
    auto opened = do_open_sockets(config);
    if (!opened) {
        log_error("%s", opened.error().c_str());
        fprintf(stderr, "torii: %s\n", opened.error().c_str());
        return 1;
    }
    zone_ = SharedZone::create(16384);
    status_ = MasterStatus::create();
    if (!zone_ || !status_) {
        fprintf(stderr, "torii: cannot map shared memory\n");
        return 1;
    }
    set_shared_zone(zone_);
    restore_zone_state(*zone_, config.main.pid_file);
    // The machine's targets, laid down before the first fork so that every worker finds them.
    table_ = TargetTable::create();
    if (!table_) {
        fprintf(stderr, "torii: cannot map shared memory\n");
        return 1;
    }
    TargetTable::set_instance(table_);
    if (Result<void> laid = table_->apply_config(config, true); !laid) {
        log_error("%s", laid.error().c_str());
        fprintf(stderr, "torii: %s\n", laid.error().c_str());
        return 1;
    }
    if (Result<void> restored = restore_admin_state(*table_, config); !restored)
        log_warn("%s", restored.error().c_str());
    if (!write_pid_file(config.main.pid_file)) return 1;

    base_.reset(event_base_new());
    for (int sig : {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1}) {
        EventPtr ev(evsignal_new(base_.get(), sig, on_signal_cb, this));
        evsignal_add(ev.get(), nullptr);
        signal_events_.push_back(std::move(ev));
    }
    signal(SIGPIPE, SIG_IGN);
    tick_.reset(event_new(base_.get(), -1, EV_PERSIST, on_tick_cb, this));
    timeval second{1, 0};
    event_add(tick_.get(), &second);

    current_ = std::make_unique<Generation>();
    current_->number = next_generation_++;
    current_->config = loaded.value().config;
    current_->plugins = loaded.value().plugins;
    current_->loaded_at = ::time(nullptr);
    current_->workers.resize(static_cast<size_t>(config.main.workers));
    std::string pid_file = config.main.pid_file;
    log_notice("torii %s master %d started, config %s, %d worker(s)", TORII_VERSION,
               static_cast<int>(getpid()), config_file_.c_str(), config.main.workers);
    for (size_t i = 0; i < current_->workers.size(); ++i)
        do_spawn(*current_, i);
    do_spawn_fleet();
    do_publish_status();

    event_base_dispatch(base_.get());

    // Every worker has exited: the zone is still.
    save_zone_state(*zone_, pid_file);
    remove_pid_file(pid_file);
    log_notice("torii stopped");
    return 0;
}

}  // namespace torii
