#include "core/http/request.h"

#include "core/http/http1_writer.h"

namespace torii {

void Request::reset() {
    input = RequestHead{};
    path = query = {};
    response = ResponseHead{};
    server = nullptr;
    location = nullptr;
    evbuffer_drain(body.get(), evbuffer_get_length(body.get()));
    body_done = false;
    body_received = 0;
    state = RequestState::head;
    head_sent = false;
    bytes_sent = 0;
    start_ms = 0;
    upstream_addr = {};
    arena.reset();
    // remote / remote_addr / tls belong to the connection and stay.
}

void respond(Request &req, int status, std::string_view body, std::string_view content_type) {
    req.response = ResponseHead{};
    req.response.status = status;
    req.response.headers.add("Server", "torii");
    if (!body.empty() && !content_type.empty())
        req.response.headers.add("Content-Type", content_type);
    req.response.content_length = static_cast<int64_t>(body.size());
    req.downstream->send_head(req);
    if (!body.empty() && req.input.method != "HEAD") {
        EvbufferPtr buf = make_evbuffer();
        evbuffer_add(buf.get(), body.data(), body.size());
        req.downstream->send_body(req, buf.get());
    }
    req.downstream->send_end(req, nullptr);
}

void respond_error(Request &req, int status) {
    char text[96];
    int n = snprintf(text, sizeof text, "%d %s\n", status, status_reason(status));
    respond(req, status, std::string_view(text, static_cast<size_t>(n)));
}

}  // namespace torii
