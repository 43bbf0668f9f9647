#include "core/proxy/upstream.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>

#include "core/base/log.h"
#include "core/net/proxy_protocol.h"
#include "core/net/socket.h"
#include "core/http/request.h"
#include "core/plugin/plugin_set.h"
#include "core/proxy/http1_upstream_stream.h"
#include "core/proxy/upstream_connection.h"
#include "modules/http2/http2_upstream.h"
#include "core/worker/worker.h"

namespace torii {

// How long an idle pooled connection is kept (nginx's keepalive_timeout in upstream{}).
static constexpr int64_t kIdleTimeoutMs = 60'000;

UpstreamRuntime::UpstreamRuntime(const UpstreamConfig &config, PluginInstance *balancer)
    : config_(config), table_(TargetTable::instance()), balancer_(balancer) {
    if (table_) table_upstream_ = table_->find_upstream(config.name);
    if (table_upstream_ >= 0) {
        sync_members();
        return;
    }
    // No table (a tool or unit test), or not laid down: the config's targets, state of our own.
    table_ = nullptr;
    for (const TargetConfig &t : config.targets) {
        auto own = std::make_unique<SharedTarget>();
        targets_.push_back(make_target(t, own.get(), UINT32_MAX));
        targets_.back()->own = std::move(own);
    }
    live_targets_ = targets_.size();
    rebuild_peers();
}

UpstreamRuntime::~UpstreamRuntime() = default;

std::unique_ptr<TargetState> UpstreamRuntime::make_target(const TargetConfig &config,
                                                          SharedTarget *shared, uint32_t slot) {
    auto t = std::make_unique<TargetState>();
    t->config = config;
    t->shared = shared;
    t->slot = slot;
    if (config_.tls.enabled) {
        // SNI and the name the certificate must carry: `sni`, else the target's host.
        std::string host = config.address.substr(0, config.address.rfind(':'));
        if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
        t->tls_name = config_.tls.sni.empty() ? host : config_.tls.sni;
        unsigned char buf[16];
        const char *n = t->tls_name.c_str();
        t->tls_name_is_ip = inet_pton(AF_INET, n, buf) == 1 || inet_pton(AF_INET6, n, buf) == 1;
    }
    return t;
}

void UpstreamRuntime::sync_members() {
    uint64_t version = 0;
    std::vector<TargetTable::Member> members = table_->members(table_upstream_, &version);
    seen_version_ = version;
    std::vector<uint8_t> kept(targets_.size() + members.size(), 0);
    for (const TargetTable::Member &m : members) {
        size_t i = 0;
        while (i < targets_.size() &&
               !(targets_[i] && targets_[i]->live && targets_[i]->slot == m.slot &&
                 targets_[i]->config.id == m.id))
            ++i;
        if (i == targets_.size()) {  // joined: the first empty local slot, or a new one
            i = 0;
            while (i < targets_.size() && targets_[i])
                ++i;
            if (i == targets_.size()) targets_.emplace_back();
            TargetConfig c;
            c.address = m.address;
            c.sockaddr = m.sockaddr;
            c.id = m.id;
            targets_[i] = make_target(c, &table_->slot(m.slot), m.slot);
        }
        kept[i] = 1;
        targets_[i]->config.weight = m.weight;
        targets_[i]->drain = m.drain;
    }
    live_targets_ = members.size();
    for (size_t i = 0; i < targets_.size(); ++i)
        if (targets_[i] && targets_[i]->live && !kept[i]) retire_target(*targets_[i]);
    rebuild_peers();
}

void UpstreamRuntime::retire_target(TargetState &t) {
    t.live = false;
    ++retired_targets_;
    // Its idle connections go now; busy ones close when their exchange ends (release()).
    for (auto &conn : t.idle)
        UpstreamConnection::retire(std::move(conn));
    t.idle.clear();
    log_info("upstream \"%s\": target %s left the set; %u request(s) still on it in this worker",
             config_.name.c_str(), t.config.address.c_str(), t.in_flight);
}

// A slot is emptied once it has had nothing in flight for a while, never on the first sight:
// the exchange that just ended may still be unwinding through calls that name its target.
void UpstreamRuntime::free_drained_targets(uint64_t now) {
    bool freed = false;
    for (auto &t : targets_) {
        if (!t || t->live) continue;
        if (t->in_flight > 0) {
            t->idle_since_ms = 0;
            continue;
        }
        if (t->idle_since_ms == 0) {
            t->idle_since_ms = now;
            continue;
        }
        if (now - t->idle_since_ms < 1000) continue;
        t.reset();
        --retired_targets_;
        freed = true;
    }
    if (freed) rebuild_peers();
}

void UpstreamRuntime::rebuild_peers() {
    size_t n = targets_.size();
    peers_.assign(n, torii_peer_t{{"", 0}, 0, 0, 0, 0});
    tried_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
        const TargetState *t = targets_[i].get();
        if (!t || !t->live) continue;  // an empty slot: weight 0, never healthy
        peers_[i] = torii_peer_t{{t->config.address.data(), t->config.address.size()},
                                 static_cast<uint32_t>(t->config.weight),
                                 1,
                                 0,
                                 t->latency_us};
    }
    if (auto changed = TORII_PLUGIN_HOOK(*balancer_->plugin, peers_changed)) {
        torii_peer_set_t set{peers_.size(), peers_.data()};
        changed(balancer_->instance, &set);
    }
}

