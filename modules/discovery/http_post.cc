#include "modules/discovery/http_post.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

namespace torii {

// TCP keepalive: the first probe after 10 s without traffic, then every 5 s; 3 unanswered
// probes and the kernel resets the connection (~25 s for a peer that vanished).
static constexpr int kKeepIdle = 10, kKeepInterval = 5, kKeepCount = 3;

HttpPost::~HttpPost() = default;

Result<void> HttpPost::start(event_base *base, const DiscoveryEndpoint &to, std::string_view path,
                             std::string_view json, const HttpPostLimits &limits) {
    limits_ = limits;
    request_ =
        "POST " + std::string(path) + " HTTP/1.1\r\nHost: " + to.host +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(json.size()) +
        "\r\n\r\n" + std::string(json);
    parser_.begin_response(&head_, &arena_, false);
    int err = 0;
    socket_.reset(Socket::connect(base, to.address, this, &err));
    if (!socket_) return make_error(std::string("cannot make a socket: ") + strerror(err));
    socket_->set_write_timeout(limits_.connect_ms);  // bounds the connect
    if (limits_.tcp_keepalive) {
        int fd = socket_->fd(), on = 1;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepIdle, sizeof kKeepIdle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepInterval, sizeof kKeepInterval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepCount, sizeof kKeepCount);
    }
    return {};
}

void HttpPost::stop() {
    stopped_ = true;
    if (socket_) socket_->detach();
}

void HttpPost::fail(const std::string &why) {
    if (stopped_) return;
    stop();
    handler_.on_post_error(why);
}

void HttpPost::on_socket_connected(Socket &s) {
    if (stopped_) return;
    connected_ = true;
    evbuffer_add(s.output(), request_.data(), request_.size());
    request_.clear();
    s.set_read_timeout(limits_.head_ms);
    s.flush();
}

void HttpPost::on_socket_error(Socket &, int err) {
    fail(connected_ ? strerror(err) : std::string("cannot connect: ") + strerror(err));
}

void HttpPost::on_socket_timeout(Socket &, bool reading) {
    if (!connected_)
        fail("timeout connecting");
    else if (!reading)
        fail("timeout sending the request");
    else if (!head_seen_)
        fail("timeout waiting for the response");
    else
        fail("nothing received for " + std::to_string(limits_.body_ms) + " ms");
}

void HttpPost::on_socket_read(Socket &s) {
    if (stopped_) return;
    for (;;) {
        ParseEvent ev = parser_.feed(s.input(), body_.get(), limits_.max_buffered);
        switch (ev) {
            case ParseEvent::head_complete:
                if (head_.status < 200) {  // nothing asked for an interim answer
                    fail("unexpected HTTP " + std::to_string(head_.status));
                    return;
                }
                head_seen_ = true;
                s.set_read_timeout(limits_.body_ms);
                handler_.on_post_head(head_.status);
                if (stopped_) return;
                continue;
            case ParseEvent::message_complete:
                stop();
                handler_.on_post_end(body_.get());
                return;
            case ParseEvent::upgrade:
                fail("unexpected protocol switch");
                return;
            case ParseEvent::error:
                fail(std::string("bad response: ") + parser_.error_reason());
                return;
            case ParseEvent::need_more:
            case ParseEvent::body_full:
                break;
        }
        if (evbuffer_get_length(body_.get()) > 0) {
            handler_.on_post_body(body_.get());
            if (stopped_) return;
        }
        if (evbuffer_get_length(body_.get()) >= limits_.max_buffered) {
            fail("a message over " + std::to_string(limits_.max_buffered) + " bytes");
            return;
        }
        if (ev == ParseEvent::need_more) break;  // body_full: the handler made room, go on
    }
    if (!s.eof()) return;
    if (parser_.finish() == ParseEvent::message_complete) {
        stop();
        handler_.on_post_end(body_.get());
        return;
    }
    fail(head_seen_ ? "the server closed the connection in the middle of the response"
                    : "the server closed the connection before responding");
}

}  // namespace torii
