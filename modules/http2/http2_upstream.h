// HTTP/2 toward targets: protocol = "h2" (TLS with ALPN h2) or "h2c" (cleartext, prior
// knowledge). Sessions are multiplexed and pooled per target: a request takes the
// least-loaded session with a free slot under the peer's SETTINGS_MAX_CONCURRENT_STREAMS,
// and a new connection is opened only when every session is full (what h2o and nghttpx
// do; nginx opens one stream per connection). A stream the target refused (REFUSED_STREAM,
// or above the last id of its GOAWAY) was not processed and is retried safely.
#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/net/socket.h"
#include "core/proxy/upstream_stream.h"
#include "modules/http2/h2_common.h"

namespace torii {

class Arena;
class UpstreamRuntime;
class Http2UpstreamSession;
struct Request;

class Http2UpstreamStream final : public UpstreamStream,
                                  public Recycled<Http2UpstreamStream> {  // one per attempt
public:
    Http2UpstreamStream(UpstreamRuntime &upstream, int target, UpstreamStreamHandler &handler,
                        Request &req);
    ~Http2UpstreamStream() override;

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
    std::unique_ptr<Socket> take_tunnel(InFlight *) override { return nullptr; }

    // From the session.
    void on_ready();
    void on_session_failed(bool connecting, const char *why);
    void on_header(uint8_t cat, std::string_view name, std::string_view value);
    void on_headers_end(uint8_t cat, bool end_stream);
    void on_data(const uint8_t *data, size_t len);
    void on_end();
    void on_close(uint32_t error_code);
    ssize_t read_body(uint8_t *buf, size_t length, uint32_t *flags);
    int32_t id() const { return id_; }

private:
    static void on_timer_cb(evutil_socket_t, short, void *ctx);
    void do_arm_read_timeout();
    void do_done();

    UpstreamRuntime &upstream_;
    int target_;
    UpstreamStreamHandler &handler_;
    ResponseHead &head_;
    evbuffer *body_;
    Arena &arena_;
    bool head_request_;
    Http2UpstreamSession *session_ = nullptr;
    int32_t id_ = -1;
    InFlight in_flight_;
    h2::OutBody out_;  // the request body, pulled by nghttp2
    EventPtr timer_;
    size_t unconsumed_ = 0;  // response body held back while the client is slow
    int64_t read_timeout_ms_ = 0;
    bool reused_ = false;
    bool paused_ = false;
    bool head_received_ = false;
    bool done_ = false;
};

// One connection to a target and its nghttp2 client session.
class Http2UpstreamSession final : public SocketHandler {
public:
    Http2UpstreamSession(UpstreamRuntime &upstream, int target);
    ~Http2UpstreamSession();

    bool connect(int *err);
    bool usable() const { return !failed_ && !goaway_; }
    bool connected() const { return ready_; }
    size_t load() const { return streams_.size(); }
    size_t capacity() const;
    bool idle() const { return streams_.empty(); }
    void attach(Http2UpstreamStream *s);
    void detach(Http2UpstreamStream *s);
    nghttp2_session *session() const { return session_; }
    bool tls() const;
    void schedule_send();

private:
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_connected(Socket &s) override;
    void on_socket_timeout(Socket &s, bool reading) override;
    static void on_send_cb(evutil_socket_t, short, void *ctx);
    static void on_ping_timer_cb(evutil_socket_t, short, void *ctx);
    void do_recv();
    void do_ping_check();
    void do_arm_ping_timer(uint64_t delay_ms);
    void do_send();
    void do_fail(const char *why);

    friend int h2u_on_frame_recv(nghttp2_session *, const nghttp2_frame *, void *);

    UpstreamRuntime &upstream_;
    int target_;
    std::unique_ptr<Socket> sock_;
    nghttp2_session *session_ = nullptr;
    EventPtr send_ev_;
    bool send_scheduled_ = false;  // send_ev_ is active: it runs in this loop turn
    // Keep-alive: a target that went away without a FIN or RST (a dead host, a silent
    // middlebox) is found by a PING on a quiet session before a request is lost on it.
    EventPtr ping_timer_;
    uint64_t last_recv_ms_ = 0;  // bytes last came from the target
    uint64_t ping_sent_ms_ = 0;  // 0: no PING waits for its ACK
    std::vector<Http2UpstreamStream *> streams_;
    bool ready_ = false;
    bool failed_ = false;
    bool goaway_ = false;
    bool settings_ = false;  // the peer's first SETTINGS arrived
};

// The sessions of one target (TargetState::h2).
class Http2SessionPool {
public:
    Http2SessionPool(UpstreamRuntime &upstream, int target)
        : upstream_(upstream), target_(target) {}
    ~Http2SessionPool();
    // The least-loaded usable session with a free slot, or a new one; nullptr with *err.
    Http2UpstreamSession *pick(int *err, bool *fresh);
    // Drops sessions that failed or drained after a GOAWAY.
    void prune();
    size_t size() const { return sessions_.size(); }
    // The target's SETTINGS_MAX_CONCURRENT_STREAMS as last announced on any of its sessions
    // (0: none yet): the capacity of a new session until its own SETTINGS arrive.
    uint32_t known_max_streams() const { return known_max_streams_; }
    void learn_max_streams(uint32_t n) { known_max_streams_ = n; }

private:
    UpstreamRuntime &upstream_;
    int target_;
    std::vector<std::unique_ptr<Http2UpstreamSession>> sessions_;
    uint32_t known_max_streams_ = 0;
};

}  // namespace torii