// slow_start: a target that joined or came back (active check, or its passive down time
// over) gets weight * elapsed / slow_start, at least 1, until slow_start has passed.
uint32_t UpstreamRuntime::effective_weight(const TargetState &t, uint64_t now) const {
    uint64_t since = t.shared->up_since_ms.load(std::memory_order_relaxed);
    uint64_t down_until = t.shared->down_until_ms.load(std::memory_order_relaxed);
    if (down_until > since && down_until <= now) since = down_until;
    uint64_t ramp = static_cast<uint64_t>(config_.slow_start);
    uint64_t w = static_cast<uint64_t>(t.config.weight);
    if (since == 0 || now - since >= ramp) return static_cast<uint32_t>(w);
    uint64_t part = w * (now - since) / ramp;
    return static_cast<uint32_t>(part ? part : 1);
}

int UpstreamRuntime::pick(Request &req, const TriedTargets &tried) {
    uint64_t now = Worker::now_ms();
    if (table_ && table_->version(table_upstream_) != seen_version_) sync_members();
    if (retired_targets_) free_drained_targets(now);
    size_t n = targets_.size();
    if (live_targets_ == 0) return kNoneHealthy;  // every target left (discovery, admin): 503
    bool any_untried = false, any_usable = false;
    for (size_t i = 0; i < n; ++i) {
        const TargetState *t = targets_[i].get();
        if (!t || !t->live) {
            peers_[i].healthy = 0;
            tried_[i] = 1;
            continue;
        }
        const SharedTarget &s = *t->shared;
        peers_[i].healthy = !t->drain && !s.active_down.load(std::memory_order_relaxed) &&
                            s.down_until_ms.load(std::memory_order_relaxed) <= now;
        peers_[i].in_flight = s.in_flight.load(std::memory_order_relaxed);
        if (config_.slow_start > 0) peers_[i].weight = effective_weight(*t, now);
        tried_[i] = tried.has(i) ? 1 : 0;
        any_untried |= !tried_[i];
        any_usable |= !tried_[i] && peers_[i].healthy;
    }
    if (!any_untried) return kNoneLeft;
    if (!any_usable) return kNoneHealthy;
    torii_peer_set_t set{n, peers_.data()};
    auto pick = TORII_PLUGIN_HOOK(*balancer_->plugin, pick);
    req.hook_inst = balancer_;
    int i =
        pick(balancer_->instance, reinterpret_cast<torii_request_t *>(&req), &set, tried_.data());
    req.hook_inst = nullptr;
    if (i < 0 || static_cast<size_t>(i) >= n || tried_[i] || !peers_[i].healthy) {
        if (i != TORII_PEER_NONE)
            log_error("balancer \"%s\" of upstream \"%s\" picked %d, which is not a usable peer",
                      balancer_->plugin->name().c_str(), config_.name.c_str(), i);
        return kNoneLeft;
    }
    return i;
}

