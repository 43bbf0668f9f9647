// One health probe: a connection to the target (TLS like open_connection in
// core/proxy/upstream.cc when the upstream uses it), then for type "http" an exchange in the
// upstream's protocol (probe_exchange.h), all under one timer of `timeout`.
//
// type "tcp" checks the TCP connect only, TLS upstream or not: it answers "does the target
// accept connections", cheaply; a handshake is checked by type "http".
//
// type "grpc" (h2 and h2c upstreams) calls grpc.health.v1.Health/Check for `service` and
// passes on SERVING only: HTTP 200, grpc-status 0 and a HealthCheckResponse saying so.
//
// The verdict is delivered from a libevent callback of the probe's own (the timer, made
// active), never from inside a Socket callback or from start_health_probe: `done` may well
// destroy the probe, and with it the socket whose callback would still be running.
#include "modules/health/health_probe.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/text_checks.h"
#include "core/http/query_args.h"
#include "core/net/socket.h"
#include "modules/health/grpc_health.h"
#include "modules/health/probe_exchange.h"
#include "modules/tls/openssl_handles.h"

namespace torii {
namespace {

// The Socket's "TLS handshake: certificate verify failed (self-signed certificate)" as
// "TLS: certificate verify failed (self-signed certificate)".
std::string tls_text(std::string_view socket_error) {
    for (std::string_view prefix : {"TLS handshake: ", "TLS "})
        if (socket_error.substr(0, prefix.size()) == prefix) {
            socket_error.remove_prefix(prefix.size());
            break;
        }
    return "TLS: " + std::string(socket_error);
}

// Bytes from the target, fit for a log line and GET /upstreams' JSON: printable ASCII, the
// rest as '?', at most 80 of them.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80))
        out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    return out;
}

// A grpc-message: percent-encoded UTF-8 on the wire (gRPC's HTTP/2 mapping), decoded then
// made printable.
std::string grpc_message_text(std::string_view v) {
    std::string decoded;
    for (size_t i = 0; i < v.size() && decoded.size() < 80; ++i) {
        int hi, lo;  // '+' stays itself: gRPC's encoding is not a form's
        if (v[i] == '%' && i + 2 < v.size() && (hi = hex_digit(v[i + 1])) >= 0 &&
            (lo = hex_digit(v[i + 2])) >= 0) {
            decoded.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            decoded.push_back(v[i]);
        }
    }
    return printable(decoded);
}

class Probe final : public HealthProbe, private SocketHandler, private ProbeResponseSink {
public:
    Probe(const UpstreamConfig &upstream, const std::string &address_text,
          std::function<void(ProbeResult)> done)
        : done_(std::move(done)),
          tcp_(upstream.health.type == "tcp"),
          grpc_(upstream.health.type == "grpc"),
          statuses_(upstream.health.statuses),
          needle_(upstream.health.body_contains),
          protocol_(upstream.protocol),
          tls_(upstream.tls.enabled),
          tls_ctx_(upstream.tls.ctx),
          sni_(upstream.tls.sni),
          verify_(upstream.tls.verify) {
        request_.path = grpc_ ? std::string(kGrpcHealthCheckPath) : upstream.health.path;
        request_.authority = upstream.health.host.empty() ? address_text : upstream.health.host;
        request_.tls = tls_;
        request_.grpc = grpc_;
        if (grpc_) request_.body = grpc_health_request(upstream.health.service);
        // SNI and the name the certificate must carry: `sni`, else the target's host.
        if (sni_.empty()) {
            sni_ = address_text.substr(0, address_text.rfind(':'));
            if (sni_.size() > 1 && sni_.front() == '[') sni_ = sni_.substr(1, sni_.size() - 2);
        }
    }

    ~Probe() override {
        // Deleting the events is enough: nothing reaches this probe afterwards.
        if (socket_) socket_->detach();
    }

    bool start(event_base *base, const SocketAddress &target, Millis timeout, ProbeResult *result) {
        if (!tcp_ && (has_control_chars(request_.path) || has_control_chars(request_.authority)))
            return refuse(result, "invalid path or host for an HTTP request");
        timer_.reset(event_new(base, -1, 0, on_timer_cb, this));
        if (!timer_) return refuse(result, "out of memory");
        int err = 0;
        Socket *s = Socket::connect(base, target, this, &err);
        if (!s) return refuse(result, "socket: " + errno_text(err));
        socket_.reset(s);
        if (tls_ && !tcp_ && !setup_tls(result)) return false;
        timeval tv = to_timeval(timeout);
        event_add(timer_.get(), &tv);
        return true;
    }

private:
    static bool refuse(ProbeResult *result, std::string why) {
        if (result) *result = ProbeResult{false, std::move(why)};
        return false;
    }

