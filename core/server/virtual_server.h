// A [[server]] block at runtime: routes each request to a location, then answers it with
// the location's `return` or hands it to a ProxySession for the location's upstream.
#pragma once

#include <memory>
#include <vector>

#include "core/router/router.h"
#include "core/server/http_server.h"

namespace torii {

class UpstreamRuntime;
class Worker;

class VirtualServer final : public HttpServer {
public:
    VirtualServer(const ServerConfig &config, std::unique_ptr<Router> router,
                  std::vector<UpstreamRuntime *> location_upstreams);
    static Result<std::unique_ptr<VirtualServer>> build(const ServerConfig &config, Worker &worker);

    void handle(Request &req) noexcept override;

private:
    std::unique_ptr<Router> router_;
    // Indexed like config().locations: the upstream of each proxying location.
    std::vector<UpstreamRuntime *> location_upstreams_;
};

}  // namespace torii
