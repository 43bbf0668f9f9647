#include "core/server/http1_connection.h"

#include <cstdio>
#include <cstring>

#include "core/base/format.h"
#include "core/base/log.h"
#include "core/http/http1_writer.h"
#include "core/exchange/exchange.h"
#include "core/module/module.h"
#include "core/plugin/phase_runner.h"
#include "core/proxy/forwarded_headers.h"
#include "core/server/access_log.h"
#include "core/server/parked_http1.h"
#include "core/tunnel/tunnel.h"
#include "core/worker/worker.h"

namespace torii {

// Body bytes held between the client and the handler before reading pauses.
static constexpr size_t kBodyHigh = 256 * 1024;
// Response bytes queued toward the client before the handler is asked to wait.
static constexpr size_t kOutputHigh = 256 * 1024;
static constexpr size_t kOutputLow = 64 * 1024;
// Input read ahead of the request being answered (pipelined requests) before reading pauses
// until that answer is done: what a pipelining client can make torii hold.
static constexpr size_t kPipelinedHigh = 64 * 1024;
// How long a closing connection keeps reading what the client still sends, so that the
// client sees our response instead of a reset (nginx's lingering close).
static constexpr int64_t kLingerMs = 2000;

const Module http1_module = {
    .name = "http1",
    .alpn = "http/1.1",
    .accept =
        [](Worker &worker, std::unique_ptr<Socket> sock, const SocketAddress &peer,
           const ServerGroup &group) { return accept_http1(worker, std::move(sock), peer, group); },
};

ClientConnection *accept_http1(Worker &worker, std::unique_ptr<Socket> sock,
                               const SocketAddress &peer, const ServerGroup &group,
                               const char *refuse_reason) {
    auto *c = new Http1Connection(worker, std::move(sock), peer, group);
    if (refuse_reason) c->refuse_requests(refuse_reason);
    worker.add_connection(c);
    c->start();
    return c;
}

Http1Connection::Http1Connection(Worker &worker, std::unique_ptr<Socket> sock,
                                 const SocketAddress &peer, const ServerGroup &group)
    : worker_(worker),
      group_(group),
      limits_(group.servers.front()->config()),
      sock_(std::move(sock)),
      timer_(worker.timer_queues(), on_timer, this) {
    sock_->set_handler(this);
    sock_->set_read_in_place(true);  // requests parsed where a read left them
    may_park_ = !sock_->ssl();
    peer.format_host(remote_text_);
    peer_ = peer;
}

Http1Connection::~Http1Connection() {
    if (req_) exchange_release(worker_, req_);
}

// A request object comes from the worker's pool when a request starts and goes back when
// it ends, so an idle keep-alive connection holds no request memory.
void Http1Connection::do_acquire_request() {
    req_ = exchange_acquire(worker_, this, peer_, remote_text_);
}

void Http1Connection::start() {
    // The first request gets client_header_timeout from the moment of accept.
    set_state(State::idle);
    arm_idle_timer();
}

void Http1Connection::set_state(State next) {
    state_ = next;
}

// The connection's one timer sits in the worker's queue for its length (TimerQueues): a
// keep-alive request moves it to the tail of the keepalive_timeout queue, which costs no
// timer-heap work.
void Http1Connection::arm_timer(int64_t ms) {
    park_armed_ = false;
    timer_.arm(ms);
}

// Waiting for a request (the first one, or the next on a keep-alive connection) for
// idle_timeout(): a plain connection first waits park_after(), then parks for the rest
// (on_timer).
void Http1Connection::arm_idle_timer() {
    if (may_park_ && idle_timeout() > park_after()) {
        timer_.arm(park_after());
        park_armed_ = true;
        return;
    }
    arm_timer(idle_timeout());
}

void Http1Connection::disarm_timer() {
    timer_.disarm();
}

void Http1Connection::on_timer(void *ctx) {
    auto *c = static_cast<Http1Connection *>(ctx);
    switch (c->state_) {
        case State::idle:  // park_after(), keepalive_timeout or a drain's grace
            if (c->park_armed_) {
                if (!c->do_park())
                    c->arm_timer(c->idle_timeout() - c->park_after());  // stays whole
                break;
            }
            c->do_close();
            break;
        case State::reading_head:  // client_header_timeout: a slow or silent client
            log_info("client %s: request head not received within client_header_timeout",
                     c->remote_text_);
            c->do_close();
            break;
        case State::closing:  // the client does not take the rest of the output
        case State::lingering:
            c->do_close();
            break;
        case State::active:
        case State::closed:
            break;
    }
}

void Http1Connection::on_resume_cb(evutil_socket_t, short, void *ctx) {
    static_cast<Http1Connection *>(ctx)->do_process_input();
}

void Http1Connection::do_resume_later() {
    if (!resume_ev_) resume_ev_.reset(event_new(worker_.base(), -1, 0, on_resume_cb, this));
    event_active(resume_ev_.get(), 0, 0);
}

void Http1Connection::do_cancel_resume() {
    if (resume_ev_) event_del(resume_ev_.get());
}

void Http1Connection::on_socket_read(Socket &) {
    if (state_ == State::lingering) {
        evbuffer_drain(sock_->input(), evbuffer_get_length(sock_->input()));
        if (sock_->eof()) do_close();
        return;
    }
    do_process_input();
}

void Http1Connection::do_process_input() {
    if (output_wait_) return;  // the next request waits for the client to read (pipelining)
    for (;;) {
        if (state_ != State::idle && state_ != State::reading_head && state_ != State::active)
            return;
        if (!head_started_) {
            if (!sock_->has_input() && !sock_->eof()) return;
            if (requests_ == 0) {
                switch (do_sniff_h2c()) {
                    case Sniff::http1:
                        break;
                    case Sniff::need_more:
                        if (!sock_->eof()) return;
                        break;
                    case Sniff::handed_over:
                        return;
                }
            }
            if (!req_) do_acquire_request();
            parser_.begin_request(&req_->input, &req_->arena, limits_.client_max_header_size);
            parser_.set_allow_underscores(limits_.underscores_in_headers);
            head_started_ = true;
        }
        uint64_t body_before = req_->body_received;
        std::string_view fresh = sock_->take_unread();  // before input() moves it there
        ParseEvent ev = parser_.feed(sock_->input(), req_->body.get(), kBodyHigh, fresh);
        if (state_ == State::active) req_->body_received = parser_.body_bytes();
        switch (ev) {
            case ParseEvent::head_complete:
                do_dispatch();
                continue;
            case ParseEvent::message_complete:
            case ParseEvent::upgrade:
                if (ev == ParseEvent::upgrade) {
                    close_after_ = true;  // tunnels come with #websocket
                    upgrade_ = true;
                }
                req_->body_done = true;
                do_notify_body();
                if (state_ == State::active && response_done_)
                    do_finish_request();
                else
                    do_limit_read_ahead();
                return;
            case ParseEvent::body_full:
                if (req_->body_received != body_before) do_notify_body();
                if (state_ == State::active && evbuffer_get_length(req_->body.get()) >= kBodyHigh)
                    sock_->pause_read();
                else if (state_ == State::active)
                    continue;  // the handler took the body at once
                return;
            case ParseEvent::error:
                do_parse_error();
                return;
            case ParseEvent::need_more:
                break;
        }
        // need_more
        if (state_ == State::idle && parser_.in_head()) {
            set_state(State::reading_head);
            arm_timer(limits_.client_header_timeout);
        }
        if (state_ == State::active && req_->body_received != body_before) do_notify_body();
        do_limit_read_ahead();
        if (sock_->eof()) {
            if (state_ == State::idle || state_ == State::reading_head) {
                do_close();
            } else if (state_ == State::active && !req_->body_done) {
                log_info("client %s closed the connection while sending the request body",
                         remote_text_);
                do_close();
            } else if (state_ == State::active) {
                close_after_ = true;  // half-closed: finish the response, then close
            }
        }
        return;
    }
}

// The request is read whole and still being answered: bytes after it are the next
// (pipelined) requests, parsed once this one is done. Past kPipelinedHigh of them reading
// pauses until then (do_read_next), so a client cannot make torii hold its input without
// bound behind a slow answer. A client that closes meanwhile is noticed when reading
// resumes. Not for an upgrade: what follows its head is the tunnel's.
void Http1Connection::do_limit_read_ahead() {
    if (state_ == State::active && req_->body_done && !upgrade_ &&
        evbuffer_get_length(sock_->input()) >= kPipelinedHigh)
        sock_->pause_read();
}

// HTTP/2 with prior knowledge (RFC 9113 3.3) on the same port as HTTP/1.1: a connection
// that opens with the client preface belongs to the HTTP/2 codec, preface included.
Http1Connection::Sniff Http1Connection::do_sniff_h2c() {
    static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static constexpr size_t kLen = sizeof kPreface - 1;
    evbuffer *in = sock_->input();
    char head[kLen];
    size_t n = evbuffer_copyout(in, head, kLen);
    if (std::memcmp(head, kPreface, n) != 0) return Sniff::http1;
    if (n < kLen) return Sniff::need_more;
    const Module *h2 = codec_for_alpn("h2");
    if (!h2) return Sniff::http1;  // answered 400 as an unknown method
    h2->accept(worker_, do_hand_over(), peer_, group_);
    return Sniff::handed_over;
}

void Http1Connection::do_notify_body() {
    if (state_ != State::active) return;
    uint64_t limit =
        req_->server ? req_->server->config().client_max_body_size : limits_.client_max_body_size;
    if (limit > 0 && req_->body_received > limit) {
        log_info("client %s: request body over client_max_body_size (%llu)", remote_text_,
                 static_cast<unsigned long long>(limit));
        close_after_ = true;
        if (req_->handler) exchange_abort(*req_);
        if (!req_->head_sent && req_->state != RequestState::responded)
            respond_error(*req_, 413);
        else
            do_close();
        return;
    }
    if (response_done_) {  // answered already: the rest of the body is dropped
        evbuffer_drain(req_->body.get(), evbuffer_get_length(req_->body.get()));
        return;
    }
    if (req_->handler) req_->handler->on_request_body(*req_);
}

void Http1Connection::do_dispatch() {
    disarm_timer();
    set_state(State::active);
    ++requests_;
    exchange_begin(worker_, *req_);
    keep_alive_ = parser_.keep_alive() &&
                  requests_ < static_cast<uint32_t>(limits_.keepalive_requests) &&
                  !worker_.stopping();
    req_->input.scheme = sock_->ssl() ? "https" : "http";
    req_->ssl = sock_->ssl();
    req_->client = sock_.get();
    if (refuse_reason_) {
        log_info("client %s: %s", remote_text_, refuse_reason_);
        keep_alive_ = false;
        close_after_ = true;
        req_->server = group_.servers.front();
        respond(*req_, 400, std::string(refuse_reason_) + "\n");
        return;
    }
    int status = 0;
    HttpServer *server = exchange_route(*req_, group_, &status);
    if (!server) {
        if (status == 400) keep_alive_ = false;
        close_after_ = true;  // the rest of the stream cannot be trusted (400) or read (413)
        respond_error(*req_, status);
        return;
    }
    const ServerConfig &cfg = server->config();
    if (req_->input.has_body()) sock_->set_read_timeout(cfg.client_body_timeout);
    sock_->set_write_timeout(cfg.send_timeout);
    exchange_run(*req_, *server);
}

void Http1Connection::do_parse_error() {
    int status = parser_.error_status();
    log_info("client %s: bad request (%d): %s", remote_text_, status, parser_.error_reason());
    keep_alive_ = false;
    close_after_ = true;
    if (state_ == State::active && (req_->head_sent || req_->state == RequestState::responded)) {
        // The response already started: all we can do is stop.
        exchange_abort(*req_);
        do_close();
        return;
    }
    if (req_->handler) exchange_abort(*req_);
    disarm_timer();
    set_state(State::active);
    if (req_->input.method.empty()) req_->input.method = "GET";
    // A head that failed to parse never began an exchange: $request_time counts from now
    // rather than from the clock's origin.
    if (!req_->start_ms) req_->start_ms = Worker::now_ms();
    req_->body_done = true;  // nothing more will be read
    respond_error(*req_, status);
}

// ---- Downstream: the response ----

void Http1Connection::send_head(Request &req) noexcept {
    ResponseHead &r = req.response;
    HeaderList &h = r.headers;
    bool head_request = req.input.method == "HEAD";
    bool bodiless_status = r.status < 200 || r.status == 204 || r.status == 304;
    chunked_out_ = false;
    if (r.content_length >= 0 && !bodiless_status) {
        char *num = req.arena.alloc(24);
        size_t n = format_u64(num, static_cast<uint64_t>(r.content_length));
        h.add("Content-Length", std::string_view(num, n), HeaderId::content_length);
    } else if (!r.no_body && !head_request && !bodiless_status) {
        // A body the upstream ended by closing is passed on the same way: a last chunk would
        // vouch for a completeness nobody knows.
        if (req.input.version == HttpVersion::http11 && !r.until_close) {
            h.add("Transfer-Encoding", "chunked", HeaderId::transfer_encoding);
            chunked_out_ = true;
        } else {
            keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
        }
    }
    if (r.status == 101)
        ;  // Connection: upgrade is the handler's (a tunnel follows)
    else if (!keep_alive_ || close_after_)
        h.add("Connection", "close");
    else if (req.input.version == HttpVersion::http10)
        h.add("Connection", "keep-alive");
    HttpVersion v = req.input.version;
    sock_->write_head(response_head_size(r.status, r.reason, h),
                      [&](char *p) { return put_response_head(p, v, r.status, r.reason, h); });
    req.head_sent = true;
}

void Http1Connection::send_body(Request &req, evbuffer *data) noexcept {
    size_t n = evbuffer_get_length(data);
    if (n == 0) return;
    req.bytes_sent += n;
    if (chunked_out_)
        write_chunk(sock_->output(), data);
    else
        sock_->append(data);
    sock_->flush();
}

void Http1Connection::send_end(Request &req, const HeaderList *trailers) noexcept {
    if (chunked_out_) write_last_chunk(sock_->output(), trailers);
    req.state = RequestState::responded;
    response_done_ = true;
    sock_->flush();
    if (state_ != State::active) return;
    // The exchange ends when both sides have: the request ends with llhttp's
    // message_complete (do_process_input finishes it then).
    if (req_->body_done || close_after_) {
        do_finish_request();
        return;
    }
    if (req_->input.expect_continue && !continue_sent_) {
        // The client waits for "100 Continue" that will not come: do not wait for its body.
        close_after_ = true;
        do_finish_request();
        return;
    }
    // Answered before the body ended (e.g. a `return`): read and drop the rest of it so the
    // connection stays usable, as nginx's discard_body does.
    evbuffer_drain(req_->body.get(), evbuffer_get_length(req_->body.get()));
    sock_->resume_read();
    if (evbuffer_get_length(sock_->input()) > 0) do_resume_later();
}

void Http1Connection::send_abort(Request &req) noexcept {
    req.state = RequestState::responded;
    response_done_ = true;
    keep_alive_ = false;
    close_after_ = true;
    exchange_finish(*req_);
    // Send what is queued: a truncated body is how HTTP/1 says the response broke.
    set_state(State::closing);
    sock_->pause_read();
    // The head may be queued but not yet written (it is flushed with the first body bytes):
    // write now, or nothing would ever wake the drain watch below.
    sock_->flush();
    if (sock_->pending_output() == 0) {
        do_close();
        return;
    }
    sock_->watch_drain(0);
    arm_timer(limits_.send_timeout);
}

void Http1Connection::send_reset(Request &req) noexcept {
    req.state = RequestState::responded;
    response_done_ = true;
    keep_alive_ = false;
    exchange_finish(*req_);
    // What is queued is dropped with the connection: the client sees a reset, not a body
    // that merely ends early.
    sock_->reset_on_close();
    do_close();
}

void Http1Connection::send_continue(Request &req) noexcept {
    if (req.input.version != HttpVersion::http11 || req.head_sent) return;
    evbuffer_add(sock_->output(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    continue_sent_ = true;
    sock_->flush();
}

void Http1Connection::start_tunnel(Request &req, std::unique_ptr<Socket> upstream,
                                   InFlight in_flight) noexcept {
    const ServerConfig &cfg = req.server ? req.server->config() : limits_;
    Millis idle = cfg.tunnel_idle_timeout > 0 ? cfg.tunnel_idle_timeout
                                              : worker_.config().main.tunnel_idle_timeout;
    sock_->flush();  // the 101 head
    req.state = RequestState::responded;
    req.downstream = nullptr;  // this connection goes away; the tunnel logs the request
    Request *r = req_;
    req_ = nullptr;
    auto *t =
        new Tunnel(worker_, do_hand_over(), std::move(upstream), r, std::move(in_flight), idle);
    worker_.add_connection(t);
    t->start();
}

// This connection becomes another (an HTTP/2 connection, a tunnel): it leaves the registry
// and goes away after the current callback; the caller takes its socket.
std::unique_ptr<Socket> Http1Connection::do_hand_over() {
    set_state(State::closed);
    disarm_timer();
    do_cancel_resume();
    worker_.retire_connection(this);
    sock_->set_read_in_place(false);  // the next owner reads through input() unless it says
    return std::move(sock_);
}

void Http1Connection::send_interim(Request &req, int status, const HeaderList &fields) noexcept {
    if (req.input.version != HttpVersion::http11 || req.head_sent) return;
    write_response_head(sock_->output(), HttpVersion::http11, status, {}, fields);
    sock_->flush();
}

bool Http1Connection::output_full(const Request &) const noexcept {
    return sock_->pending_output() >= kOutputHigh;
}

void Http1Connection::watch_output_drain(Request &) noexcept {
    drain_for_handler_ = true;
    sock_->watch_drain(kOutputLow);
}

void Http1Connection::resume_body(Request &) noexcept {
    if (state_ != State::active || req_->body_done) return;
    if (evbuffer_get_length(req_->body.get()) >= kBodyHigh) return;
    sock_->resume_read();
    // Input may already hold body bytes that were left unparsed while the buffer was full.
    if (evbuffer_get_length(sock_->input()) > 0) do_resume_later();
}

void Http1Connection::on_socket_drained(Socket &) {
    if (state_ == State::closing) {
        do_close_after_flush();
        return;
    }
    if (state_ == State::idle && output_wait_) {  // the client took its answers
        output_wait_ = false;
        do_read_next();
        return;
    }
    if (state_ == State::active && drain_for_handler_ && req_->handler) {
        drain_for_handler_ = false;
        req_->handler->on_response_drained(*req_);
    }
}

void Http1Connection::on_socket_error(Socket &, int err) {
    if (state_ == State::active)
        log_info("client %s: connection error: %s", remote_text_, strerror(err));
    do_close();
}

void Http1Connection::on_socket_timeout(Socket &, bool reading) {
    if (state_ == State::active && reading && !req_->head_sent &&
        req_->state != RequestState::responded) {
        log_info("client %s: request body not received within client_body_timeout", remote_text_);
        close_after_ = true;
        if (req_->handler) exchange_abort(*req_);
        req_->body_done = true;
        respond_error(*req_, 408);
        return;
    }
    log_info("client %s: %s timed out", remote_text_, reading ? "read" : "send");
    do_close();
}

// ---- end of an exchange ----

void Http1Connection::do_finish_request() {
    exchange_finish(*req_);
    // A draining worker still keeps the connection when this response promised keep-alive
    // (its head went out without Connection: close): the client may already be sending the
    // next request, which is answered with Connection: close during the grace below.
    bool reuse = keep_alive_ && !close_after_ && req_->body_done && !sock_->eof();
    if (!reuse) {
        do_close_after_flush();
        return;
    }
    exchange_release(worker_, req_);
    req_ = nullptr;
    head_started_ = false;
    response_done_ = false;
    chunked_out_ = false;
    continue_sent_ = false;
    drain_for_handler_ = false;
    upgrade_ = false;
    set_state(State::idle);
    sock_->set_read_timeout(0);
    if (sock_->pending_output() >= kOutputHigh) {
        // The client pipelines without reading the answers: the next request waits until
        // it has taken them down to kOutputLow, so they cannot pile up in memory. The wait
        // is bounded by send_timeout, as any write to the client.
        output_wait_ = true;
        do_cancel_resume();  // a resume queued by send_end must not parse it either
        sock_->pause_read();
        sock_->watch_drain(kOutputLow);
        arm_timer(limits_.send_timeout);
        return;
    }
    do_read_next();
}

void Http1Connection::do_read_next() {
    if (worker_.stopping())
        arm_timer(kDrainIdleGraceMs);
    else
        arm_idle_timer();  // requests_ > 0 here: keepalive_timeout
    size_t ahead = evbuffer_get_length(sock_->input());
    // Requests already read ahead (pipelined) are parsed first, one per loop turn; reading
    // goes on once fewer than kPipelinedHigh bytes of them are left, so a client sending
    // faster than its requests are answered is held back by TCP instead of by our memory.
    if (ahead < kPipelinedHigh)
        sock_->resume_read();
    else
        sock_->pause_read();
    // A pipelined request may already be waiting; parse it outside this call stack.
    if (ahead > 0) do_resume_later();
}

void Http1Connection::resume_after_park(uint32_t requests) {
    requests_ = requests;
    if (requests_ == 0 && !worker_.stopping())
        arm_idle_timer();
    else
        do_read_next();
}

// Idle for park_after() with nothing buffered either way: the connection leaves a
// ParkedHttp1 in its place (same registry entry, so the worker's counts do not move) and
// goes, giving its socket, buffers and parser back to the pools. The parked record closes
// it when keepalive_timeout (client_header_timeout before a first request) ends, counted
// from when it went idle.
bool Http1Connection::do_park() {
    if (req_ || output_wait_ || refuse_reason_ || !sock_->quiet()) return false;
    auto *parked =
        ParkedHttp1::park(worker_, group_, *sock_, peer_, requests_, idle_timeout() - park_after());
    if (!parked) return false;
    set_state(State::closed);
    do_cancel_resume();
    worker_.replace_connection(this, parked);
    worker_.defer_delete(std::unique_ptr<Deletable>(this));
    return true;
}

void Http1Connection::do_close_after_flush() {
    if (state_ == State::closed) return;
    set_state(State::closing);
    sock_->flush();
    if (sock_->pending_output() > 0) {
        sock_->pause_read();
        sock_->watch_drain(0);
        arm_timer(limits_.send_timeout);
        return;
    }
    // Everything is sent. If the client may still be sending (an unread body, or bytes
    // already waiting), close the write side and read for a moment so our response is not
    // destroyed by a reset.
    bool client_may_send = !req_->body_done || evbuffer_get_length(sock_->input()) > 0;
    if (client_may_send && !sock_->eof()) {
        set_state(State::lingering);
        sock_->shutdown_write();
        evbuffer_drain(sock_->input(), evbuffer_get_length(sock_->input()));
        sock_->set_read_timeout(0);
        sock_->resume_read();
        arm_timer(kLingerMs);
        return;
    }
    do_close();
}

void Http1Connection::do_close() {
    if (state_ == State::closed) return;
    bool was_active = req_ && state_ == State::active;
    bool in_flight = was_active && req_->state != RequestState::responded;
    set_state(State::closed);
    disarm_timer();
    do_cancel_resume();
    sock_->detach();  // nothing more from this socket, even what is queued for this loop turn
    if (req_) {
        cancel_pause(*req_);  // a plugin's later resume() finds nothing
        if (in_flight) exchange_abort(*req_);
        // Answered early (before the body ended) or cut short: still one log line.
        if (was_active) exchange_finish(*req_);
        exchange_release(worker_, req_);
        req_ = nullptr;
    }
    worker_.retire_connection(this);
}

void Http1Connection::close_now() {
    // What is queued goes out before the FIN; a response still under way is cut.
    if (state_ != State::closed) sock_->flush();
    do_close();
}

void Http1Connection::shutdown_gracefully() {
    // A response whose head is already out said "keep-alive": that promise stands, and
    // the connection drains like an idle one after it. Otherwise this response (or the
    // next request's) carries Connection: close.
    if (state_ == State::active && req_ && req_->head_sent && keep_alive_) return;
    keep_alive_ = false;
    // An idle keep-alive connection is not closed at once: a request already on its way
    // would meet a closed socket. It gets a short grace in which a request is still answered
    // (with Connection: close); then it is closed with a FIN, never a reset.
    if (state_ == State::idle) arm_timer(kDrainIdleGraceMs);
}

}  // namespace torii
