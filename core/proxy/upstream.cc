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
    : config_(config), balancer_(balancer) {
    targets_.resize(config.targets.size());
    peers_.resize(config.targets.size());
    tried_.resize(config.targets.size());
    for (size_t i = 0; i < targets_.size(); ++i) {
        const TargetConfig &t = config.targets[i];
        targets_[i].config = &t;
        peers_[i] = torii_peer_t{
            {t.address.data(), t.address.size()}, static_cast<uint32_t>(t.weight), 1, 0, 0};
        if (config.tls.enabled) {
            // SNI and the name the certificate must carry: `sni`, else the target's host.
            std::string host = t.address.substr(0, t.address.rfind(':'));
            if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
            targets_[i].tls_name = config.tls.sni.empty() ? host : config.tls.sni;
            unsigned char buf[16];
            const char *n = targets_[i].tls_name.c_str();
            targets_[i].tls_name_is_ip =
                inet_pton(AF_INET, n, buf) == 1 || inet_pton(AF_INET6, n, buf) == 1;
        }
    }
    if (auto changed = TORII_PLUGIN_HOOK(*balancer_->plugin, peers_changed)) {
        torii_peer_set_t set{peers_.size(), peers_.data()};
        changed(balancer_->instance, &set);
    }
}

UpstreamRuntime::~UpstreamRuntime() = default;

int UpstreamRuntime::pick(Request &req, const TriedTargets &tried) {
    size_t n = targets_.size();
    if (n == 0) return kNoneLeft;
    uint64_t now = Worker::now_ms();
    bool any_untried = false, any_usable = false;
    for (size_t i = 0; i < n; ++i) {
        peers_[i].healthy = targets_[i].down_until_ms <= now;
        peers_[i].in_flight = targets_[i].in_flight;
        tried_[i] = tried.has(i) ? 1 : 0;
        any_untried |= !tried_[i];
        any_usable |= !tried_[i] && peers_[i].healthy;
    }
    if (!any_untried) return kNoneLeft;
    if (!any_usable) return kNoneHealthy;
    torii_peer_set_t set{n, peers_.data()};
    auto pick = TORII_PLUGIN_HOOK(*balancer_->plugin, pick);
    int i =
        pick(balancer_->instance, reinterpret_cast<torii_request_t *>(&req), &set, tried_.data());
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
    const std::string &address = targets_[t].config->address;
    for (PluginInstance *m : req.chain->admitters) {
        if (m->plugin->desc().peer_admit(m->instance, reinterpret_cast<torii_request_t *>(&req),
                                         {config_.name.data(), config_.name.size()},
                                         {address.data(), address.size()}) != 0) {
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
    const std::string &address = targets_[t].config->address;
    for (PluginInstance *m : req.chain->reporters)
        m->plugin->desc().peer_result(m->instance, reinterpret_cast<torii_request_t *>(&req),
                                      {config_.name.data(), config_.name.size()},
                                      {address.data(), address.size()}, outcome, status);
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
    TargetState &t = targets_[target];
    Socket *s = Socket::connect(Worker::current().base(), t.config->sockaddr, handler, err);
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
    auto &idle = targets_[target].idle;
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
    auto &idle = targets_[conn->target()].idle;
    if (config_.keepalive <= 0) {
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
    auto &idle = targets_[conn->target()].idle;
    for (auto it = idle.begin(); it != idle.end(); ++it) {
        if (it->get() == conn) {
            UpstreamConnection::retire(std::move(*it));
            idle.erase(it);
            return;
        }
    }
}

void UpstreamRuntime::report_failure(Request &req, int target, torii_peer_outcome_t outcome) {
    if (auto feedback = TORII_PLUGIN_HOOK(*balancer_->plugin, feedback))
        feedback(balancer_->instance, reinterpret_cast<torii_request_t *>(&req),
                 static_cast<size_t>(target), outcome, 0);
    // A lone target is never marked down: there is nowhere else to go (nginx does the same).
    if (targets_.size() < 2) return;
    TargetState &t = targets_[target];
    const HealthConfig &h = config_.health;
    uint64_t now = Worker::now_ms();
    if (now - t.fail_window_start_ms > static_cast<uint64_t>(h.fail_timeout)) {
        t.fail_window_start_ms = now;
        t.fails = 0;
    }
    if (++t.fails >= static_cast<uint32_t>(h.max_fails > 0 ? h.max_fails : 1)) {
        t.down_until_ms = now + static_cast<uint64_t>(h.fail_timeout);
        t.fails = 0;
    }
}

void UpstreamRuntime::report_success(Request &req, int target, uint64_t latency_us) {
    targets_[target].fails = 0;
    // Exponential moving average, weight 1/8 (like TCP's SRTT).
    uint32_t &avg = peers_[target].latency_us;
    uint64_t l = latency_us > UINT32_MAX ? UINT32_MAX : latency_us;
    avg = avg == 0 ? static_cast<uint32_t>(l) : static_cast<uint32_t>((avg * 7 + l) / 8);
    if (auto feedback = TORII_PLUGIN_HOOK(*balancer_->plugin, feedback))
        feedback(balancer_->instance, reinterpret_cast<torii_request_t *>(&req),
                 static_cast<size_t>(target), TORII_PEER_OK, latency_us);
}

}  // namespace torii
