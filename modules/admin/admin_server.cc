#include "modules/admin/admin_server.h"

#include <unistd.h>

#include <ctime>
#include <string>

#include "core/base/json_escape.h"
#include "core/base/log.h"
#include "core/http/request.h"
#include "core/module/module.h"
#include "core/plugin/plugin_set.h"
#include "core/process/master_status.h"
#include "core/worker/worker.h"
#include "modules/admin/admin_host.h"
#include "modules/admin/config_view.h"
#include "modules/admin/dashboard.h"
#include "modules/admin/upstreams_api.h"

#include <openssl/crypto.h>

namespace torii {

const ServerConfig &AdminServer::limits() {
    static const ServerConfig config = [] {
        ServerConfig c;
        c.client_max_body_size = 64 * 1024;
        c.client_header_timeout = 10'000;
        c.keepalive_timeout = 30'000;
        return c;
    }();
    return config;
}

AdminServer::AdminServer(Worker &worker) : HttpServer(limits()), worker_(worker) {}

// The admin listener as a service module: each worker serves the [admin] listen socket
// (the process model marks it `admin`) with an AdminServer.
const Module admin_module = {
    .name = "admin",
    .init_worker = [](Worker &worker) -> Result<void> {
        if (worker.config().admin)
            worker.add_server(std::make_unique<AdminServer>(worker), "admin");
        return {};
    },
};

// Answers 400/403 and returns false unless the request may reach an endpoint. Runs before
// any routing so that a refused request executes nothing, whatever its method and path.
bool AdminServer::check_host(Request &req) {
    size_t hosts = 0;
    for (const Header &h : req.input.headers)
        hosts += h.id == HeaderId::host;
    if (hosts > 1) {  // RFC 9112 3.2; and which one would we check?
        respond(req, 400, "400 Bad Request: more than one Host header\n");
        return false;
    }
    // No Host at all (HTTP/1.0; the parser refuses HTTP/1.1 without one): browsers always
    // send Host, and a rebinding attack needs a browser, so scripts and old tools may pass.
    if (hosts == 0 && req.input.authority.empty()) return true;
    const AdminConfig &admin = *worker_.config().admin;
    if (admin_host_allowed(req.input.authority, admin)) return true;
    std::string_view host = req.input.authority.substr(0, 200);
    log_notice("admin: refused a request from %.*s with Host \"%.*s\" (not %s or localhost)",
               static_cast<int>(req.remote_addr.size()), req.remote_addr.data(),
               static_cast<int>(host.size()), host.data(), admin.listen_text.c_str());
    respond(req, 403,
            "403 Forbidden: the admin API answers only requests whose Host is its listen "
            "address or localhost (DNS rebinding defence)\n");
    return false;
}

// [admin] token: every endpoint, reads included (/status shows pids and paths), wants
// "Authorization: Bearer <token>"; compared in constant time.
bool AdminServer::check_token(Request &req) {
    const std::string &token = worker_.config().admin->token;
    if (token.empty()) return true;
    std::string_view auth = req.input.headers.get("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.size() == kBearer.size() + token.size() &&
        iequals(auth.substr(0, kBearer.size()), kBearer) &&
        CRYPTO_memcmp(auth.data() + kBearer.size(), token.data(), token.size()) == 0)
        return true;
    req.response.clear();
    req.response.status = 401;
    req.response.headers.add("Server", "torii");
    req.response.headers.add("WWW-Authenticate", "Bearer realm=\"torii admin\"");
    req.response.headers.add("Content-Type", "text/plain");
    send_local_response(req,
                        auth.empty() ? "401 Unauthorized: this admin API needs "
                                       "\"Authorization: Bearer <admin.token>\"\n"
                                     : "401 Unauthorized: wrong admin token\n",
                        BodyBytes::borrowed);
    return false;
}

void AdminServer::handle(Request &req) noexcept {
    if (!check_host(req)) return;
    // The dashboard's files hold no data: served without the token, which the page then
    // sends with every read it makes.
    if (serve_dashboard(req, req.path)) return;
    if (!check_token(req)) return;
    if (is_upstreams_path(req.path)) {
        serve_upstreams_api(req, worker_.config());
        return;
    }
    if (req.path == "/config") {
        if (req.input.method != "GET" && req.input.method != "HEAD") {
            respond_error(req, 405);
            return;
        }
        serve_config_view(req, worker_);
        return;
    }
    if (req.path == "/status") {
        if (req.input.method != "GET" && req.input.method != "HEAD") {
            respond_error(req, 405);
            return;
        }
        do_status(req);
        return;
    }
    if (const AdminEndpoint *e = worker_.plugins().admin_endpoint(req.path)) {
        if (req.input.method != "GET" && req.input.method != "HEAD") {
            respond_error(req, 405);
            return;
        }
        torii_buf_t out;
        e->fn(e->arg, &out);
        respond(req, 200, out.text, e->content_type);
        return;
    }
    respond_error(req, 404);
}

// [{"generation":2,"closing":false,"workers":[{"pid":1188,"connections":1}]}, ...], oldest
// first. Connection counts are read live from each worker's slot in shared memory.
void AdminServer::do_draining_generations(const StatusSnapshot &tree, std::string &body) {
    MasterStatus *status = worker_.master_status();
    const std::vector<DrainingWorker> &d = tree.draining_workers;
    for (size_t i = 0; i < d.size(); ++i) {
        bool first_of_generation = i == 0 || d[i - 1].generation != d[i].generation;
        if (first_of_generation) {
            body += i ? "]}," : "";
            body += "{\"generation\":" + std::to_string(d[i].generation) + ",\"closing\":";
            body += d[i].closing ? "true" : "false";
            body += ",\"workers\":[";
        } else {
            body += ",";
        }
        const WorkerSlot *slot = status ? status->worker_slot(d[i].slot) : nullptr;
        body += "{\"pid\":" + std::to_string(d[i].pid) +
                ",\"connections\":" + std::to_string(slot ? slot->connections() : 0) + "}";
    }
    if (!d.empty()) body += "]}";
}

void AdminServer::do_status(Request &req) {
    const WorkerStats &st = worker_.stats();
    StatusSnapshot tree;
    if (worker_.master_status()) {
        tree = worker_.master_status()->read();
    } else {  // master_process = false: this process is the whole tree
        tree.generation = worker_.generation();
        tree.config_loaded = worker_.started_at();
        tree.workers = {getpid()};
        tree.master = getpid();
    }
    std::string body;
    body.reserve(512);
    body += "{\"version\":";
    append_json_string(body, TORII_VERSION);
    char num[256];
    snprintf(num, sizeof num, ",\"uptime\":%lld,\"pid\":%d,\"master\":%d,\"config\":",
             static_cast<long long>(::time(nullptr) - worker_.started_at()),
             static_cast<int>(getpid()), static_cast<int>(tree.master));
    body += num;
    append_json_string(body, worker_.config_path());
    snprintf(num, sizeof num,
             ",\"generation\":%u,\"config_loaded\":%lld,\"draining\":%u,\"reloads\":%llu,"
             "\"reload_failures\":%llu,\"workers\":[",
             tree.generation, static_cast<long long>(tree.config_loaded), tree.draining,
             static_cast<unsigned long long>(tree.reloads),
             static_cast<unsigned long long>(tree.reload_failures));
    body += num;
    for (size_t i = 0; i < tree.workers.size(); ++i) {
        body += i ? "," : "";
        body += std::to_string(tree.workers[i]);
    }
    body += "],\"draining_generations\":[";
    do_draining_generations(tree, body);
    body += "],\"reload_history\":[";
    for (size_t i = 0; i < tree.reload_history.size(); ++i) {
        const ReloadEvent &e = tree.reload_history[i];
        snprintf(num, sizeof num,
                 "%s{\"at\":%lld,\"generation\":%u,\"ok\":%s,\"error\":", i ? "," : "",
                 static_cast<long long>(e.at), e.generation, e.ok ? "true" : "false");
        body += num;
        if (e.ok)
            body += "null";
        else
            append_json_string(body, e.error);
        body += "}";
    }
    snprintf(num, sizeof num,
             "],\"connections\":{\"active\":%llu,\"parked\":%llu,\"accepted\":%llu},"
             "\"requests\":%llu}\n",
             static_cast<unsigned long long>(st.connections_active),
             static_cast<unsigned long long>(st.connections_parked),
             static_cast<unsigned long long>(st.connections_accepted),
             static_cast<unsigned long long>(st.requests));
    body += num;
    respond(req, 200, body, "application/json");
}

}  // namespace torii
