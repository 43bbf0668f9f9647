// Forwards one request to an upstream over HTTP/1.1 and streams the response back.
//
//   start ─► pick target ─► take a pooled connection ──────────────┐
//                        └► connect (connect_timeout) ─► connected ─┴► send head, stream body
//        ─► read response head (read_timeout) ─► send head to client ─► stream body ─► end
//
// A connect failure or timeout moves on to another target while `retries` allow; so does a
// reset or silence before any response byte for idempotent requests whose body has not
// been forwarded yet. Bodies move between evbuffers in both directions with backpressure:
// the side that produces stops reading while the other side's output is full.
#pragma once

#include <memory>

#include <torii/plugin.h>

#include "core/http/http1_parser.h"
#include "core/http/request.h"
#include "core/net/socket.h"
#include "core/proxy/tried_targets.h"

namespace torii {

class UpstreamRuntime;
class UpstreamConnection;

class ProxySession final : public RequestHandler, public SocketHandler, public PhaseOwner {
public:
    ProxySession(Request &req, UpstreamRuntime &upstream);
    ~ProxySession() override;

    void start() noexcept;

private:
    enum class State {
        picking,     // choosing a target (at start and between attempts)
        connecting,  // TCP connect in progress (connect_timeout)
        exchanging,  // request going out and/or response coming back
        done,        // finished or failed; nothing more will happen
    };

    // RequestHandler
    void on_request_body(Request &req) noexcept override;
    void on_response_drained(Request &req) noexcept override;
    void on_request_abort(Request &req) noexcept override;
    // SocketHandler (the upstream connection)
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_connected(Socket &s) override;
    void on_socket_timeout(Socket &s, bool reading) override;
    // PhaseOwner (the upstream phase may pause)
    void on_phase_resumed(Request &req, int phase, int action) noexcept override;

    void do_prepare();
    void do_connect();
    bool do_admit(int target);
    void do_report(torii_peer_outcome_t outcome, int status);
    void do_attempt();
    void do_send_request();
    void do_send_body();
    void do_read_response();
    void do_finish_response();
    void do_attempt_failed(int status, bool connecting, const char *why);
    void do_fail(int status);
    void do_drop_connection();
    bool idempotent() const;

    Request &req_;
    UpstreamRuntime &upstream_;
    State state_ = State::picking;
    std::unique_ptr<UpstreamConnection> conn_;
    Http1Parser parser_{Http1Parser::Kind::response};
    // Kept in the (pooled) request so their capacity is reused: the head as the upstream
    // sent it, the head we send (built once, sent on every attempt), response body bytes
    // on their way to the client.
    ResponseHead &upstream_head_;
    HeaderList &request_headers_;
    evbuffer *response_body_;
    std::string_view target_uri_;  // path?query for the upstream
    TriedTargets tried_;
    int target_ = -1;
    int attempts_ = 0;
    uint64_t attempt_start_us_ = 0;
    int last_status_ = 502;  // what the last failed attempt would answer
    bool stale_retry_used_ = false;
    bool prepared_ = false;        // upstream phase done, head built
    bool vetoed_ = false;          // a plugin kept some target out (peer_admit)
    bool reused_ = false;          // the connection came from the keep-alive pool
    bool chunked_up_ = false;      // request body re-framed as chunked
    bool body_forwarded_ = false;  // some request body reached the upstream socket
    bool request_sent_ = false;    // head and whole body are in the upstream output
    bool head_received_ = false;
    bool interim_ = false;  // parsing a 1xx interim response, which is dropped
};

}  // namespace torii
