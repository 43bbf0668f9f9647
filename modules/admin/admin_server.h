// The admin listener ([admin] listen): operational endpoints served by each worker.
//   GET /status  JSON: version, uptime, config file, pid, connection and request counts
// Only requests whose Host is the listener's own address or localhost are answered
// (admin_host.h); others get 403 before any endpoint runs.
// Later issues add /metrics, /upstreams and target changes here.
#pragma once

#include "core/server/http_server.h"

namespace torii {

class Worker;

class AdminServer final : public HttpServer {
public:
    explicit AdminServer(Worker &worker);
    void handle(Request &req) noexcept override;

    static const ServerConfig &limits();  // admin connections use default limits

private:
    bool check_host(Request &req);
    void do_status(Request &req);
    Worker &worker_;
};

}  // namespace torii
