// A [[server]] block at runtime. For each request:
//   pre_route (server plugins) → route to a location → access (location plugins) →
//   the location's `return`, or a ProxySession to the location's upstream.
// A plugin may answer or pause in either phase; on_phase_resumed continues a paused one.
#pragma once

#include <memory>
#include <vector>

#include "core/http/request.h"
#include "core/router/router.h"
#include "core/server/http_server.h"

namespace torii {

class UpstreamRuntime;
class Worker;
class PluginSet;
struct PhaseChain;

class VirtualServer final : public HttpServer, public PhaseOwner {
public:
    VirtualServer(const ServerConfig &config, std::unique_ptr<Router> router);
    // `index` is the server's position in the config (its plugin chains).
    static Result<std::unique_ptr<VirtualServer>> build(const ServerConfig &config, size_t index,
                                                        Worker &worker);

    void handle(Request &req) noexcept override;
    void on_phase_resumed(Request &req, int phase, int action) noexcept override;

private:
    void do_route(Request &req);
    void do_serve(Request &req);

    std::unique_ptr<Router> router_;
    const PhaseChain *server_chain_ = nullptr;
    // Indexed like config().locations.
    std::vector<UpstreamRuntime *> location_upstreams_;
    std::vector<const PhaseChain *> location_chains_;
};

}  // namespace torii
