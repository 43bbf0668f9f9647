#include "modules/stream/tcp_session.h"

#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/base/log.h"
#include "core/exchange/exchange.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "core/proxy/upstream.h"
#include "core/net/fd_limit.h"
#include "core/tunnel/splice_tunnel.h"
#include "core/tunnel/tunnel.h"
#include "core/worker/worker.h"
#include "modules/stream/tcp_server.h"

namespace torii {

namespace {
// A socket given up inside one of its own callbacks is freed after the callback returns.
struct SocketGrave final : Deletable {
    explicit SocketGrave(std::unique_ptr<Socket> s) : sock(std::move(s)) {}
    std::unique_ptr<Socket> sock;
};
}  // namespace

TcpSession::TcpSession(Worker &worker, const TcpServer &server, int fd, const SocketAddress &peer)
    : worker_(worker), server_(server), client_(std::make_unique<Socket>(worker.base(), fd, this)) {
    std::string text = peer.host_string();
    snprintf(remote_text_, sizeof remote_text_, "%s", text.c_str());
    // Nothing is read from the client before its tunnel starts: the bytes wait in the
    // kernel, where a splice tunnel takes them without a copy.
    client_->pause_read();
    req_ = exchange_acquire(worker, nullptr, peer, remote_text_);
    exchange_begin(worker, *req_);
    worker.note_request("TCP", server.config().listen_text.front());  // for a crash report
    req_->tcp_server = &server.config();
    req_->chain = &server.chain();
    req_->client = client_.get();  // $proxy_protocol_addr; the local address for targets
}

TcpSession::~TcpSession() {
    // The worker went away while this session was still getting to its tunnel.
    if (req_) {
        cancel_pause(*req_);
        req_->response.status = 499;
        exchange_finish(*req_);
        exchange_release(worker_, req_);
    }
}

void TcpSession::start() {
    if (server_.config().proxy_protocol) {
        // Before anything else (plugins must see the real client), bounded like a
        // handshake; exactly the header's bytes are taken, the rest stays in the kernel.
        state_ = State::proxy_header;
        proxy_header_ = std::make_unique<ProxyHeaderReader>();
        client_->set_peek_mode(true);
        client_->set_read_timeout(server_.config().client_header_timeout);
        client_->resume_read();
        return;
    }
    do_connect_phase();
}

void TcpSession::on_socket_read(Socket &s) {
    if (&s != client_.get() || state_ != State::proxy_header) return;
    switch (proxy_header_->read(s.fd())) {
        case ProxyHeaderReader::Step::again:
            return;
        case ProxyHeaderReader::Step::invalid:
            // No answer, as on HTTP listeners: the peer should be a balancer.
            do_close(400, proxy_header_->header().error);
            return;
        case ProxyHeaderReader::Step::closed:
            do_close(400, "closed before a whole PROXY header");
            return;
        case ProxyHeaderReader::Step::done:
            break;
    }
    const ProxyHeader &h = proxy_header_->header();
    if (h.has_addresses) {  // LOCAL and UNKNOWN keep the balancer's own address
        req_->remote = h.source;
        std::string text = h.source.host_string();
        snprintf(remote_text_, sizeof remote_text_, "%s", text.c_str());
        req_->remote_addr = remote_text_;
        client_->set_proxied();
    }
    proxy_header_.reset();
    client_->set_peek_mode(false);
    client_->pause_read();
    client_->set_read_timeout(0);
    do_connect_phase();
}

void TcpSession::do_connect_phase() {
    state_ = State::connect_phase;
    PhaseResult r = run_phase(*req_, kPhaseConnect, this);
    if (r == PhaseResult::paused) return;  // on_phase_resumed continues
    do_after_connect_phase(r == PhaseResult::done      ? TORII_CONTINUE
                           : r == PhaseResult::respond ? TORII_RESPOND
                                                       : TORII_ERROR);
}

void TcpSession::on_phase_resumed(Request &, int, int action) noexcept {
    if (state_ != State::connect_phase) return;
    do_after_connect_phase(action);
}

void TcpSession::do_after_connect_phase(int action) {
    if (action == TORII_RESPOND && req_->plugin_response.status) {
        // A plugin refused the connection: there is no protocol to answer in, so it is
        // closed; the status is what the log and stats record.
        do_close(req_->plugin_response.status, nullptr);
        return;
    }
    if (action != TORII_CONTINUE) {
        do_close(500, "a plugin failed in the connect phase");
        return;
    }
    if (server_.config().tls) {
        do_handshake();
        return;
    }
    do_attempt();
}

void TcpSession::do_handshake() {
    state_ = State::handshake;
    SSL *ssl = SSL_new(server_.config().tls->ctx.get());
    if (!ssl) {
        do_close(500, "SSL_new failed");
        return;
    }
    req_->ssl = ssl;  // $ssl_* for the log phase; the socket owns it
    // The handshake is bounded like an HTTP server's (client_header_timeout).
    client_->set_read_timeout(server_.config().client_header_timeout);
    client_->start_tls(ssl, true);  // may finish at once: on_socket_connected goes on
}

void TcpSession::do_attempt() {
    state_ = State::connecting;
    UpstreamRuntime &up = server_.upstream();
    int t = up.pick_admitted(*req_, tried_, &vetoed_);
    if (t < 0) {
        if (attempts_ == 0)
            log_warn("upstream \"%s\": no healthy target", up.config().name.c_str());
        do_close(attempts_ == 0 && (t == UpstreamRuntime::kNoneHealthy || vetoed_) ? 503 : 502,
                 nullptr);
        return;
    }
    target_ = t;
    ++attempts_;
    attempt_start_us_ = Worker::now_us();
    TargetState &target = up.target(t);
    req_->upstream_addr = target.config.address;
    int err = 0;
    Socket *s = up.open_connection(t, this, &err);
    if (!s) {
        do_attempt_failed(TORII_PEER_FAILED, strerror(err));
        return;
    }
    if (up.config().proxy_protocol != ProxyProtocolSend::none)
        s->set_preamble(std::string(up.proxy_header_for(*req_)));  // before TLS, if any
    upstream_.reset(s);
    upstream_->set_write_timeout(up.config().connect_timeout);  // the connect and TLS
    in_flight_ = up.count_in_flight(t);
}

// Tells the server's plugins how the connect to the current target went.
void TcpSession::do_report(int outcome) {
    server_.upstream().report_to_plugins(*req_, target_, static_cast<torii_peer_outcome_t>(outcome),
                                         0);
}

void TcpSession::on_socket_connected(Socket &s) {
    if (&s == client_.get()) {  // the TLS handshake with the client is done
        client_->pause_read();
        client_->set_read_timeout(0);
        do_attempt();
        return;
    }
    UpstreamRuntime &up = server_.upstream();
    uint64_t latency = Worker::now_us() - attempt_start_us_;
    req_->upstream_latency_us = latency;  // $upstream_response_time: the connect's time
    up.report_success(*req_, target_, latency);
    do_report(TORII_PEER_OK);
    do_tunnel();
}

void TcpSession::on_socket_error(Socket &s, int err) {
    if (state_ == State::done) return;
    if (&s == client_.get()) {
        const char *why = s.tls_error().empty() ? strerror(err) : s.tls_error().c_str();
        std::string text = std::string("client connection error: ") + why;
        do_close(state_ == State::handshake ? 400 : 499, text.c_str());
        return;
    }
    do_attempt_failed(TORII_PEER_FAILED,
                      s.tls_error().empty() ? strerror(err) : s.tls_error().c_str());
}

void TcpSession::on_socket_timeout(Socket &s, bool) {
    if (state_ == State::done) return;
    if (&s == client_.get()) {
        do_close(400, state_ == State::proxy_header
                          ? "no PROXY header within client_header_timeout"
                          : "TLS handshake not done within client_header_timeout");
        return;
    }
    do_attempt_failed(TORII_PEER_TIMEOUT, "connect timed out (connect_timeout)");
}

void TcpSession::do_drop_upstream() {
    in_flight_.release();
    if (!upstream_) return;
    upstream_->detach();
    worker_.defer_delete(std::make_unique<SocketGrave>(std::move(upstream_)));
}

void TcpSession::do_attempt_failed(int outcome, const char *why) {
    UpstreamRuntime &up = server_.upstream();
    log_warn("upstream \"%s\" target %s: %s", up.config().name.c_str(),
             up.target(target_).config.address.c_str(), why);
    do_drop_upstream();
    up.report_failure(*req_, target_, static_cast<torii_peer_outcome_t>(outcome));
    do_report(outcome);
    // A byte-stream has not started yet: any target may take the connection.
    if (attempts_ <= up.config().retries) {
        do_attempt();
        return;
    }
    do_close(502, nullptr);
}

void TcpSession::do_tunnel() {
    state_ = State::done;
    req_->response.status = 200;
    req_->state = RequestState::responded;
    Millis idle = server_.idle_timeout();
    Request *req = req_;
    req_ = nullptr;
    // The tunnel takes this session's place in the worker's registry.
    worker_.retire_connection(this);
    SplicePipe up_pipe, down_pipe;
    bool plain = !client_->ssl() && !upstream_->ssl() &&
                 splice_pipes_fit(worker_.config().main.worker_connections, SpliceTunnel::live());
    if (plain && up_pipe.open() && down_pipe.open()) {
        upstream_->set_write_timeout(0);
        auto *t = new SpliceTunnel(worker_, client_->release_fd(), upstream_->release_fd(),
                                   std::move(up_pipe), std::move(down_pipe), req,
                                   std::move(in_flight_), idle);
        worker_.add_connection(t);
        t->start();
        return;
    }
    if (plain) log_warn("tcp server: no pipe for splice (%s): copying instead", strerror(errno));
    auto *t = new Tunnel(worker_, std::move(client_), std::move(upstream_), req,
                         std::move(in_flight_), idle);
    worker_.add_connection(t);
    t->start();
}

void TcpSession::do_close(int status, const char *why) {
    if (state_ == State::done) return;
    state_ = State::done;
    if (why) log_info("client %s: %s", remote_text_, why);
    do_drop_upstream();
    client_->detach();
    cancel_pause(*req_);
    req_->response.status = status;
    req_->state = RequestState::responded;
    exchange_finish(*req_);
    exchange_release(worker_, req_);
    req_ = nullptr;
    worker_.retire_connection(this);
}

}  // namespace torii
