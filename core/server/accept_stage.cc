#include "core/server/accept_stage.h"

#include <openssl/ssl.h>

#include <cstring>

#include "core/base/log.h"
#include "core/module/module.h"
#include "core/server/http1_connection.h"
#include "core/server/http_server.h"
#include "core/worker/worker.h"

namespace torii {

// How long a handshake under way may still finish once its worker drains (as
// kDrainIdleGraceMs for an idle HTTP/1.1 connection).
static constexpr int64_t kDrainHandshakeGraceMs = 1000;

// A TLS record starts with its content type; a ClientHello travels in a handshake record.
static constexpr int kTlsHandshakeRecord = 0x16;

AcceptStage::AcceptStage(Worker &worker, int fd, const SocketAddress &peer,
                         const ServerGroup &group)
    : worker_(worker),
      group_(group),
      server_(group.servers.front()),
      sock_(std::make_unique<Socket>(worker.base(), fd, this)),
      peer_(peer) {
    timer_.reset(evtimer_new(worker.base(), on_timer_cb, this));
}

AcceptStage::~AcceptStage() = default;

void AcceptStage::start() {
    // The handshake counts toward client_header_timeout, as in nginx.
    if (group_.proxy_protocol) proxy_header_ = std::make_unique<ProxyHeaderReader>();
    timeval tv = to_timeval(server_->config().client_header_timeout);
    evtimer_add(timer_.get(), &tv);
    sock_->set_peek_mode(true);
}

void AcceptStage::on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *stage = static_cast<AcceptStage *>(ctx);
    if (stage->draining_)
        stage->do_close(stage->proxy_header_ ? "no PROXY header before the worker stopped"
                                             : "TLS handshake not done before the worker stopped");
    else
        stage->do_close(stage->proxy_header_
                            ? "no PROXY header within client_header_timeout"
                            : "TLS handshake not done within client_header_timeout");
}

// Takes the PROXY header off the socket; false while it is incomplete or when the
// connection was closed for it. No response: the peer is a balancer that was told this
// port speaks the PROXY protocol, or someone who should not learn more.
bool AcceptStage::do_read_proxy_header() {
    switch (proxy_header_->read(sock_->fd())) {
        case ProxyHeaderReader::Step::again:
            return false;
        case ProxyHeaderReader::Step::invalid:
            do_close(proxy_header_->header().error);
            return false;
        case ProxyHeaderReader::Step::closed:
            do_close(nullptr);
            return false;
        case ProxyHeaderReader::Step::done:
            break;
    }
    const ProxyHeader &h = proxy_header_->header();
    if (h.has_addresses) {  // LOCAL and UNKNOWN keep the balancer's own address
        peer_ = h.source;
        sock_->set_proxied();
    }
    proxy_header_.reset();
    return true;
}

void AcceptStage::on_socket_read(Socket &s) {
    if (done_) return;  // only reached in peek mode: later reads go to the handshake
    if (proxy_header_) {
        if (!do_read_proxy_header()) return;
        if (!group_.tls) {  // a plain listener: the request follows the header
            s.set_peek_mode(false);
            do_hand_over("http/1.1", false);
            return;
        }
    }
    int first = s.peek_first_byte();
    if (first == -1) return;
    s.set_peek_mode(false);
    if (first == -2) {
        do_close(nullptr);
        return;
    }
    if (first != kTlsHandshakeRecord) {
        do_hand_over("http/1.1", true);
        return;
    }
    SSL *ssl = SSL_new(group_.tls);
    if (!ssl) {
        do_close("SSL_new failed");
        return;
    }
    SSL_set_app_data(ssl, static_cast<TlsServerHooks *>(this));
    s.start_tls(ssl, true);  // may finish at once: on_socket_connected hands over
}

SSL_CTX *AcceptStage::context_for_name(const char *server_name) {
    const HttpServer *s = group_.find(server_name ? server_name : "");
    if (!s->config().tls) return nullptr;  // a plain server of the group: keep the default
    server_ = s;
    return s->config().tls->ctx.get();
}

bool AcceptStage::choose_alpn(const unsigned char *offer, unsigned offer_len,
                              const unsigned char **out, unsigned char *out_len) {
    // The server's order wins; only protocols a codec module speaks are chosen.
    const auto &tls = server_->config().tls;
    if (!tls) return false;
    for (const std::string &want : tls->alpn) {
        if (!codec_for_alpn(want)) continue;
        for (unsigned i = 0; i < offer_len;) {
            unsigned len = offer[i];
            if (i + 1 + len > offer_len) break;
            if (len == want.size() && std::memcmp(offer + i + 1, want.data(), len) == 0) {
                *out = offer + i + 1;
                *out_len = static_cast<unsigned char>(len);
                return true;
            }
            i += 1 + len;
        }
    }
    return false;
}

void AcceptStage::on_socket_connected(Socket &s) {
    const unsigned char *alpn = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(s.ssl(), &alpn, &len);
    std::string_view proto = len ? std::string_view(reinterpret_cast<const char *>(alpn), len)
                                 : std::string_view("http/1.1");
    do_hand_over(proto, false);
}

void AcceptStage::do_hand_over(std::string_view alpn, bool plain_on_tls_port) {
    const Module *codec = codec_for_alpn(alpn);
    if (!codec) codec = codec_for_alpn("http/1.1");
    done_ = true;
    event_del(timer_.get());
    // Leave the registry first: the codec's connection takes this one's place in it (the
    // other order would count one too many at the worker_connections cap). While the worker
    // drains, leave it after: an empty registry ends the worker's loop.
    bool draining = worker_.stopping();
    if (!draining) worker_.remove_connection(this);
    if (plain_on_tls_port)
        accept_http1(worker_, std::move(sock_), peer_, group_,
                     "The plain HTTP request was sent to HTTPS port");
    else
        codec->accept(worker_, std::move(sock_), peer_, group_);
    if (draining) worker_.remove_connection(this);
    worker_.defer_delete(std::unique_ptr<Deletable>(this));
}

void AcceptStage::on_socket_error(Socket &s, int) {
    do_close(s.tls_error().empty() ? "connection error" : s.tls_error().c_str());
}

void AcceptStage::on_socket_timeout(Socket &, bool) {
    do_close("TLS handshake timed out");
}

void AcceptStage::do_close(const char *why) {
    if (done_) return;
    done_ = true;
    if (why) log_info("client %s: %s", peer_.host_string().c_str(), why);
    event_del(timer_.get());
    sock_->detach();
    worker_.retire_connection(this);
}

// A reload or graceful stop: the handshake (or PROXY header) under way may finish, within
// the grace an idle HTTP/1.1 connection gets, and the connection it becomes drains as any
// other of a stopping worker (HTTP/1.1: its first answer closes it; HTTP/2: a GOAWAY).
// Closing it at once failed a client whose connection the old worker had just accepted (a
// reload under load must fail no request, SPEC section 7).
void AcceptStage::shutdown_gracefully() {
    if (done_ || draining_) return;
    draining_ = true;
    timeval tv = to_timeval(kDrainHandshakeGraceMs);
    evtimer_add(timer_.get(), &tv);
}

}  // namespace torii
