// A worker: one single-threaded libevent loop that accepts on the listening sockets it was
// handed, serves connections and proxies to upstreams. Everything a request touches at
// runtime (servers, routers, upstream pools) is built here from the immutable Config.
//
// The process model (core/process/) decides how many workers run and hands each its
// listening fds; a worker never opens listening sockets itself.
#pragma once

#include <ctime>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/deletable.h"
#include "core/base/libevent_ptr.h"
#include "core/base/result.h"
#include "core/config/config.h"
#include "core/net/listener.h"
#include "core/process/worker_slot.h"
#include "core/server/http_server.h"
#include "core/worker/accept_gate.h"

namespace torii {

class ClientConnection;
class ParkingLot;
class TimerQueues;
class UpstreamRuntime;
class PluginSet;
class MasterStatus;
struct Request;

// A listening socket opened by the process model: the address as the config wrote it and
// the fd every worker accepts on.
struct ListenSocket {
    std::string address;  // "127.0.0.1:8080"
    int fd = -1;
    bool admin = false;  // the [admin] listener rather than a [[server]] one
};

// Takes the connections of a listener that serves no HTTP server group: a module's own
// protocol (modules/stream: tcp servers). Owned by the worker for its life.
class ListenHandler {
public:
    virtual ~ListenHandler() = default;
    virtual void on_accept(int fd, const SocketAddress &peer) noexcept = 0;
};

struct WorkerStats {
    uint64_t connections_accepted = 0;
    uint64_t connections_active = 0;
    uint64_t connections_parked = 0;  // idle keep-alive ones reduced to a ParkedHttp1
    uint64_t requests = 0;
};

class Worker {
public:
    Worker(std::shared_ptr<const Config> config, std::shared_ptr<PluginSet> plugins,
           std::vector<ListenSocket> listen_sockets, std::string config_path);
    ~Worker();
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    // Builds servers, routers and upstreams; fails on what config load could not check.
    Result<void> init();
    // Runs the loop until stopped; returns the process exit code.
    int run();
    // graceful: stop accepting, let in-flight exchanges finish up to shutdown_timeout.
    void stop(bool graceful);
    // End every connection now, each the clean way of its protocol (ClientConnection::
    // close_now), and exit once they are gone or after a short grace: at shutdown_timeout,
    // and on SIGUSR2, which the master sends to a generation it retires early.
    void close_now(const char *why);

    static Worker &current() { return *current_; }
    static bool has_current() { return current_ != nullptr; }
    // Set by the master's worker process: which generation this is, where the master
    // publishes the process tree, and the slot where this worker leaves its last request
    // line for the master. Without it (master_process = false) the worker is alone.
    void set_process(uint32_t generation, MasterStatus *status, WorkerSlot *slot) {
        generation_ = generation;
        master_status_ = status;
        slot_ = slot;
    }
    // A request head was dispatched: remember its line for the master's crash report.
    void note_request(std::string_view method, std::string_view target) noexcept {
        if (slot_) slot_->set_request(method, target);
    }
    WorkerSlot *slot() const { return slot_; }
    uint32_t generation() const { return generation_; }
    MasterStatus *master_status() const { return master_status_; }
    event_base *base() const { return base_.get(); }
    // The client connections' timers (core/worker/timer_queues.h).
    TimerQueues &timer_queues() { return *timer_queues_; }
    // Idle connections parked outside libevent (core/worker/parking_lot.h).
    ParkingLot &parking_lot() { return *parking_lot_; }
    const Config &config() const { return *config_; }
    const PluginSet &plugins() const { return *plugins_; }
    const std::string &config_path() const { return config_path_; }
    WorkerStats &stats() { return stats_; }
    bool stopping() const { return stopping_; }

    // Frees `obj` after the current callback returns.
    void defer_delete(std::unique_ptr<Deletable> obj);
    // Calls fn(arg) from the loop, after the current callback returns (before deferred
    // deletions): how work that must not re-enter its caller continues (plugin resume()).
    void defer_call(void (*fn)(uint64_t), uint64_t arg);
    // Monotonic milliseconds, cheap enough for every request.
    static uint64_t now_ms();
    // Monotonic microseconds, for latencies.
    static uint64_t now_us();
    // "Sun, 22 Nov 2026 10:00:00 GMT", recomputed at most once a second.
    std::string_view http_date();
    time_t started_at() const { return started_at_; }

