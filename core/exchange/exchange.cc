#include "core/exchange/exchange.h"

#include "core/base/log.h"
#include "core/http/request.h"
#include "core/http/request_target.h"
#include "core/plugin/phase_runner.h"
#include "core/proxy/forwarded_headers.h"
#include "core/server/access_log.h"
#include "core/server/http_server.h"
#include "core/worker/worker.h"

namespace torii {

Request *exchange_acquire(Worker &worker, Downstream *downstream, const SocketAddress &peer,
                          std::string_view remote_text) {
    Request *req = worker.acquire_request();
    req->remote = peer;
    req->remote_addr = remote_text;
    req->downstream = downstream;
    return req;
}

void exchange_begin(Worker &worker, Request &req) {
    worker.stats().requests++;
    worker.note_request(req.input.method, req.input.target);  // for a crash report
    req.start_ms = Worker::now_ms();
    req.state = RequestState::head;
}

HttpServer *exchange_route(Request &req, const ServerGroup &group, int *status) {
    copy_client_headers(req.input.headers, req.headers);  // the copy plugins may change
    const char *why = nullptr;
    if ((*status = prepare_request_target(req, &why)) != 0) {
        log_info("client %.*s: bad request (%d): %s", static_cast<int>(req.remote_addr.size()),
                 req.remote_addr.data(), *status, why);
        return nullptr;
    }
    HttpServer *server = group.find(req.input.authority);
    req.server = server;
    const ServerConfig &cfg = server->config();
    if (req.input.content_length >= 0 && cfg.client_max_body_size > 0 &&
        static_cast<uint64_t>(req.input.content_length) > cfg.client_max_body_size) {
        log_info("client %.*s: Content-Length %lld over client_max_body_size",
                 static_cast<int>(req.remote_addr.size()), req.remote_addr.data(),
                 static_cast<long long>(req.input.content_length));
        *status = 413;
        return nullptr;
    }
    return server;
}

void exchange_run(Request &req, HttpServer &server) {
    req.state = RequestState::handling;
    server.handle(req);
}

void exchange_abort(Request &req) {
    cancel_pause(req);  // a plugin's later resume() finds nothing
    if (req.handler) {
        req.handler->on_request_abort(req);
        Worker::current().defer_delete(std::move(req.handler));
    }
    if (req.state != RequestState::responded && !req.response.status)
        req.response.status = 499;  // client closed request (nginx)
}

void exchange_finish(Request &req) {
    if (!req.logged) {
        req.logged = true;
        run_log_phase(req);
        access_log_write(req);
    }
    if (req.handler) Worker::current().defer_delete(std::move(req.handler));
}

void exchange_release(Worker &worker, Request *req) {
    req->reset();
    worker.release_request_later(req);
}

}  // namespace torii
