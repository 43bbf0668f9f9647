// The HTTP/2 codec module (RFC 9113) over libnghttp2 1.52's classic API: a client
// connection negotiated by ALPN "h2" or opened with the cleartext preface (h2c prior
// knowledge, sniffed by the HTTP/1.1 codec on plain ports). Each stream is one exchange of
// the core (core/exchange) with an Http2Stream as its Downstream, so every phase and plugin
// runs unchanged.
//
// I/O follows nghttpx's shape: every received byte goes to nghttp2_session_mem_recv; frames
// are pulled with nghttp2_session_mem_send into the socket's output once per event-loop turn
// (a deferred send event, run after the turn's reads and upstream answers), never from
// inside nghttp2's callbacks. Request bodies are flow-controlled end to end: automatic
// WINDOW_UPDATE is off and bytes are consumed only once the handler took them.
#pragma once

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/socket_address.h"
#include "core/net/socket.h"
#include "core/server/client_connection.h"
#include "modules/http2/http2_frame_checks.h"
#include "modules/http2/http2_stream.h"

namespace torii {

class Worker;
struct ServerGroup;
struct ServerConfig;

class Http2Connection final : public ClientConnection, public SocketHandler {
public:
    Http2Connection(Worker &worker, std::unique_ptr<Socket> sock, const SocketAddress &peer,
                    const ServerGroup &group);
    ~Http2Connection() override;

    // Sends the server's SETTINGS and processes what the socket already holds (the preface).
    void start();
    void shutdown_gracefully() override;
    void close_now() override;

    // For streams: write what nghttp2 has queued once the current work is done.
    void schedule_send();
    nghttp2_session *session() const { return session_; }
    Worker &worker() const { return worker_; }
    const ServerConfig &limits() const { return limits_; }
    const char *remote_text() const { return remote_text_; }
    std::string_view remote_view() const { return {remote_text_, remote_len_}; }
    const SocketAddress &peer() const { return peer_; }
    const ServerGroup &group() const { return group_; }
    bool tls() const { return sock_ && sock_->ssl(); }
    ssl_st *ssl() const { return sock_ ? sock_->ssl() : nullptr; }
    const Socket *socket() const { return sock_.get(); }
    // The client did something that costs the server and serves no request (an empty DATA
    // frame, a PING, a SETTINGS, a PRIORITY, a reset it provoked): false once the
    // connection's budget is spent, and the connection ends with ENHANCE_YOUR_CALM.
    bool spend_glitch();
    // A stream's handler wants to hear when its output drained (after this send round).
    void queue_drained(Http2Stream *s) { drained_.push_back(s); }
    void stream_opened(Http2Stream *s);
    // The open stream of `id`, or nullptr (inline: every header field asks).
    Http2Stream *stream(int32_t id) const {
        Http2Stream *s = by_id_[slot_of(id)];
        if (s && s->id() == id) [[likely]]
            return s;
        return static_cast<Http2Stream *>(nghttp2_session_get_stream_user_data(session_, id));
    }
    void stream_closed(Http2Stream *s);
    size_t open_streams() const { return open_streams_; }
    // Open streams that are WebSocket handshakes or tunnels (RFC 8441).
    size_t websocket_streams() const { return websocket_streams_; }
    void websocket_opened() { ++websocket_streams_; }
    void websocket_closed() { --websocket_streams_; }
    // RFC 9113 checks nghttp2 leaves out (http2_frame_checks.h), from its callbacks: 0, or
    // NGHTTP2_ERR_CALLBACK_FAILURE with the connection error to send recorded.
    int check_begin_frame(const nghttp2_frame_hd &hd);
    int check_settings();

private:
    // SocketHandler
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &s, bool reading) override;

    static void on_send_cb(evutil_socket_t, short, void *ctx);
    static void on_timer_cb(evutil_socket_t, short, void *ctx);
    static void on_wrap_up_cb(evutil_socket_t, short, void *ctx);
    void add_stream(Http2Stream *s);
    static size_t slot_of(int32_t id) { return (static_cast<uint32_t>(id) >> 1) % kStreamTable; }
    void do_recv();
    void do_goaway_notice();
    void do_send();
    void do_close(const char *why);
    void do_idle_check();

    Worker &worker_;
    const ServerGroup &group_;
    const ServerConfig &limits_;
    std::unique_ptr<Socket> sock_;
    SocketAddress peer_;
    char remote_text_[SocketAddress::kHostTextMax];
    size_t remote_len_ = 0;
    nghttp2_session *session_ = nullptr;
    EventPtr send_ev_;                    // a deferred send round
    EventPtr timer_;                      // idle timeout, then the second step of a graceful GOAWAY
    EventPtr wrap_up_;                    // draining: GOAWAY even if the client never pauses
    std::vector<Http2Stream *> streams_;  // open streams (nghttp2 offers no iteration)
    std::vector<Http2Stream *> drained_;
    // Open streams by id, where their slot is free (client ids are odd and rise, so the
    // streams in flight take different slots unless one is kStreamTable ids older than
    // another): a lookup here instead of in nghttp2's stream map, for every header field,
    // frame and close of a stream. A stream that finds its slot taken is the stream user
    // data of nghttp2 instead (set_stream_user_data and its lookups cost about 80
    // instructions a request).
    static constexpr size_t kStreamTable = 256;
    std::array<Http2Stream *, kStreamTable> by_id_{};
    size_t open_streams_ = 0;
    size_t websocket_streams_ = 0;
    uint64_t last_stream_ms_ = 0;  // draining: when it began or a stream last opened or closed
    bool closed_ = false;
    bool send_scheduled_ = false;  // send_ev_ is active: it runs in this loop turn
    bool draining_ = false;        // the worker is stopping: GOAWAY once the client pauses
    bool goaway_notice_ = false;   // shutdown notice sent, final GOAWAY pending
    bool goaway_sent_ = false;
    bool calm_down_ = false;  // the glitch budget is spent
    Http2FrameChecks checks_;
    uint32_t connection_error_ = 0;  // a check failed: the GOAWAY's error code
    double glitch_tokens_;           // token bucket (kGlitchBurst, refilled kGlitchRate a second)
    uint64_t glitch_refill_ms_ = 0;
};

}  // namespace torii
