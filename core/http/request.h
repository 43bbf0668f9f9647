// One request/response exchange, whatever the protocol. The protocol side (an HTTP/1.1
// connection today, an HTTP/2 stream later) implements Downstream; the side that produces
// the response (proxy, `return`, admin) implements RequestHandler. Neither knows the
// other's protocol: this is the table h2o calls h2o_conn_callbacks_t.
//
// Lifetime: the Downstream owns the Request and reuses it for the next request on the
// connection. The handler is owned by the Request and freed through Worker::defer_delete
// after the exchange, so it may finish the response from inside its own callbacks; it must
// not touch the Request after calling send_end() or send_abort().
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/base/arena.h"
#include "core/base/libevent_ptr.h"
#include "core/base/deletable.h"
#include "core/base/socket_address.h"
#include "core/http/message.h"
#include "core/proxy/in_flight.h"

struct ssl_st;  // OpenSSL's SSL

namespace torii {

struct Request;
struct LocationConfig;
struct ServerConfig;
class Socket;
class HttpServer;
struct PhaseChain;
struct PluginInstance;

// Who continues a request that a plugin paused: the part of the core that ran the phase.
class PhaseOwner {
public:
    // The paused phase finished: TORII_CONTINUE (go on), TORII_RESPOND (the plugin's
    // response is in req.plugin_response) or TORII_ERROR.
    virtual void on_phase_resumed(Request &req, int phase, int action) noexcept = 0;

protected:
    ~PhaseOwner() = default;
};

// A response a plugin asked for with host->respond().
struct PluginResponse {
    int status = 0;
    HeaderList headers;
    std::string_view body;
};

// Produces the response. Every callback is noexcept and may run the exchange to its end.
class RequestHandler : public Deletable {
public:
    // More body bytes are in req.body, or req.body_done became true.
    virtual void on_request_body(Request &) noexcept {}
    // The client took the queued output (after Downstream::watch_output_drain).
    virtual void on_response_drained(Request &) noexcept {}
    // The client went away or timed out: release everything; nothing more can be sent.
    virtual void on_request_abort(Request &) noexcept {}
};

// The protocol side. send_* queue bytes toward the client; flush happens in send_body,
// send_end and flush().
class Downstream {
public:
    // Frames the head for the wire (adds Content-Length / chunked / Connection as needed).
    virtual void send_head(Request &req) noexcept = 0;                  // sends req.response
    virtual void send_body(Request &req, evbuffer *data) noexcept = 0;  // moves all of data
    virtual void send_end(Request &req, const HeaderList *trailers) noexcept = 0;
    // The response broke after its head was sent: the client must see a truncated message.
    virtual void send_abort(Request &req) noexcept = 0;
    // The exchange is reset (the upstream reset it, or it is cancelled): distinct from a
    // truncation; HTTP/1.1 resets the connection, HTTP/2 will send RST_STREAM.
    virtual void send_reset(Request &req) noexcept = 0;
    // Interim "100 Continue": the handler is ready for the body.
    virtual void send_continue(Request &req) noexcept = 0;
    // Another informational response (103 Early Hints) before the final head; ignored by a
    // protocol or client that cannot carry it (HTTP/1.0).
    virtual void send_interim(Request &req, int status, const HeaderList &fields) noexcept = 0;
    // Backpressure: stop producing while this is true, call watch_output_drain and wait
    // for on_response_drained.
    virtual bool output_full(const Request &req) const noexcept = 0;
    virtual void watch_output_drain(Request &req) noexcept = 0;
    // The handler consumed req.body: read more of it from the client.
    virtual void resume_body(Request &req) noexcept = 0;
    // The tunnel hand-off: after a 101 (WebSocket) the client side and `upstream` become a
    // two-way tunnel (core/tunnel), which keeps the request until it ends and logs it then.
    // The downstream lets go of the request and its connection.
    virtual void start_tunnel(Request &req, std::unique_ptr<Socket> upstream,
                              InFlight in_flight) noexcept = 0;

protected:
    ~Downstream() = default;
};

enum class RequestState : uint8_t {
    head,       // head parsed, routing and phases run
    handling,   // a handler produces the response
    responded,  // send_end or send_abort done
};

struct Request {
    Arena arena;
    RequestHead input;  // as received; stays untouched for logs and retries
    // Working copies that routing and plugins rewrite (strip_prefix, path rewrite).
    std::string_view path;
    std::string_view query;
    HeaderList headers;           // working copy of input.headers, which plugins may change
    ResponseHead response;        // what is (being) sent to the client
    std::string_view consumer;    // set by auth plugins, $consumer
    std::string_view request_id;  // $request_id once first used (core/http/request_id.h)
    char request_id_buf[32];      // a generated one

