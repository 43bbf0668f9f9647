// UpstreamStream over HTTP/1.1: one exchange on a keep-alive connection taken from the
// target's pool or newly connected (TLS when the upstream has it). It frames the request
// (Content-Length, or chunked for a body of unknown length), parses the response with
// llhttp, drops 100 Continue, applies connect/send/read timeouts, and when the exchange
// ends cleanly gives the connection back to the pool.
#pragma once

#include <memory>
#include <string_view>

#include "core/base/recycled.h"
#include "core/http/http1_parser.h"
#include "core/net/socket.h"
#include "core/proxy/in_flight.h"
#include "core/proxy/upstream_stream.h"

namespace torii {

class Arena;
class UpstreamRuntime;
class UpstreamConnection;

class Http1UpstreamStream final : public UpstreamStream,
                                  public SocketHandler,
                                  public Recycled<Http1UpstreamStream> {  // one per attempt
public:
    // `head` and `body` are the request's scratch (pooled capacity), `arena` its memory.
    Http1UpstreamStream(UpstreamRuntime &upstream, int target, UpstreamStreamHandler &handler,
                        ResponseHead &head, evbuffer *body, Arena &arena, bool head_request);
    ~Http1UpstreamStream() override;

    // proxy_protocol upstreams: the header a new connection sends first (in the request's
    // arena). It also keys the pool: a kept-alive connection is reused only for the same
    // client connection.
    void set_proxy_header(std::string_view header) { proxy_header_ = header; }
    void start() override;

    bool reused() const override { return reused_; }
    void send_head(const UpstreamRequest &req) override;
    void send_body(evbuffer *data) override;
    void send_end(const HeaderList *trailers) override;
    void flush() override;
    bool output_full() const override;
    void pause_receiving() override;
    void resume_receiving() override;
    void abort() override;
    std::unique_ptr<Socket> take_tunnel(InFlight *in_flight) override;

private:
    enum class State { connecting, exchanging, done };

    // SocketHandler
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_connected(Socket &s) override;
    void on_socket_timeout(Socket &s, bool reading) override;

    void do_read();
    void do_finish();
    void do_fail(UpstreamError err, const char *why);
    void do_drop();

    UpstreamRuntime &upstream_;
    int target_;
    UpstreamStreamHandler &handler_;
    ResponseHead &head_;
    evbuffer *body_;
    Arena &arena_;
    bool head_request_;
    State state_ = State::connecting;
    std::unique_ptr<UpstreamConnection> conn_;
    InFlight in_flight_;
    Http1Parser parser_{Http1Parser::Kind::response};
    bool reused_ = false;
    bool chunked_ = false;       // request body framed as chunks
    bool request_sent_ = false;  // head and whole body are in the output
    bool head_received_ = false;
    bool interim_ = false;   // parsing a 1xx
    int interim_count_ = 0;  // 1xx answers so far
    bool receiving_paused_ = false;
    int64_t read_timeout_ms_ = 0;    // this request's (read_timeout, or less for a deadline)
    std::string_view proxy_header_;  // empty unless the upstream has proxy_protocol
};

}  // namespace torii
