#include "core/server/virtual_server.h"

#include <cstring>

#include "core/http/request.h"
#include "core/proxy/proxy_session.h"
#include "core/proxy/upstream.h"
#include "core/worker/worker.h"

namespace torii {

VirtualServer::VirtualServer(const ServerConfig &config, std::unique_ptr<Router> router,
                             std::vector<UpstreamRuntime *> location_upstreams)
    : HttpServer(config),
      router_(std::move(router)),
      location_upstreams_(std::move(location_upstreams)) {}

Result<std::unique_ptr<VirtualServer>> VirtualServer::build(const ServerConfig &config,
                                                            Worker &worker) {
    auto router = Router::build(config.locations);
    if (!router) return make_error(router.error());
    std::vector<UpstreamRuntime *> upstreams;
    for (const LocationConfig &loc : config.locations) {
        UpstreamRuntime *u = nullptr;
        if (!loc.upstream.empty()) {
            u = worker.upstream(loc.upstream);
            if (!u)
                return make_error(loc.pos.to_string() + ": unknown upstream \"" + loc.upstream +
                                  "\"");
        }
        upstreams.push_back(u);
    }
    return std::make_unique<VirtualServer>(config, std::move(router.value()), std::move(upstreams));
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
    const LocationConfig *loc = router_->match(req.path);
    if (!loc) {
        respond_error(req, 404);
        return;
    }
    req.location = loc;
    if (loc->return_action) {
        const ReturnAction &ret = *loc->return_action;
        req.response = ResponseHead{};
        req.response.status = ret.status;
        req.response.headers.add("Server", "torii");
        for (const HeaderPair &h : ret.headers)
            req.response.headers.add(h.name, h.value);
        if (!ret.body.empty() && !req.response.headers.contains("content-type"))
            req.response.headers.add("Content-Type", "text/plain");
        req.response.content_length = static_cast<int64_t>(ret.body.size());
        req.downstream->send_head(req);
        if (!ret.body.empty() && req.input.method != "HEAD") {
            EvbufferPtr buf = make_evbuffer();
            evbuffer_add_reference(buf.get(), ret.body.data(), ret.body.size(), nullptr, nullptr);
            req.downstream->send_body(req, buf.get());
        }
        req.downstream->send_end(req, nullptr);
        return;
    }
    if (loc->strip_prefix && loc->match == MatchType::prefix) req.path = strip(req, loc->path);
    size_t index = static_cast<size_t>(loc - config().locations.data());
    UpstreamRuntime *upstream = location_upstreams_[index];
    auto session = std::make_unique<ProxySession>(req, *upstream);
    ProxySession *s = session.get();
    req.handler = std::move(session);
    s->start();
}

}  // namespace torii
