// The admin listener ([admin] listen): operational endpoints served by each worker.
//   GET /status  JSON: version, uptime, config file, pid, connection and request counts,
//                the draining generations with their workers' open connections
// Only requests whose Host is the listener's own address or localhost are answered
// (admin_host.h); others get 403 before any endpoint runs.
// Later issues add /metrics, /upstreams and target changes here.
#pragma once

#include <string>

#include "core/server/http_server.h"

namespace torii {

class Worker;
struct StatusSnapshot;

class AdminServer final : public HttpServer {
public:
    explicit AdminServer(Worker &worker);
    void handle(Request &req) noexcept override;

    static const ServerConfig &limits();  // admin connections use default limits

private:
    bool check_host(Request &req);
    void do_status(Request &req);
    void do_draining_generations(const StatusSnapshot &tree, std::string &body);
    Worker &worker_;
};

}  // namespace torii