int UpstreamRuntime::pick_admitted(Request &req, TriedTargets &tried, bool *vetoed) {
    for (;;) {
        int t = pick(req, tried);
        if (t < 0) return t;
        tried.add(static_cast<size_t>(t));
        if (admitted(req, t)) return t;
        *vetoed = true;  // a plugin (a per-target breaker) keeps this target out: next one
    }
}

bool UpstreamRuntime::admitted(Request &req, int t) {
    if (!req.chain || req.chain->admitters.empty()) return true;
    const std::string &address = targets_[t]->config.address;
    for (PluginInstance *m : req.chain->admitters) {
        req.hook_inst = m;
        int veto = m->plugin->desc().peer_admit(
            m->instance, reinterpret_cast<torii_request_t *>(&req),
            {config_.name.data(), config_.name.size()}, {address.data(), address.size()});
        req.hook_inst = nullptr;
        if (veto != 0) {
            log_info("upstream \"%s\": plugin \"%s\" keeps target %s out", config_.name.c_str(),
                     m->plugin->name().c_str(), address.c_str());
            return false;
        }
    }
    return true;
}

void UpstreamRuntime::report_to_plugins(Request &req, int t, torii_peer_outcome_t outcome,
                                        int status) {
    if (!req.chain || req.chain->reporters.empty() || t < 0) return;
    const std::string &address = targets_[t]->config.address;
    for (PluginInstance *m : req.chain->reporters) {
        req.hook_inst = m;
        m->plugin->desc().peer_result(m->instance, reinterpret_cast<torii_request_t *>(&req),
                                      {config_.name.data(), config_.name.size()},
                                      {address.data(), address.size()}, outcome, status);
    }
    req.hook_inst = nullptr;
}

std::unique_ptr<UpstreamStream> UpstreamRuntime::new_stream(int target,
                                                            UpstreamStreamHandler &handler,
                                                            Request &req) {
    if (config_.protocol == UpstreamProtocol::h2 || config_.protocol == UpstreamProtocol::h2c)
        return std::make_unique<Http2UpstreamStream>(*this, target, handler, req);
    // HTTP/1.1 (over TLS when configured).
    auto stream = std::make_unique<Http1UpstreamStream>(
        *this, target, handler, req.upstream_response, req.upstream_body.get(), req.arena,
        req.input.method == "HEAD");
    if (config_.proxy_protocol != ProxyProtocolSend::none)
        stream->set_proxy_header(proxy_header_for(req));
    return stream;
}

// The client as torii saw it ($remote_addr: the PROXY source when torii itself sits behind
// a balancer) and the address it connected to, as nginx's stream proxy_protocol sends them.
std::string_view UpstreamRuntime::proxy_header_for(Request &req) const {
    SocketAddress local = req.client ? req.client->local_address() : SocketAddress();
    std::string header = config_.proxy_protocol == ProxyProtocolSend::v1
                             ? format_proxy_header_v1(req.remote, local)
                             : format_proxy_header_v2(req.remote, local);
    return req.arena.copy(header);
}