    // Request objects are pooled per worker: a warm one keeps its arena block and header
    // capacity, so a keep-alive request allocates nothing in the steady state.
    Request *acquire_request();
    void release_request(Request *req);  // req must have been reset()
    // The same after the current event callback (core/exchange: exchange_release).
    void release_request_later(Request *req);

    // The registry of client connections of every protocol (drained on stop, counted).
    void add_connection(ClientConnection *c);
    void remove_connection(ClientConnection *c);
    // `c` takes `old`'s place (a connection changing form: parked, woken): counts, gauges
    // and the accept gate see no change. Freeing `old` is the caller's.
    void replace_connection(ClientConnection *old, ClientConnection *c);
    // A connection that is done: out of the registry now, freed once the callback returned.
    void retire_connection(ClientConnection *c);
    UpstreamRuntime *upstream(const std::string &name);
    // Service modules (the admin listener) add their servers under a listener key: a
    // ListenSocket with `admin` set is served by the group keyed "admin".
    void add_server(std::unique_ptr<HttpServer> server, const std::string &group_key);
    // Modules whose servers are not HTTP (tcp servers) take a listen address's connections.
    void add_listen_handler(const std::string &address, std::unique_ptr<ListenHandler> handler);

private:
    static void on_graveyard_cb(evutil_socket_t, short, void *ctx);
    static void on_signal_cb(evutil_socket_t sig, short, void *ctx);
    static void on_shutdown_tick_cb(evutil_socket_t, short, void *ctx);
    static void on_goodbye_grace_cb(evutil_socket_t, short, void *ctx);
    void add_listener(int fd, ServerGroup *group);
    void add_listener(int fd, ListenHandler *handler);
    void check_drained();
    void pin_zone_counters();
    void count_accepted();
    std::vector<ClientConnection *> connection_snapshot() const;

    static inline Worker *current_ = nullptr;

    std::shared_ptr<const Config> config_;
    std::shared_ptr<PluginSet> plugins_;
    std::vector<ListenSocket> listen_sockets_;
    std::string config_path_;
    EventBasePtr base_;
    std::unique_ptr<TimerQueues> timer_queues_;  // after base_: goes before it
    std::unique_ptr<ParkingLot> parking_lot_;    // the same
    std::vector<std::unique_ptr<HttpServer>> servers_;
    std::map<std::string, std::unique_ptr<ServerGroup>> groups_;  // by listen address
    std::map<std::string, std::unique_ptr<UpstreamRuntime>> upstreams_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<std::string, std::unique_ptr<ListenHandler>> listen_handlers_;  // by address
    ClientConnection *connections_ = nullptr;  // the registry's head (intrusive list)
    size_t connection_count_ = 0;
    std::vector<std::unique_ptr<Deletable>> graveyard_;
    // What on_graveyard_cb is freeing: swapped with graveyard_ so both keep their capacity
    // (no allocation per request once the loop is warm).
    std::vector<std::unique_ptr<Deletable>> graveyard_batch_;
    std::vector<Request *> request_pool_;
    std::vector<Request *> released_;  // going back to the pool after this callback
    std::vector<std::pair<void (*)(uint64_t), uint64_t>> calls_;  // defer_call
    std::vector<std::pair<void (*)(uint64_t), uint64_t>> calls_batch_;
    EventPtr graveyard_ev_;
    std::vector<EventPtr> signal_events_;
    EventPtr shutdown_tick_;
    EventPtr goodbye_grace_;  // armed by close_now: the loop ends by then at the latest
    uint64_t shutdown_deadline_ms_ = 0;
    WorkerStats stats_;
    // The machine-wide connection counters in the shared zone, pinned on first use.
    int64_t *zone_open_ = nullptr;
    int64_t *zone_accepted_ = nullptr;
    bool stopping_ = false;
    bool closing_now_ = false;
    uint32_t generation_ = 1;
    MasterStatus *master_status_ = nullptr;
    WorkerSlot *slot_ = nullptr;
    std::unique_ptr<AcceptGate> accept_gate_;  // created in init(), with the listeners
    time_t started_at_ = 0;
    time_t date_second_ = 0;
    char date_[40] = {};
};

}  // namespace torii
