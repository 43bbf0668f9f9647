// The admin listener ([admin] listen): operational endpoints served by each worker.
//   GET /           the dashboard (modules/admin/dashboard.h), its files under /dashboard/
//   GET /config     JSON: servers, locations and their plugin chains (config_view.h)
//   GET /status     JSON: version, uptime, config file, pid, connection and request counts,
//                   the draining generations with their workers' open connections, the
//                   last reloads with their outcome
//   /upstreams...   the target table: read it, add, change and remove targets
//                   (modules/admin/upstreams_api.h)
//   plugin endpoints (stats' /metrics, circuit_breaker's view)
// Only requests whose Host is the listener's own address or localhost are answered
// (admin_host.h); others get 403 before any endpoint runs. With [admin] token set, every
// endpoint wants "Authorization: Bearer <token>" and answers 401 without it.
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
    bool check_token(Request &req);
    void do_status(Request &req);
    void do_draining_generations(const StatusSnapshot &tree, std::string &body);
    Worker &worker_;
};

}  // namespace torii
