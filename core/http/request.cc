#include "core/http/request.h"

#include "core/base/log.h"
#include "core/http/http1_writer.h"
#include "core/plugin/phase_runner.h"
#include "modules/grpc/grpc_status.h"

namespace torii {

void Request::reset() {
    input.clear();
    path = query = {};
    headers.clear();
    response.clear();
    consumer = {};
    request_id = {};
    chain = nullptr;
    server_chain = nullptr;
    plugin_ctx = nullptr;
    hook_inst = nullptr;
    ctx_outside_count = 0;
    phase = -1;
    phase_pos = 0;
    pause_token = 0;
    phase_owner = nullptr;
    resumed_early = false;
    resume_queued = false;
    resumed_action = 0;
    plugin_response.status = 0;
    plugin_response.headers.clear();
    plugin_response.body = {};
    upstream_request_headers.clear();
    upstream_response.clear();
    evbuffer_drain(upstream_body.get(), SIZE_MAX);  // all of it: one call, not two
    server = nullptr;
    location = nullptr;
    tcp_server = nullptr;
    evbuffer_drain(body.get(), SIZE_MAX);  // all of it: one call, not two
    body_done = false;
    body_received = 0;
    state = RequestState::head;
    head_sent = false;
    logged = false;
    bytes_sent = 0;
    start_ms = 0;
    upstream_addr = {};
    upstream_latency_us = 0;
    arena.reset();
    ssl = nullptr;  // set again when the next request is dispatched
    client = nullptr;
    // remote / remote_addr belong to the connection and stay.
}

bool start_response(Request &req) {
    if (req.chain && req.phase != TORII_PHASE_RESPONSE) {
        PhaseResult r = run_phase(req, TORII_PHASE_RESPONSE, nullptr);
        if (r == PhaseResult::respond) return false;
        if (r == PhaseResult::error) log_error("response phase failed; sending the response as is");
    }
    req.downstream->send_head(req);
    return true;
}

// The body and the end of an answer torii makes itself. A borrowed body outlives the
// connection (the config's `return` text) and is referenced, not copied.
static void send_body_and_end(Request &req, std::string_view body, BodyBytes how) {
    if (!body.empty() && req.input.method != "HEAD") {
        EvbufferPtr buf = make_evbuffer();
        if (how == BodyBytes::borrowed)
            evbuffer_add_reference(buf.get(), body.data(), body.size(), nullptr, nullptr);
        else
            evbuffer_add(buf.get(), body.data(), body.size());
        req.downstream->send_body(req, buf.get());
    }
    req.downstream->send_end(req, nullptr);
}

void send_local_response(Request &req, std::string_view body, BodyBytes how) {
    if (req.response.status >= 400 && is_grpc_request(req.input)) {
        make_grpc_error(req, body);
        body = {};
    }
    req.response.content_length = static_cast<int64_t>(body.size());
    if (!start_response(req)) {
        send_plugin_response(req);
        return;
    }
    send_body_and_end(req, body, how);
}

void send_plugin_response(Request &req) {
    PluginResponse pr = std::move(req.plugin_response);
    req.plugin_response = PluginResponse{};
    req.response.clear();
    req.response.status = pr.status;
    req.response.headers = std::move(pr.headers);
    if (!req.response.headers.contains("server")) req.response.headers.add("Server", "torii");
    req.response.content_length = static_cast<int64_t>(pr.body.size());
    if (pr.status >= 400 && is_grpc_request(req.input)) {  // 401 from auth, 429 from ratelimit
        make_grpc_error(req, pr.body);
        pr.body = {};
    }
    // A plugin's own answer does not pass the response phase again. Its body lives in the
    // request's arena, which is reused before the socket may have written it: copied.
    req.downstream->send_head(req);
    send_body_and_end(req, pr.body, BodyBytes::copy);
}

void respond(Request &req, int status, std::string_view body, std::string_view content_type) {
    req.response.clear();
    req.response.status = status;
    req.response.headers.add("Server", "torii");
    if (!body.empty() && !content_type.empty())
        req.response.headers.add("Content-Type", content_type);
    send_local_response(req, body, BodyBytes::copy);
}

void respond_error(Request &req, int status) {
    char text[96];
    int n = snprintf(text, sizeof text, "%d %s\n", status, status_reason(status));
    respond(req, status, std::string_view(text, static_cast<size_t>(n)));
}

}  // namespace torii