    Downstream *downstream = nullptr;
    const HttpServer *server = nullptr;
    const LocationConfig *location = nullptr;
    // A TCP session (modules/stream) is a Request without HTTP: no server object, no
    // location, no downstream; this is its [[server]] (host->req_is_tcp, $server_protocol).
    const ServerConfig *tcp_server = nullptr;
    std::unique_ptr<RequestHandler> handler;

    // Request body received but not yet taken by the handler; bounded by the downstream,
    // which stops reading while it holds more than a high watermark.
    EvbufferPtr body = make_evbuffer();
    bool body_done = false;
    uint64_t body_received = 0;

    SocketAddress remote;
    std::string_view remote_addr;  // text form, owned by the connection
    ssl_st *ssl = nullptr;  // the client connection's TLS session ($ssl_* variables), or none
    // The client connection's socket: whether its address came in a PROXY header
    // ($proxy_protocol_addr) and its local address (the PROXY header sent to targets).
    const Socket *client = nullptr;

    RequestState state = RequestState::head;
    bool head_sent = false;
    bool logged = false;               // the log phase and access log ran
    uint64_t bytes_sent = 0;           // body bytes toward the client
    uint64_t start_ms = 0;             // monotonic, for $request_time
    std::string_view upstream_addr;    // the target that answered, for logs
    uint64_t upstream_latency_us = 0;  // until the upstream's response head arrived

    // Plugins: the chain of the location (or server, before routing), each instance's
    // per-request slot, and the phase position for pause/resume (core/plugin/phase_runner).
    const PhaseChain *chain = nullptr;
    const PhaseChain *server_chain = nullptr;  // ran pre_route; its instances get request_done
    void **plugin_ctx = nullptr;
    // The instance whose hook runs now (host->req_ctx), and the instances outside both
    // chains (balancers) that took their slot that way: their request_done runs at the end.
    const PluginInstance *hook_inst = nullptr;
    const PluginInstance *ctx_outside[4] = {};
    uint8_t ctx_outside_count = 0;
    int phase = -1;        // torii_phase_t being run, -1 outside phases
    size_t phase_pos = 0;  // next hook of the phase to run
    uint64_t pause_token = 0;
    PhaseOwner *phase_owner = nullptr;
    bool resumed_early = false;  // resume() arrived before the hook returned TORII_PAUSE
    bool resume_queued = false;  // resume() came; the request continues from the loop
    int resumed_action = 0;
    PluginResponse plugin_response;

    // Scratch of the proxy (ProxySession), here so that pooled requests keep the capacity.
    HeaderList upstream_request_headers;
    ResponseHead upstream_response;
    EvbufferPtr upstream_body = make_evbuffer();

    // Prepares the object for the next request on the same connection.
    void reset();
};

// Sends req.response's head after running the response phase; the one way every handler
// starts a response. Returns false when a plugin replaced the response (it is then in
// req.plugin_response and has not been sent: call send_plugin_response).
bool start_response(Request &req);
// Sends req.plugin_response as the whole answer.
void send_plugin_response(Request &req);

enum class BodyBytes {
    copy,      // the bytes may change or go away before they are written: copied
    borrowed,  // the bytes outlive the connection (config text): referenced
};
// Sends req.response, already filled but for its length, with `body`: the response phase,
// the head, the body and the end (or a plugin's replacement answer).
void send_local_response(Request &req, std::string_view body, BodyBytes how);

// Responds from torii itself (errors, `return`, admin): head, body and end in one go.
// Adds Content-Type when given and Content-Length; with a non-empty body.
void respond(Request &req, int status, std::string_view body,
             std::string_view content_type = "text/plain");
// A status with the standard one-line body, e.g. "502 Bad Gateway\n".
void respond_error(Request &req, int status);

}  // namespace torii
