#include "core/worker/worker.h"

#include <signal.h>

#include <cstring>

#include "core/base/fast_random.h"
#include "core/base/log.h"
#include "core/http/request.h"
#include "core/net/fd_limit.h"
#include "core/plugin/host_api.h"
#include "core/plugin/plugin_set.h"
#include "core/shm/shared_zone.h"
#include "core/proxy/upstream.h"
#include "core/server/access_log.h"
#include "core/module/module.h"
#include "core/server/accept_stage.h"
#include "core/server/http1_connection.h"
#include "core/server/virtual_server.h"
#include "core/worker/parking_lot.h"
#include "core/worker/timer_queues.h"

namespace torii {

static constexpr const char *kAdminGroup = "admin";  // the key admin ListenSockets use

Worker::Worker(std::shared_ptr<const Config> config, std::shared_ptr<PluginSet> plugins,
               std::vector<ListenSocket> listen_sockets, std::string config_path)
    : config_(std::move(config)),
      plugins_(std::move(plugins)),
      listen_sockets_(std::move(listen_sockets)),
      config_path_(std::move(config_path)) {
    event_config *cfg = event_config_new();
    // Coalesce event_add/event_del made within one loop iteration into one epoll_ctl.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base_.reset(event_base_new_with_config(cfg));
    event_config_free(cfg);
    graveyard_ev_.reset(event_new(base_.get(), -1, 0, on_graveyard_cb, this));
    timer_queues_ = std::make_unique<TimerQueues>(base_.get());
    parking_lot_ = std::make_unique<ParkingLot>(base_.get());
    current_ = this;
    // InlineEvent embeds the struct event of the libevent headers we were built with.
    if (event_get_struct_event_size() != sizeof(event)) {
        log_error("libevent's struct event is %zu bytes, torii was built for %zu",
                  event_get_struct_event_size(), sizeof(event));
        abort();
    }
}

Worker::~Worker() {
    // Connections first (they reference servers and upstreams), then the rest.
    while (ClientConnection *c = connections_) {
        connections_ = c->registry_next;
        delete c;
    }
    connection_count_ = 0;
    graveyard_.clear();
    access_log_flush();  // the lines of tunnels cut by shutdown_timeout
    for (Request *r : released_)
        delete r;
    released_.clear();
    for (Request *r : request_pool_)
        delete r;
    request_pool_.clear();
    accept_gate_.reset();
    listeners_.clear();
    listen_handlers_.clear();
    servers_.clear();
    upstreams_.clear();
    // Plugin instances go while the loop still exists: their destroy() may cancel timers
    // and I/O watches (host->timer_cancel, io_unwatch) made on it.
    plugins_.reset();
    graveyard_.clear();
    signal_events_.clear();
    shutdown_tick_.reset();
    goodbye_grace_.reset();
    graveyard_ev_.reset();
    if (current_ == this) current_ = nullptr;
}

uint64_t Worker::now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

uint64_t Worker::now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

std::string_view Worker::http_date() {
    time_t now = ::time(nullptr);
    if (now != date_second_) {
        date_second_ = now;
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date_, sizeof date_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return date_;
}

UpstreamRuntime *Worker::upstream(const std::string &name) {
    auto it = upstreams_.find(name);
    return it == upstreams_.end() ? nullptr : it->second.get();
}

Result<void> Worker::init() {
    started_at_ = ::time(nullptr);
    // Workers are forked: a PRNG state inherited from the master would repeat request ids
    // across workers and generations.
    fast_random::reseed();
    auto init = plugins_->worker_init();
    if (!init) return init;
    for (const auto &[name, up] : config_->upstreams)
        upstreams_.emplace(name, std::make_unique<UpstreamRuntime>(up, plugins_->balancer(name)));

    for (size_t i = 0; i < config_->servers.size(); ++i) {
        const ServerConfig &sc = config_->servers[i];
        if (sc.protocol != ServerProtocol::http) continue;  // modules/stream serves tcp ones
        auto server = VirtualServer::build(sc, i, *this);
        if (!server) return make_error(server.error());
        HttpServer *raw = server.value().get();
        servers_.push_back(std::move(server.value()));
        for (const SocketAddress &addr : sc.listen) {
            auto &group = groups_[addr.to_string()];
            if (!group) group = std::make_unique<ServerGroup>();
            group->servers.push_back(raw);
        }
    }
    for (const Module *m : modules()) {
        if (!m->init_worker) continue;
        auto ok = m->init_worker(*this);
        if (!ok) return ok;
    }
    // A listener terminates TLS when its servers have certificates (the first one's is the
    // default when SNI names none of them).
    for (auto &[key, group] : groups_)
        for (HttpServer *s : group->servers)
            if (!group->tls && s->config().tls) group->tls = s->config().tls->ctx.get();
    for (auto &[key, group] : groups_)
        group->proxy_protocol = group->servers.front()->config().proxy_protocol;
    // Client connections this worker holds at most: worker_connections, fewer when the fd
    // limit cannot also give each an upstream connection (the master warned about it).
    accept_gate_ = std::make_unique<AcceptGate>(
        base_.get(),
        static_cast<size_t>(client_connection_limit(config_->main.worker_connections)));
    for (const ListenSocket &ls : listen_sockets_) {
        auto own = listen_handlers_.find(ls.address);
        if (!ls.admin && own != listen_handlers_.end()) {
            add_listener(ls.fd, own->second.get());
            continue;
        }
        auto it = groups_.find(ls.admin ? std::string(kAdminGroup) : ls.address);
        if (it == groups_.end()) return make_error("no server for listen socket " + ls.address);
        add_listener(ls.fd, it->second.get());
    }

    // Signals: the master (issue #6) will own reload; a worker stops on its own signals.
    for (int signo : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP}) {
        EventPtr ev(evsignal_new(base_.get(), signo, on_signal_cb, this));
        evsignal_add(ev.get(), nullptr);
        signal_events_.push_back(std::move(ev));
    }
    signal(SIGPIPE, SIG_IGN);
    // Flush the buffered access log once a second.
    shutdown_tick_.reset(event_new(base_.get(), -1, EV_PERSIST, on_shutdown_tick_cb, this));
    timeval one_second{1, 0};
    event_add(shutdown_tick_.get(), &one_second);
    return {};
}

void Worker::add_listener(int fd, ServerGroup *group) {
    listeners_.push_back(std::make_unique<Listener>(
        base_.get(), fd,
        [this, group](int cfd, const SocketAddress &peer) {
            count_accepted();
            if (group->tls || group->proxy_protocol) {
                auto *stage = new AcceptStage(*this, cfd, peer, *group);
                add_connection(stage);
                stage->start();
                return;
            }
            accept_http1(*this, std::make_unique<Socket>(base_.get(), cfd, nullptr), peer, *group);
        },
        [this](int err) { accept_gate_->on_exhausted(err, connection_count_); }));
    accept_gate_->add(listeners_.back().get());
}

void Worker::add_listener(int fd, ListenHandler *handler) {
    listeners_.push_back(std::make_unique<Listener>(
        base_.get(), fd,
        [this, handler](int cfd, const SocketAddress &peer) {
            count_accepted();
            handler->on_accept(cfd, peer);
        },
        [this](int err) { accept_gate_->on_exhausted(err, connection_count_); }));
    accept_gate_->add(listeners_.back().get());
}

void Worker::add_listen_handler(const std::string &address,
                                std::unique_ptr<ListenHandler> handler) {
    listen_handlers_[address] = std::move(handler);
}

// Bounds the memory the pool keeps: enough for a burst of concurrent requests.
static constexpr size_t kRequestPoolMax = 256;

Request *Worker::acquire_request() {
    if (request_pool_.empty()) return new Request();
    Request *r = request_pool_.back();
    request_pool_.pop_back();
    return r;
}

void Worker::release_request(Request *req) {
    if (request_pool_.size() >= kRequestPoolMax) {
        delete req;
        return;
    }
    request_pool_.push_back(req);
}

void Worker::add_server(std::unique_ptr<HttpServer> server, const std::string &group_key) {
    auto &group = groups_[group_key];
    if (!group) group = std::make_unique<ServerGroup>();
    group->servers.push_back(server.get());
    servers_.push_back(std::move(server));
}

// Machine-wide gauges for plugins (stats): documented in <torii/plugin.h>.
void Worker::pin_zone_counters() {
    if (zone_open_) return;
    if (SharedZone *zone = shared_zone()) {
        zone_open_ = zone->pin_counter("torii|connections");
        zone_accepted_ = zone->pin_counter("torii|accepted");
    }
}

// Counted where the listener accepts, not in add_connection: a connection that changes
// form (the TLS/PROXY accept stage handing over to its codec, HTTP/1.1 to HTTP/2 with prior
// knowledge, to a WebSocket tunnel) registers again, and was counted as accepted again.
void Worker::count_accepted() {
    stats_.connections_accepted++;
    pin_zone_counters();
    if (zone_accepted_) SharedZone::pinned_add(zone_accepted_, 1);
}

void Worker::add_connection(ClientConnection *c) {
    c->registry_prev = nullptr;
    c->registry_next = connections_;
    if (connections_) connections_->registry_prev = c;
    connections_ = c;
    ++connection_count_;
    stats_.connections_active++;
    if (slot_) slot_->set_connections(connection_count_);  // for /status of old generations
    pin_zone_counters();
    if (zone_open_) SharedZone::pinned_add(zone_open_, 1);
    accept_gate_->on_opened(connection_count_);
}

void Worker::remove_connection(ClientConnection *c) {
    if (c->registry_prev)
        c->registry_prev->registry_next = c->registry_next;
    else
        connections_ = c->registry_next;
    if (c->registry_next) c->registry_next->registry_prev = c->registry_prev;
    c->registry_prev = c->registry_next = nullptr;
    --connection_count_;
    stats_.connections_active--;
    if (slot_) slot_->set_connections(connection_count_);
    if (zone_open_) SharedZone::pinned_add(zone_open_, -1);
    accept_gate_->on_closed(connection_count_);
    if (stopping_) check_drained();
}

void Worker::replace_connection(ClientConnection *old, ClientConnection *c) {
    c->registry_prev = old->registry_prev;
    c->registry_next = old->registry_next;
    if (c->registry_prev)
        c->registry_prev->registry_next = c;
    else
        connections_ = c;
    if (c->registry_next) c->registry_next->registry_prev = c;
    old->registry_prev = old->registry_next = nullptr;
}

void Worker::retire_connection(ClientConnection *c) {
    remove_connection(c);
    defer_delete(std::unique_ptr<Deletable>(c));
}

void Worker::defer_delete(std::unique_ptr<Deletable> obj) {
    if (!obj) return;
    if (graveyard_.empty() && released_.empty() && calls_.empty())
        event_active(graveyard_ev_.get(), 0, 0);
    graveyard_.push_back(std::move(obj));
}

void Worker::release_request_later(Request *req) {
    if (graveyard_.empty() && released_.empty() && calls_.empty())
        event_active(graveyard_ev_.get(), 0, 0);
    released_.push_back(req);
}

void Worker::defer_call(void (*fn)(uint64_t), uint64_t arg) {
    if (graveyard_.empty() && released_.empty() && calls_.empty())
        event_active(graveyard_ev_.get(), 0, 0);
    calls_.emplace_back(fn, arg);
}

void Worker::on_graveyard_cb(evutil_socket_t, short, void *ctx) {
    auto *w = static_cast<Worker *>(ctx);
    // Deferred calls first (they may free more); each may queue more: loop until empty.
    while (!w->calls_.empty()) {
        w->calls_batch_.swap(w->calls_);
        for (auto &[fn, arg] : w->calls_batch_)
            fn(arg);
        w->calls_batch_.clear();
    }
    // Destructors may queue more (a session frees its upstream connection): loop until empty.
    while (!w->graveyard_.empty()) {
        w->graveyard_batch_.swap(w->graveyard_);
        w->graveyard_batch_.clear();
    }
    // Requests last: the handlers just freed no longer point at them.
    for (Request *r : w->released_)
        w->release_request(r);
    w->released_.clear();
}

void Worker::on_signal_cb(evutil_socket_t sig, short, void *ctx) {
    auto *w = static_cast<Worker *>(ctx);
    switch (sig) {
        case SIGTERM:
        case SIGINT:
            log_notice("signal %d: fast stop", static_cast<int>(sig));
            w->stop(false);
            break;
        case SIGQUIT:
            log_notice("SIGQUIT: graceful stop");
            w->stop(true);
            break;
        case SIGUSR1:
            log_notice("SIGUSR1: reopening log files");
            Log::reopen();
            access_log_reopen();
            break;
        case SIGUSR2:
            w->close_now("generation retired (max_draining_generations)");
            break;
        case SIGHUP:
            // Reload is the master's job; a worker (or master_process = false) ignores it.
            log_notice("SIGHUP ignored: reload is done by the master process");
            break;
    }
}

void Worker::stop(bool graceful) {
    access_log_flush();
    if (!graceful) {
        event_base_loopbreak(base_.get());
        return;
    }
    stopping_ = true;
    if (accept_gate_) accept_gate_->close();
    shutdown_deadline_ms_ = now_ms() + static_cast<uint64_t>(config_->main.shutdown_timeout);
    // Idle keep-alive connections close now; busy ones close after their response.
    for (ClientConnection *c : connection_snapshot())
        c->shutdown_gracefully();
    check_drained();
}

// How long connections get to say goodbye (a close frame, a GOAWAY, queued bytes) after
// close_now before the loop ends regardless.
static constexpr int64_t kGoodbyeGraceMs = 1000;

void Worker::close_now(const char *why) {
    if (closing_now_) return;
    if (!stopping_) stop(true);
    closing_now_ = true;
    log_notice("%s: closing %zu connection(s) now", why, connection_count_);
    for (ClientConnection *c : connection_snapshot())
        c->close_now();
    if (!connections_) {
        check_drained();
        return;
    }
    goodbye_grace_.reset(evtimer_new(base_.get(), on_goodbye_grace_cb, this));
    timeval tv = to_timeval(kGoodbyeGraceMs);
    evtimer_add(goodbye_grace_.get(), &tv);
}

void Worker::on_goodbye_grace_cb(evutil_socket_t, short, void *ctx) {
    event_base_loopbreak(static_cast<Worker *>(ctx)->base_.get());
}

void Worker::check_drained() {
    if (!connections_) event_base_loopexit(base_.get(), nullptr);
}

// The registry as it is now: what a stop walks while connections leave it.
std::vector<ClientConnection *> Worker::connection_snapshot() const {
    std::vector<ClientConnection *> out;
    out.reserve(connection_count_);
    for (ClientConnection *c = connections_; c; c = c->registry_next)
        out.push_back(c);
    return out;
}

void Worker::on_shutdown_tick_cb(evutil_socket_t, short, void *ctx) {
    auto *w = static_cast<Worker *>(ctx);
    access_log_flush();
    if (w->accept_gate_) w->accept_gate_->tick(now_ms());
    if (w->stopping_ && !w->closing_now_ && now_ms() >= w->shutdown_deadline_ms_)
        w->close_now("shutdown_timeout reached");
}

int Worker::run() {
    event_base_dispatch(base_.get());
    access_log_flush();
    return 0;
}

}  // namespace torii
