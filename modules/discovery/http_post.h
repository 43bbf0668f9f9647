// A small non-blocking HTTP/1.1 client for JSON APIs on the fleet's event loop (etcd's
// gateway): one POST per connection, the response parsed by torii's own HTTP/1 parser
// (chunked bodies included) and its body handed over as it arrives, so a long-lived
// streaming response (a watch) works like a short one. Plain HTTP only.
//
// Every resource is bounded: the connect and the sending of the request by `connect_ms`,
// the wait for the response head by `head_ms`, silence within the body by `body_ms`, the
// head's size, and the body bytes the handler leaves buffered (`max_buffered`).
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/arena.h"
#include "core/base/result.h"
#include "core/base/socket_address.h"
#include "core/http/http1_parser.h"
#include "core/http/message.h"
#include "core/net/socket.h"
#include "modules/discovery/discovery_endpoint.h"

namespace torii {

class HttpPostHandler {
public:
    // The response head arrived; the body follows.
    virtual void on_post_head(int status) = 0;
    // More body bytes (framing removed) are at the end of `body`. The handler removes what
    // it has used and may leave a partial message for later.
    virtual void on_post_body(evbuffer *body) = 0;
    // The response ended; `body` holds what the handler left in it.
    virtual void on_post_end(evbuffer *body) = 0;
    // The exchange failed and is over: why, for a message ("connection refused", "timeout
    // waiting for the response", "the server closed the connection").
    virtual void on_post_error(const std::string &why) = 0;

protected:
    ~HttpPostHandler() = default;
};

struct HttpPostLimits {
    int64_t connect_ms = 3'000;
    int64_t head_ms = 5'000;
    int64_t body_ms = 5'000;  // 0: a body may be silent for ever
    size_t max_buffered = 4 * 1024 * 1024;
    // TCP keepalive probes while the response is open, so that a peer that vanished (host
    // down, network cut: no FIN, no RST) is noticed even when `body_ms` is long.
    bool tcp_keepalive = false;
};

class HttpPost final : public SocketHandler {
public:
    explicit HttpPost(HttpPostHandler &handler) : handler_(handler) {}
    ~HttpPost();
    HttpPost(const HttpPost &) = delete;
    HttpPost &operator=(const HttpPost &) = delete;

    // Connects and sends `POST path` with `json` as its body. An error here (no socket could
    // be made) is returned; every later outcome arrives through the handler, never from
    // inside this call.
    Result<void> start(event_base *base, const DiscoveryEndpoint &to, std::string_view path,
                       std::string_view json, const HttpPostLimits &limits);
    // No callback reaches the handler from now on; the connection closes when the object
    // is destroyed. May be called from inside a handler callback, but the object must then
    // outlive that callback (the socket is still on the stack).
    void stop();
    bool active() const { return socket_ && !stopped_; }

private:
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &s, int err) override;
    void on_socket_connected(Socket &s) override;
    void on_socket_timeout(Socket &s, bool reading) override;
    void fail(const std::string &why);
    void read_response();

    HttpPostHandler &handler_;
    std::unique_ptr<Socket> socket_;
    HttpPostLimits limits_;
    std::string request_;
    Http1Parser parser_{Http1Parser::Kind::response};
    ResponseHead head_;
    Arena arena_;
    EvbufferPtr body_ = make_evbuffer();
    bool connected_ = false;
    bool head_seen_ = false;
    bool stopped_ = false;
};

}  // namespace torii