Socket *UpstreamRuntime::open_connection(int target, SocketHandler *handler, int *err) {
    TargetState &t = *targets_[target];
    Socket *s = Socket::connect(Worker::current().base(), t.config.sockaddr, handler, err);
    if (!s || !config_.tls.enabled) return s;
    SSL *ssl = SSL_new(config_.tls.ctx.get());
    if (!ssl) {
        delete s;
        *err = ENOMEM;
        return nullptr;
    }
    if (!t.tls_name_is_ip) SSL_set_tlsext_host_name(ssl, t.tls_name.c_str());
    if (config_.tls.verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (t.tls_name_is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(param, t.tls_name.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, t.tls_name.c_str(), 0);
    }
    if (t.tls_session) SSL_set_session(ssl, t.tls_session.get());
    SSL_set_app_data(ssl, &t.tls_session);  // the new-session callback stores it there
    s->start_tls(ssl, false);
    return s;
}

std::unique_ptr<UpstreamConnection> UpstreamRuntime::take_idle(int target, std::string_view key) {
    auto &idle = targets_[target]->idle;
    if (idle.empty()) return nullptr;
    if (key.empty()) {  // every connection of a pool without PROXY headers is alike
        std::unique_ptr<UpstreamConnection> conn = std::move(idle.back());
        idle.pop_back();
        return conn;
    }
    for (size_t i = idle.size(); i-- > 0;) {
        if (idle[i]->pool_key() != key) continue;
        std::unique_ptr<UpstreamConnection> conn = std::move(idle[i]);
        idle.erase(idle.begin() + static_cast<ptrdiff_t>(i));
        return conn;
    }
    return nullptr;
}

void UpstreamRuntime::release(std::unique_ptr<UpstreamConnection> conn) {
    TargetState &t = *targets_[conn->target()];
    auto &idle = t.idle;
    if (config_.keepalive <= 0 || !t.live) {
        UpstreamConnection::retire(std::move(conn));
        return;
    }
    if (idle.size() >= static_cast<size_t>(config_.keepalive)) {
        // Full: the least recently used connection makes room.
        UpstreamConnection::retire(std::move(idle.front()));
        idle.erase(idle.begin());
    }
    conn->park(kIdleTimeoutMs);
    idle.push_back(std::move(conn));
}

void UpstreamRuntime::drop_idle(UpstreamConnection *conn) {
    auto &idle = targets_[conn->target()]->idle;
    for (auto it = idle.begin(); it != idle.end(); ++it) {
        if (it->get() == conn) {
            UpstreamConnection::retire(std::move(*it));
            idle.erase(it);
            return;
        }
    }
}

void UpstreamRuntime::report_failure(Request &req, int target, torii_peer_outcome_t outcome) {
    if (auto feedback = TORII_PLUGIN_HOOK(*balancer_->plugin, feedback)) {
        req.hook_inst = balancer_;
        feedback(balancer_->instance, reinterpret_cast<torii_request_t *>(&req),
                 static_cast<size_t>(target), outcome, 0);
        req.hook_inst = nullptr;
    }
    // A lone target is never marked down: there is nowhere else to go (nginx does the same).
    if (live_targets_ < 2) return;
    TargetState &t = *targets_[target];
    const HealthConfig &h = config_.health;
    // Counted across every worker: max_fails failures on the machine mark it down for all.
    if (TargetTable::note_failure(*t.shared, h.max_fails, static_cast<uint64_t>(h.fail_timeout),
                                  Worker::now_ms()))
        log_warn(
            "upstream \"%s\": target %s marked down for %lld ms after %d failed attempt(s) "
            "within fail_timeout",
            config_.name.c_str(), t.config.address.c_str(), static_cast<long long>(h.fail_timeout),
            h.max_fails > 0 ? h.max_fails : 1);
}

void UpstreamRuntime::report_success(Request &req, int target, uint64_t latency_us) {
    TargetTable::note_success(*targets_[target]->shared);
    // Exponential moving average, weight 1/8 (like TCP's SRTT); kept in the target so that
    // a rebuild of the peer set does not forget it.
    uint32_t &avg = targets_[target]->latency_us;
    uint64_t l = latency_us > UINT32_MAX ? UINT32_MAX : latency_us;
    avg = avg == 0 ? static_cast<uint32_t>(l) : static_cast<uint32_t>((uint64_t{avg} * 7 + l) / 8);
    peers_[target].latency_us = avg;
    if (auto feedback = TORII_PLUGIN_HOOK(*balancer_->plugin, feedback)) {
        req.hook_inst = balancer_;
        feedback(balancer_->instance, reinterpret_cast<torii_request_t *>(&req),
                 static_cast<size_t>(target), TORII_PEER_OK, latency_us);
        req.hook_inst = nullptr;
    }
}

}  // namespace torii
