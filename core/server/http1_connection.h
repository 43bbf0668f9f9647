// A client connection speaking HTTP/1.x: reads request heads with Http1Parser, hands each
// request to its server, frames the response (Content-Length, chunked, or close-delimited
// for HTTP/1.0), and keeps the connection alive between requests. Pipelined requests wait in
// the input buffer until the previous response has been sent, so answers stay in order.
#pragma once

#include <list>
#include <memory>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/http/http1_parser.h"
#include "core/http/request.h"
#include "core/net/socket.h"
#include "core/server/client_connection.h"
#include "core/server/http_server.h"
#include "core/worker/timer_queues.h"

namespace torii {

class Worker;

// Makes and registers the HTTP/1.1 connection for a socket whose transport is ready (the
// codec module's accept). With `refuse_reason`, every request on it is answered 400 with
// that text (plain HTTP that reached a TLS port).
ClientConnection *accept_http1(Worker &worker, std::unique_ptr<Socket> sock,
                               const SocketAddress &peer, const ServerGroup &group,
                               const char *refuse_reason = nullptr);

class Http1Connection final : public SocketHandler,
                              public Downstream,
                              public ClientConnection,
                              public Recycled<Http1Connection> {
public:
    Http1Connection(Worker &worker, std::unique_ptr<Socket> sock, const SocketAddress &peer,
                    const ServerGroup &group);
    ~Http1Connection() override;

    void start();
    // Made again for a parked connection's fd (ParkedHttp1) that woke up: `requests` served
    // on it so far; waits for the next one as after a keep-alive response.
    void resume_after_park(uint32_t requests);
    // Worker stopping gracefully: close now if idle, else after the current response.
    void shutdown_gracefully() override;
    void close_now() override;
    bool idle() const { return state_ == State::idle; }
    // Every request gets 400 with this text, then the connection closes.
    void refuse_requests(const char *reason) { refuse_reason_ = reason; }

    // How long an idle keep-alive connection may still bring a request once its worker drains.
    static constexpr int64_t kDrainIdleGraceMs = 1000;
    // An idle keep-alive connection is parked (ParkedHttp1) once it has been idle this long:
    // its memory goes back to the pools, and a client that sends its next request sooner
    // pays nothing for it. Short, so that a burst of new connections going idle does not
    // raise the worker's peak memory (freed memory is not given back to the system); not
    // shorter, because the queue's timer goes round once per length while connections
    // churn through it (a timer-heap removal and addition, about 600 instructions): at 50 ms
    // that was about 17 instructions per request of the bench's keep-alive row, here about 6.
    static constexpr int64_t kParkAfterMs = 100;
    // The same for a new connection that has not sent its first request. Longer: most send
    // it at once, and the rounds of its queue's timer fall on the few connections accepted
    // meanwhile (at 50 ms, about 50 instructions per new connection).
    static constexpr int64_t kParkFirstAfterMs = 1000;

private:
    enum class State {
        idle,          // between requests: waiting for a first byte (keepalive_timeout)
        reading_head,  // part of a head arrived (client_header_timeout runs)
        active,        // a request is being handled: body in and/or response out
        closing,       // flushing the last bytes, then close
        lingering,     // response sent, write side shut: reading what the client still sends
        closed,        // waiting for deferred deletion
    };

    // SocketHandler
    void on_socket_read(Socket &s) override;
    void on_socket_drained(Socket &s) override;
    void on_socket_error(Socket &s, int err) override;
    void on_socket_timeout(Socket &s, bool reading) override;

    // Downstream
    void send_head(Request &req) noexcept override;
    void send_body(Request &req, evbuffer *data) noexcept override;
    void send_end(Request &req, const HeaderList *trailers) noexcept override;
    void send_abort(Request &req) noexcept override;
    void send_reset(Request &req) noexcept override;
    void send_continue(Request &req) noexcept override;
    void send_interim(Request &req, int status, const HeaderList &fields) noexcept override;
    bool output_full(const Request &req) const noexcept override;
    void watch_output_drain(Request &req) noexcept override;
    void resume_body(Request &req) noexcept override;
    void start_tunnel(Request &req, std::unique_ptr<Socket> upstream,
                      InFlight in_flight) noexcept override;

    static void on_timer(void *ctx);
    static void on_resume_cb(evutil_socket_t, short, void *ctx);

    void set_state(State next);
    void arm_timer(int64_t ms);
    void arm_idle_timer();
    int64_t park_after() const { return requests_ ? kParkAfterMs : kParkFirstAfterMs; }
    // What an idle connection waits for its next request before it is closed.
    int64_t idle_timeout() const {
        return requests_ ? limits_.keepalive_timeout : limits_.client_header_timeout;
    }
    bool do_park();
    void disarm_timer();
    enum class Sniff { http1, need_more, handed_over };
    Sniff do_sniff_h2c();
    std::unique_ptr<Socket> do_hand_over();
    void do_process_input();
    void do_dispatch();
    void do_notify_body();
    void do_parse_error();
    void do_finish_request();
    void do_read_next();
    void do_limit_read_ahead();
    void do_close_after_flush();
    void do_close();
    void do_acquire_request();
    void do_resume_later();
    void do_cancel_resume();

    Worker &worker_;
    const ServerGroup &group_;
    const ServerConfig &limits_;  // the default server's: used before Host is known
    std::unique_ptr<Socket> sock_;
    Http1Parser parser_{Http1Parser::Kind::request};
    Request *req_ = nullptr;  // from the worker's pool while a request is under way
    SocketAddress peer_;
    State state_ = State::idle;
    QueuedTimer timer_;
    // Parses input already read, outside the current call stack (pipelined requests, a body
    // to discard after an early answer): made the first time it is needed.
    EventPtr resume_ev_;
    char remote_text_[SocketAddress::kHostTextMax];
    uint32_t requests_ = 0;
    bool may_park_ = false;      // plain TCP (a TLS connection's SSL object cannot be parked)
    bool park_armed_ = false;    // the idle timer runs for park_after(): parks, not closes
    bool head_started_ = false;  // begin_request() called for the current request
    bool keep_alive_ = true;
    bool close_after_ = false;  // this response is the last on the connection
    bool chunked_out_ = false;
    bool response_done_ = false;
    bool continue_sent_ = false;
    bool drain_for_handler_ = false;
    bool upgrade_ = false;      // the request asks for a tunnel: what follows it is not HTTP
    bool output_wait_ = false;  // idle until the client reads its answers (pipelining)
    const char *refuse_reason_ = nullptr;
};

}  // namespace torii