    bool setup_tls(ProbeResult *result) {
        if (!tls_ctx_) return refuse(result, "TLS: no client context");
        SslPtr ssl(SSL_new(tls_ctx_.get()));
        if (!ssl) return refuse(result, "TLS: " + openssl_errors("out of memory"));
        unsigned char buf[16];
        bool is_ip = inet_pton(AF_INET, sni_.c_str(), buf) == 1 ||
                     inet_pton(AF_INET6, sni_.c_str(), buf) == 1;
        if (!is_ip) SSL_set_tlsext_host_name(ssl.get(), sni_.c_str());
        if (verify_) {
            X509_VERIFY_PARAM *param = SSL_get0_param(ssl.get());
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (is_ip)
                X509_VERIFY_PARAM_set1_ip_asc(param, sni_.c_str());
            else
                X509_VERIFY_PARAM_set1_host(param, sni_.c_str(), 0);
        }
        // ALPN as the context offers it (h2 or http/1.1), the exchange following suit. No
        // app data: the context's new-session callback then keeps no session (a probe's
        // short connection is not worth resuming, and the workers' slots are theirs).
        socket_->start_tls(ssl.release(), false);
        return true;
    }

    bool speaks_http2() const {
        return grpc_ || protocol_ == UpstreamProtocol::h2 || protocol_ == UpstreamProtocol::h2c;
    }

    // The verdict; delivered from the loop by on_timer_cb.
    void finish(bool ok, std::string message) {
        if (finished_) return;
        finished_ = true;
        result_ = ProbeResult{ok, std::move(message)};
        if (socket_) socket_->detach();
        event_del(timer_.get());
        event_active(timer_.get(), EV_TIMEOUT, 1);
    }

    static void on_timer_cb(evutil_socket_t, short, void *ctx) {
        auto *p = static_cast<Probe *>(ctx);
        if (!p->finished_) {  // the real timeout: whatever was under way is abandoned
            p->finished_ = true;
            p->result_ = ProbeResult{false, "timeout"};
        }
        p->exchange_.reset();
        p->socket_.reset();  // closed now, not whenever the owner frees the probe
        auto done = std::move(p->done_);
        if (done) done(std::move(p->result_));  // may destroy the probe: nothing touches it after
    }

    // ---- SocketHandler
    void on_socket_connected(Socket &s) override {
        if (tcp_) {
            finish(true, "connected");
            return;
        }
        if (speaks_http2() && s.ssl()) {
            const unsigned char *alpn = nullptr;
            unsigned len = 0;
            SSL_get0_alpn_selected(s.ssl(), &alpn, &len);
            if (len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
                finish(false, "TLS: the target did not agree to HTTP/2 (ALPN)");
                return;
            }
        }
        exchange_ = speaks_http2() ? make_http2_exchange(request_, *this)
                                   : make_http1_exchange(request_, *this);
        exchange_->start(s);
    }

    void on_socket_read(Socket &s) override {
        if (exchange_ && !finished_) exchange_->on_read(s);
    }

    void on_socket_drained(Socket &) override {}

    void on_socket_error(Socket &s, int err) override {
        finish(false, s.tls_error().empty() ? errno_text(err) : tls_text(s.tls_error()));
    }

    void on_socket_timeout(Socket &, bool) override {
        finish(false, "timeout");  // no socket timeout is set; the timer bounds everything
    }

    // ---- ProbeResponseSink
    bool accepted(int status) const {
        if (statuses_.empty()) return status >= 200 && status < 400;
        for (int s : statuses_)
            if (s == status) return true;
        return false;
    }

    std::string status_text() const { return "HTTP " + std::to_string(status_); }

    bool on_probe_head(int status) override {
        status_ = status;
        if (grpc_) {  // judged at the end, by the trailers and the message; a gRPC server
            if (status == 200) return true;  // answers every call with HTTP 200
            finish(false, status_text());
            return false;
        }
        if (!accepted(status)) {
            finish(false, status_text());
            return false;
        }
        if (needle_.empty()) {
            finish(true, status_text());
            return false;
        }
        return true;
    }

