#include "core/server/virtual_server.h"

#include <cstring>

#include "core/http/request.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "core/proxy/proxy_session.h"
#include "core/proxy/upstream.h"
#include "core/worker/worker.h"

namespace torii {

VirtualServer::VirtualServer(const ServerConfig &config, std::unique_ptr<Router> router)
    : HttpServer(config), router_(std::move(router)) {}

Result<std::unique_ptr<VirtualServer>> VirtualServer::build(const ServerConfig &config,
                                                            size_t index, Worker &worker) {
    auto router = Router::build(config.locations);
    if (!router) return make_error(router.error());
    auto server = std::make_unique<VirtualServer>(config, std::move(router.value()));
    const PluginSet &plugins = worker.plugins();
    server->server_chain_ = &plugins.server_chain(index);
    for (size_t i = 0; i < config.locations.size(); ++i) {
        const LocationConfig &loc = config.locations[i];
        UpstreamRuntime *u = nullptr;
        if (!loc.upstream.empty()) {
            u = worker.upstream(loc.upstream);
            if (!u)
                return make_error(loc.pos.to_string() + ": unknown upstream \"" + loc.upstream +
                                  "\"");
        }
        server->location_upstreams_.push_back(u);
        server->location_chains_.push_back(&plugins.location_chain(index, i));
    }
    return server;
}

// "/api/users" with prefix "/api/" becomes "/users"; the result always starts with "/".
static std::string_view strip(Request &req, std::string_view prefix) {
    std::string_view rest = req.path.substr(prefix.size());
    if (!rest.empty() && rest.front() == '/') return rest;
    if (prefix.ends_with('/')) {
        // The prefix's own slash is the new path's first character.
        return std::string_view(rest.data() - 1, rest.size() + 1);
    }
    char *p = req.arena.alloc(rest.size() + 1);
    p[0] = '/';
    std::memcpy(p + 1, rest.data(), rest.size());
    return {p, rest.size() + 1};
}

void VirtualServer::handle(Request &req) noexcept {
    req.chain = req.server_chain = server_chain_;
    if (phase_goes_on(req, run_phase(req, TORII_PHASE_PRE_ROUTE, this))) do_route(req);
}

void VirtualServer::on_phase_resumed(Request &req, int phase, int action) noexcept {
    if (!resumed_goes_on(req, action)) return;
    if (phase == TORII_PHASE_PRE_ROUTE)
        do_route(req);
    else
        do_serve(req);
}

void VirtualServer::do_route(Request &req) {
    const LocationConfig *loc = router_->match(req.path);
    if (!loc) {
        respond_error(req, 404);
        return;
    }
    req.location = loc;
    size_t index = static_cast<size_t>(loc - config().locations.data());
    req.chain = location_chains_[index];
    if (phase_goes_on(req, run_phase(req, TORII_PHASE_ACCESS, this))) do_serve(req);
}

void VirtualServer::do_serve(Request &req) {
    const LocationConfig *loc = req.location;
    if (loc->return_action) {
        const ReturnAction &ret = *loc->return_action;
        req.response.clear();
        req.response.status = ret.status;
        req.response.headers.add("Server", "torii");
        for (const HeaderPair &h : ret.headers)
            req.response.headers.add(h.name, h.value);
        if (!ret.body.empty() && !req.response.headers.contains("content-type"))
            req.response.headers.add("Content-Type", "text/plain");
        send_local_response(req, ret.body, BodyBytes::borrowed);
        return;
    }
    if (loc->strip_prefix && loc->match == MatchType::prefix) req.path = strip(req, loc->path);
    size_t index = static_cast<size_t>(loc - config().locations.data());
    auto session = std::make_unique<ProxySession>(req, *location_upstreams_[index]);
    ProxySession *s = session.get();
    req.handler = std::move(session);
    s->start();
}

}  // namespace torii