    bool on_probe_body(const char *data, size_t len) override {
        if (grpc_) {  // the response message, up to kProbeMaxBody (one is a few bytes)
            if (len > kProbeMaxBody - window_.size()) {
                finish(false, "gRPC: response over 64 KiB");
                return false;
            }
            window_.append(data, len);
            return true;
        }
        // Searched in a window: the bytes kept from before (fewer than the needle, so a
        // match across two pieces is found) and the new ones, up to kProbeMaxBody in all.
        if (len > kProbeMaxBody - body_bytes_) len = kProbeMaxBody - body_bytes_;
        body_bytes_ += len;
        window_.append(data, len);
        if (window_.find(needle_) != std::string::npos) {
            finish(true, status_text());
            return false;
        }
        if (body_bytes_ >= kProbeMaxBody) {
            on_probe_end();
            return false;
        }
        if (window_.size() >= needle_.size()) window_.erase(0, window_.size() - needle_.size() + 1);
        return true;
    }

    void on_probe_end() override {
        if (grpc_) {
            judge_grpc();
            return;
        }
        finish(false, "body lacks \"" + needle_ + "\"");
    }

    // grpc-status and grpc-message count only where gRPC puts them (trailers, or a
    // trailers-only head), as gRPC clients read them: a head's grpc-status followed by no
    // trailers is no answer.
    void on_probe_field(std::string_view name, std::string_view value, bool trailer) override {
        if (name == "content-type" && grpc_content_type_.empty())  // the head's
            grpc_content_type_.assign(value.substr(0, 64));
        if (!trailer) return;
        if (name == "grpc-status") grpc_status_.assign(value.substr(0, 16));
        if (name == "grpc-message") grpc_message_ = grpc_message_text(value);
    }

    // "gRPC SERVING" passes; "gRPC NOT_SERVING", "gRPC status 12 (unimplemented)" (a server
    // without the health service), "gRPC: no grpc-status" and the like fail.
    void judge_grpc() {
        // A gRPC response says so (application/grpc, or application/grpc+proto and the
        // like): anything else is some other server's answer.
        std::string_view type = grpc_content_type_;
        if (type.substr(0, 16) != "application/grpc" ||
            (type.size() > 16 && type[16] != '+' && type[16] != ';')) {
            finish(false, "gRPC: content-type \"" + printable(grpc_content_type_) + "\"");
            return;
        }
        if (grpc_status_.empty()) {
            finish(false, "gRPC: no grpc-status");
            return;
        }
        if (grpc_status_ != "0") {
            std::string why = "gRPC status " + grpc_status_;
            if (!grpc_message_.empty()) why += " (" + grpc_message_ + ")";
            finish(false, std::move(why));
            return;
        }
        const int64_t status = grpc_health_status(window_);
        if (status < 0) {
            finish(false, "gRPC: not a HealthCheckResponse");
            return;
        }
        finish(status == 1, "gRPC " + grpc_health_status_name(status));
    }

    void on_probe_failed(std::string why) override { finish(false, std::move(why)); }

    std::function<void(ProbeResult)> done_;
    bool tcp_;
    bool grpc_;
    std::vector<int> statuses_;
    std::string needle_;
    UpstreamProtocol protocol_;
    bool tls_;
    std::shared_ptr<ssl_ctx_st> tls_ctx_;  // kept alive for the handshake, across a reload
    std::string sni_;
    bool verify_;
    ProbeRequest request_;

    EventPtr timer_;
    std::unique_ptr<Socket> socket_;
    std::unique_ptr<ProbeExchange> exchange_;  // after socket_: freed first
    ProbeResult result_;
    int status_ = 0;
    size_t body_bytes_ = 0;
    std::string window_;  // http: the body_contains window; grpc: the response message
    std::string grpc_content_type_;
    std::string grpc_status_;
    std::string grpc_message_;
    bool finished_ = false;
};

}  // namespace

std::unique_ptr<HealthProbe> start_health_probe(event_base *base, const UpstreamConfig &upstream,
                                                const SocketAddress &target,
                                                const std::string &address_text,
                                                std::function<void(ProbeResult)> done,
                                                ProbeResult *result) {
    auto probe = std::make_unique<Probe>(upstream, address_text, std::move(done));
    if (!probe->start(base, target, upstream.health.timeout, result)) return nullptr;
    return probe;
}

}  // namespace torii
