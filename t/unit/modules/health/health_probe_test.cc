// Health probes against real servers in this process, on one real event loop: a scripted
// server on 127.0.0.1 answers each connection with fixed bytes (plain or over TLS, with a
// certificate from a CA the test makes), or stays silent, or closes.
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "modules/health/health_probe.h"
#include "modules/tls/openssl_handles.h"
#include "modules/tls/tls_context.h"

using namespace torii;

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// A loopback listening socket on a port the kernel picks.
UniqueFd listen_loopback(uint16_t *port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
    REQUIRE(::listen(fd.get(), 16) == 0);
    socklen_t len = sizeof sin;
    getsockname(fd.get(), reinterpret_cast<sockaddr *>(&sin), &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

// ---- certificates: a CA, and a server certificate it signs -------------------------------

struct EvpPkeyDeleter {
    void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
struct X509Deleter {
    void operator()(X509 *x) const { X509_free(x); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    REQUIRE(ext);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509Ptr make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                  const char *san) {
    X509Ptr x(X509_new());
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), issuer ? 2 : 1);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600L * 24);
    X509_set_pubkey(x.get(), key);
    X509_NAME *n = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : n);
    X509 *signer = issuer ? issuer : x.get();
    if (san) {
        add_ext(x.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x.get(), signer, NID_subject_alt_name, san);
    } else {
        add_ext(x.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256());
    return x;
}

// A CA (its certificate written to a file for `tls.ca`) and a server certificate for
// 127.0.0.1 and localhost signed by it.
struct Pki {
    PkeyPtr ca_key{EVP_EC_gen("P-256")};
    X509Ptr ca;
    PkeyPtr key{EVP_EC_gen("P-256")};
    X509Ptr cert;
    std::string ca_file;

    explicit Pki(const std::string &name) {
        ca = make_cert(("torii test CA " + name).c_str(), ca_key.get(), nullptr, nullptr, nullptr);
        cert =
            make_cert("localhost", key.get(), ca.get(), ca_key.get(), "DNS:localhost,IP:127.0.0.1");
        auto dir = std::filesystem::temp_directory_path() /
                   ("torii-unit-probe-" + std::to_string(::getpid()) + "-" + name);
        std::filesystem::create_directories(dir);
        ca_file = (dir / (name + "-ca.pem")).string();
        FILE *f = std::fopen(ca_file.c_str(), "w");
        REQUIRE(f);
        PEM_write_X509(f, ca.get());
        std::fclose(f);
    }
    ~Pki() { std::filesystem::remove_all(std::filesystem::path(ca_file).parent_path()); }

    // A server context with the certificate; `alpn_h2`: select "h2" when offered.
    SslCtxShared server_ctx(bool alpn_h2) const {
        SslCtxShared ctx = share_ctx(SSL_CTX_new(TLS_server_method()));
        SSL_CTX_use_certificate(ctx.get(), cert.get());
        SSL_CTX_use_PrivateKey(ctx.get(), key.get());
        if (alpn_h2) SSL_CTX_set_alpn_select_cb(ctx.get(), select_h2, nullptr);
        return ctx;
    }

    static int select_h2(SSL *, const unsigned char **out, unsigned char *outlen,
                         const unsigned char *in, unsigned inlen, void *) {
        static const unsigned char kH2[] = "\x02h2";
        unsigned char *sel = nullptr;
        if (SSL_select_next_proto(&sel, outlen, kH2, 3, in, inlen) != OPENSSL_NPN_NEGOTIATED)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
};

// ---- a scripted server --------------------------------------------------------------------

struct BevDeleter {
    void operator()(bufferevent *b) const { bufferevent_free(b); }
};
using BevPtr = std::unique_ptr<bufferevent, BevDeleter>;

// Answers every connection with `reply` once the request head ("\r\n\r\n") arrived, then
// closes if `close_after`. `silent`: accepts and never answers.
struct Server {
    event_base *base;
    UniqueFd lfd;
    uint16_t port = 0;
    EventPtr accept_ev;
    std::string reply;
    bool silent = false;
    bool close_after = true;
    bool wait_head = true;  // false: answer the first bytes, whatever they are
    SslCtxShared tls;       // TLS server when set
    int accepted = 0;
    std::string request;  // what arrived on the last connection
    std::vector<BevPtr> conns;

    explicit Server(event_base *b, std::string r = {}) : base(b), reply(std::move(r)) {
        lfd = listen_loopback(&port);
        accept_ev.reset(event_new(base, lfd.get(), EV_READ | EV_PERSIST, on_accept, this));
        event_add(accept_ev.get(), nullptr);
    }
    ~Server() {
        accept_ev.reset();
        conns.clear();
    }

    static void on_accept(evutil_socket_t lfd, short, void *ctx) {
        auto *s = static_cast<Server *>(ctx);
        int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        ++s->accepted;
        s->request.clear();
        bufferevent *bev = s->tls ? bufferevent_openssl_socket_new(
                                        s->base, fd, SSL_new(s->tls.get()),
                                        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                                  : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
        s->conns.emplace_back(bev);
        bufferevent_setcb(bev, on_read, nullptr, nullptr, s);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }

    static void on_read(bufferevent *bev, void *ctx) {
        auto *s = static_cast<Server *>(ctx);
        evbuffer *in = bufferevent_get_input(bev);
        size_t n = evbuffer_get_length(in);
        std::string got(n, '\0');
        evbuffer_remove(in, got.data(), n);
        size_t before = s->request.size();
        bool had_head = s->request.find("\r\n\r\n") != std::string::npos;
        s->request += got;
        // Answer once: when the head is complete, or at the first bytes.
        bool now = s->wait_head ? !had_head && s->request.find("\r\n\r\n") != std::string::npos
                                : before == 0;
        if (s->silent || !now) return;
        if (s->reply.empty()) {
            on_written(bev, s);
            return;
        }
        bufferevent_write(bev, s->reply.data(), s->reply.size());
        if (s->close_after) bufferevent_setcb(bev, on_read, on_written, nullptr, s);
    }

    static void on_written(bufferevent *bev, void *) {
        // Everything went out: close (a FIN; over TLS a close_notify first).
        if (SSL *ssl = bufferevent_openssl_get_ssl(bev)) SSL_shutdown(ssl);
        ::shutdown(bufferevent_getfd(bev), SHUT_WR);
        bufferevent_disable(bev, EV_WRITE);
    }
};

// ---- running a probe ----------------------------------------------------------------------

struct Bench {
    EventBasePtr base{event_base_new()};
    UpstreamConfig up;

    Bench() {
        // The scripted servers live in this process: one writing to a probe that has gone
        // (a TLS alert after a failed handshake) must get EPIPE, as in torii's processes.
        signal(SIGPIPE, SIG_IGN);
        up.name = "u";
        up.health.enabled = true;
        up.health.timeout = 500;
    }

    // TLS toward targets, verified against `ca_file` (empty: no verification).
    void use_tls(const std::string &ca_file, bool h2 = false) {
        up.tls.enabled = true;
        up.tls.verify = !ca_file.empty();
        up.tls.ca = ca_file;
        std::string at;
        auto ctx = make_upstream_tls_context(up.tls, h2, &at);
        REQUIRE(ctx.ok());
        up.tls.ctx = ctx.value();
    }

    // Runs one probe of 127.0.0.1:port to its end (at most 2 s); the callback frees the
    // probe, as an owner would.
    ProbeResult run(uint16_t port, int64_t *elapsed_ms = nullptr) {
        std::string text = "127.0.0.1:" + std::to_string(port);
        auto addr = SocketAddress::parse(text);
        REQUIRE(addr.ok());
        std::optional<ProbeResult> got;
        std::unique_ptr<HealthProbe> probe;
        ProbeResult refused;
        auto start = Clock::now();
        probe = start_health_probe(
            base.get(), up, addr.value(), text,
            [&](ProbeResult r) {
                got = std::move(r);
                probe.reset();  // from inside the callback: must be safe
                event_base_loopbreak(base.get());
            },
            &refused);
        REQUIRE_MESSAGE(probe, refused.message);
        CHECK_FALSE(got.has_value());  // never from inside start_health_probe
        EventPtr guard(evtimer_new(
            base.get(),
            [](evutil_socket_t, short, void *b) {
                event_base_loopbreak(static_cast<event_base *>(b));
            },
            base.get()));
        timeval tv = to_timeval(2000);
        evtimer_add(guard.get(), &tv);
        event_base_dispatch(base.get());
        if (elapsed_ms) *elapsed_ms = ms_since(start);
        REQUIRE_MESSAGE(got.has_value(), "no verdict within 2 s");
        CHECK_FALSE(probe);
        return *got;
    }

    // Spins the loop for `ms`.
    void spin(int64_t ms) {
        timeval tv = to_timeval(ms);
        event_base_loopexit(base.get(), &tv);
        event_base_dispatch(base.get());
    }
};

std::string http_reply(const std::string &status, const std::string &body,
                       const std::string &extra = {}) {
    return "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
           extra + "\r\n" + body;
}

// A port with nothing listening (bound, then closed).
uint16_t closed_port() {
    uint16_t port;
    listen_loopback(&port);
    return port;
}

// HTTP/2 frames, as a server sends them: an empty SETTINGS, then the response on stream 1.
std::string h2_frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string &payload) {
    std::string f;
    f += static_cast<char>(payload.size() >> 16);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size());
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    f += static_cast<char>(stream >> 24);
    f += static_cast<char>(stream >> 16);
    f += static_cast<char>(stream >> 8);
    f += static_cast<char>(stream);
    return f + payload;
}

// `status_index`: HPACK static table entry of the :status (8 = 200, 14 = 500).
std::string h2_reply(int status_index, const std::string &body) {
    std::string hpack(1, static_cast<char>(0x80 | status_index));
    std::string out = h2_frame(4, 0, 0, "");                    // SETTINGS
    if (body.empty()) return out + h2_frame(1, 0x5, 1, hpack);  // END_STREAM | END_HEADERS
    return out + h2_frame(1, 0x4, 1, hpack) + h2_frame(0, 0x1, 1, body);
}

}  // namespace

TEST_CASE("http probe: 200 is healthy, and the request is the documented GET") {
    Bench b;
    Server srv(b.base.get(), http_reply("200 OK", "fine"));
    ProbeResult r = b.run(srv.port);
    CHECK(r.ok);
    CHECK(r.message == "HTTP 200");
    CHECK(srv.request == "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(srv.port) +
                             "\r\nUser-Agent: torii-health\r\nConnection: close\r\n\r\n");
    b.up.health.path = "/ready?full=1";
    b.up.health.host = "api.internal";
    CHECK(b.run(srv.port).ok);
    CHECK(srv.request.rfind("GET /ready?full=1 HTTP/1.1\r\nHost: api.internal\r\n", 0) == 0);
}

TEST_CASE("http probe: statuses, default 2xx/3xx or the configured list") {
    Bench b;
    Server srv(b.base.get(), http_reply("503 Service Unavailable", "down"));
    ProbeResult r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "HTTP 503");
    srv.reply = http_reply("302 Found", "", "Location: /x\r\n");
    CHECK(b.run(srv.port).ok);
    srv.reply = http_reply("404 Not Found", "");
    CHECK(b.run(srv.port).message == "HTTP 404");
    b.up.health.statuses = {200, 204};
    srv.reply = "HTTP/1.1 204 No Content\r\n\r\n";
    r = b.run(srv.port);
    CHECK(r.ok);
    CHECK(r.message == "HTTP 204");
    srv.reply = http_reply("302 Found", "", "Location: /x\r\n");
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "HTTP 302");
    b.up.health.statuses = {503};  // "down for maintenance" counts as up, if so configured
    srv.reply = http_reply("503 Service Unavailable", "");
    CHECK(b.run(srv.port).ok);
}

TEST_CASE("http probe: an interim 100 Continue is skipped for the final status") {
    Bench b;
    Server srv(b.base.get(), "HTTP/1.1 100 Continue\r\n\r\n" + http_reply("500 Oops", ""));
    CHECK(b.run(srv.port).message == "HTTP 500");
    srv.reply = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + http_reply("200 OK", "");
    CHECK(b.run(srv.port).ok);
}

TEST_CASE("http probe: body_contains, with Content-Length, chunked and read-to-close bodies") {
    Bench b;
    b.up.health.body_contains = "ready";
    Server srv(b.base.get(), http_reply("200 OK", "{\"status\":\"ready\"}"));
    ProbeResult r = b.run(srv.port);
    CHECK(r.ok);
    CHECK(r.message == "HTTP 200");
    srv.reply = http_reply("200 OK", "{\"status\":\"starting\"}");
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "body lacks \"ready\"");
    // Chunked, the word split across two chunks.
    srv.reply =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nis re\r\n3\r\nady\r\n0\r\n\r\n";
    CHECK(b.run(srv.port).ok);
    srv.reply =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nis no\r\n3\r\nt r\r\n0\r\n\r\n";
    CHECK(b.run(srv.port).message == "body lacks \"ready\"");
    // No length: the body ends when the server closes.
    srv.reply = "HTTP/1.1 200 OK\r\n\r\nall ready";
    CHECK(b.run(srv.port).ok);
    srv.reply = "HTTP/1.1 200 OK\r\n\r\nnope";
    CHECK(b.run(srv.port).message == "body lacks \"ready\"");
    // A bad status fails whatever the body says.
    srv.reply = http_reply("500 Internal Server Error", "ready");
    CHECK(b.run(srv.port).message == "HTTP 500");
}

TEST_CASE("http probe: the body is read up to 64 KiB, the head up to 16 KiB") {
    Bench b;
    b.up.health.body_contains = "ready";
    // The word after 64 KiB of a body the server never finishes: judged at 64 KiB, not at
    // the timeout.
    Server srv(b.base.get(), "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" +
                                 std::string(70000, 'x') + "ready");
    srv.close_after = false;
    int64_t took = 0;
    ProbeResult r = b.run(srv.port, &took);
    CHECK(r.message == "body lacks \"ready\"");
    CHECK(took < 400);
    // Within the limit it is found, though the body goes on.
    srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + std::string(60000, 'x') +
                "ready" + std::string(10000, 'x');
    CHECK(b.run(srv.port).ok);
    srv.close_after = true;
    srv.reply =
        "HTTP/1.1 200 OK\r\nX-Big: " + std::string(17000, 'a') + "\r\nContent-Length: 0\r\n\r\n";
    CHECK(b.run(srv.port).message == "response head over 16 KiB");
    srv.reply = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(15000, 'a') +
                "\r\nContent-Length: 5\r\n\r\nready";
    CHECK(b.run(srv.port).ok);
}

TEST_CASE("http probe: a server that never answers times out within the timeout") {
    Bench b;
    b.up.health.timeout = 300;
    Server srv(b.base.get());
    srv.silent = true;
    int64_t took = 0;
    ProbeResult r = b.run(srv.port, &took);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "timeout");
    CHECK(took >= 290);
    CHECK(took < 500);
    CHECK(srv.accepted == 1);
    // A server that sends half a head and stalls: the same.
    srv.silent = false;
    srv.close_after = false;
    srv.reply = "HTTP/1.1 200 OK\r\nContent-Le";
    r = b.run(srv.port, &took);
    CHECK(r.message == "timeout");
    CHECK(took < 500);
}

TEST_CASE("http probe: refused, closed and garbage") {
    Bench b;
    ProbeResult r = b.run(closed_port());
    CHECK_FALSE(r.ok);
    CHECK(r.message == "connection refused");
    Server srv(b.base.get(), "");  // closes at once after the request
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "connection closed before the response");
    srv.reply = "HELLO THERE\r\n\r\n";
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message.rfind("invalid response: ", 0) == 0);
    srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    b.up.health.body_contains = "short";  // found before the cut: healthy
    CHECK(b.run(srv.port).ok);
    b.up.health.body_contains = "long";
    CHECK(b.run(srv.port).message == "connection closed in the middle of the body");
}

TEST_CASE("tcp probe: connected or refused") {
    Bench b;
    b.up.health.type = "tcp";
    Server srv(b.base.get());
    srv.silent = true;
    ProbeResult r = b.run(srv.port);
    CHECK(r.ok);
    CHECK(r.message == "connected");
    CHECK(srv.accepted == 1);
    CHECK(srv.request.empty());  // nothing is sent
    r = b.run(closed_port());
    CHECK_FALSE(r.ok);
    CHECK(r.message == "connection refused");
}

TEST_CASE("destroying a probe cancels it: no callback, the connection closes") {
    Bench b;
    Server srv(b.base.get());
    srv.silent = true;
    auto addr = SocketAddress::parse("127.0.0.1:" + std::to_string(srv.port));
    REQUIRE(addr.ok());
    int calls = 0;
    b.up.health.timeout = 100;
    auto probe = start_health_probe(
        b.base.get(), b.up, addr.value(), "127.0.0.1", [&](ProbeResult) { ++calls; }, nullptr);
    REQUIRE(probe);
    b.spin(30);
    CHECK(srv.accepted == 1);
    probe.reset();
    b.spin(200);  // past the timeout
    CHECK(calls == 0);
    // And a failure that is already certain (nothing listens) but not yet delivered.
    auto closed = SocketAddress::parse("127.0.0.1:" + std::to_string(closed_port()));
    REQUIRE(closed.ok());
    probe = start_health_probe(
        b.base.get(), b.up, closed.value(), "127.0.0.1", [&](ProbeResult) { ++calls; }, nullptr);
    REQUIRE(probe);
    probe.reset();
    b.spin(50);
    CHECK(calls == 0);
}

TEST_CASE("http probe over TLS: verified against the upstream's CA, or failing") {
    Pki pki("probe");
    Bench b;
    b.up.health.timeout = 1500;  // handshakes are slow under valgrind or a sanitizer
    Server srv(b.base.get(), http_reply("200 OK", "ready"));
    srv.tls = pki.server_ctx(false);
    b.use_tls(pki.ca_file);
    ProbeResult r = b.run(srv.port);
    CHECK_MESSAGE(r.ok, r.message);
    CHECK(r.message == "HTTP 200");
    // The name checked is `sni` when set: the certificate is for localhost too.
    b.up.tls.sni = "localhost";
    CHECK_MESSAGE(b.run(srv.port).ok, "sni = localhost");
    b.up.tls.sni = "other.example";
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.message.rfind("TLS: certificate verify failed", 0) == 0, r.message);
    // Another CA: the chain does not verify.
    b.up.tls.sni.clear();
    Pki other("other");
    b.use_tls(other.ca_file);
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.message.rfind("TLS: certificate verify failed", 0) == 0, r.message);
    // verify = false takes any certificate.
    b.use_tls("");
    CHECK(b.run(srv.port).ok);
    // A plain HTTP server is no TLS target.
    Server plain(b.base.get(), http_reply("200 OK", ""));
    plain.wait_head = false;
    r = b.run(plain.port);
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.message.rfind("TLS: ", 0) == 0, r.message);
}

TEST_CASE("http probe to h2c and h2 upstreams speaks HTTP/2") {
    Bench b;
    b.up.health.timeout = 1500;
    b.up.protocol = UpstreamProtocol::h2c;
    b.up.health.body_contains = "ready";
    Server srv(b.base.get(), h2_reply(8, "all ready"));
    srv.close_after = false;  // an HTTP/2 server keeps the connection
    ProbeResult r = b.run(srv.port);
    CHECK_MESSAGE(r.ok, r.message);
    CHECK(r.message == "HTTP 200");
    CHECK(srv.request.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0) == 0);
    srv.reply = h2_reply(8, "not yet");
    CHECK(b.run(srv.port).message == "body lacks \"ready\"");
    srv.reply = h2_reply(14, "");
    CHECK(b.run(srv.port).message == "HTTP 500");
    srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";  // no HTTP/2 server
    r = b.run(srv.port);
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.message.rfind("HTTP/2: ", 0) == 0, r.message);
    srv.close_after = true;  // and the same when it closes after its answer
    r = b.run(srv.port);
    CHECK_MESSAGE(r.message.rfind("HTTP/2: ", 0) == 0, r.message);
    srv.close_after = false;

    Pki pki("h2");
    b.up.protocol = UpstreamProtocol::h2;
    b.use_tls(pki.ca_file, true);
    Server tls(b.base.get(), h2_reply(8, "ready"));
    tls.close_after = false;
    tls.tls = pki.server_ctx(true);
    r = b.run(tls.port);
    CHECK_MESSAGE(r.ok, r.message);
    // A TLS server that does not agree to h2.
    Server h1(b.base.get(), http_reply("200 OK", "ready"));
    h1.tls = pki.server_ctx(false);
    r = b.run(h1.port);
    CHECK_FALSE(r.ok);
    CHECK(r.message == "TLS: the target did not agree to HTTP/2 (ALPN)");
}

namespace {

// An HPACK literal field without indexing, new name, no Huffman (short names and values).
std::string hpack_field(const std::string &name, const std::string &value) {
    return std::string(1, '\0') + static_cast<char>(name.size()) + name +
           static_cast<char>(value.size()) + value;
}

// A gRPC answer on stream 1: the head (:status 200 and `content_type`), the message, the
// trailers; `trailers_in_head`: the head carries `trailers` and ends the stream (gRPC's
// trailers-only response) and no message goes.
std::string grpc_reply(const std::string &message, const std::string &trailers,
                       bool trailers_in_head = false,
                       const std::string &content_type = "application/grpc") {
    std::string head = std::string(1, static_cast<char>(0x80 | 8)) +  // :status 200
                       hpack_field("content-type", content_type);
    std::string out = h2_frame(4, 0, 0, "");  // SETTINGS
    if (trailers_in_head) return out + h2_frame(1, 0x5, 1, head + trailers);
    out += h2_frame(1, 0x4, 1, head);
    if (!message.empty()) out += h2_frame(0, trailers.empty() ? 0x1 : 0x0, 1, message);
    if (!trailers.empty()) out += h2_frame(1, 0x5, 1, trailers);
    return out;
}

std::string health_message(char status) {
    return std::string("\0\0\0\0\x02\x08", 6) + status;
}

}  // namespace

TEST_CASE("grpc probe: SERVING passes, grpc-status only where gRPC puts it") {
    Bench b;
    b.up.protocol = UpstreamProtocol::h2c;
    b.up.health.type = "grpc";
    const std::string ok = hpack_field("grpc-status", "0");
    Server srv(b.base.get(), grpc_reply(health_message(1), ok));
    srv.close_after = false;
    ProbeResult r = b.run(srv.port);
    CHECK_MESSAGE(r.ok, r.message);
    CHECK(r.message == "gRPC SERVING");
    srv.reply = grpc_reply(health_message(2), ok);
    CHECK(b.run(srv.port).message == "gRPC NOT_SERVING");
    CHECK_FALSE(b.run(srv.port).ok);
    srv.reply = grpc_reply(std::string("\0\0\0\0\0", 5), ok);  // UNKNOWN, left out
    CHECK(b.run(srv.port).message == "gRPC UNKNOWN");
    srv.reply = grpc_reply("garbage", ok);
    CHECK(b.run(srv.port).message == "gRPC: not a HealthCheckResponse");
    // A trailers-only answer: the status (percent-encoded message decoded) in the head.
    srv.reply = grpc_reply(
        "",
        hpack_field("grpc-status", "12") + hpack_field("grpc-message", "Method%20not%20found%0A"),
        true);
    CHECK(b.run(srv.port).message == "gRPC status 12 (Method not found?)");
    // grpc-status in a head that does not end the stream is no answer: the trailers must
    // say it, and here none come.
    srv.reply = h2_frame(4, 0, 0, "") +
                h2_frame(1, 0x4, 1,
                         std::string(1, static_cast<char>(0x88)) +
                             hpack_field("content-type", "application/grpc") + ok) +
                h2_frame(0, 0x1, 1, health_message(1));
    CHECK(b.run(srv.port).message == "gRPC: no grpc-status");
    // Not a gRPC answer at all, whatever it carries.
    srv.reply = grpc_reply(health_message(1), ok, false, "text/html");
    CHECK(b.run(srv.port).message == "gRPC: content-type \"text/html\"");
    srv.reply = grpc_reply(health_message(1), ok, false, "application/grpc+proto");
    CHECK(b.run(srv.port).ok);
    srv.reply = grpc_reply(health_message(1), ok, false, "application/grpcx");
    CHECK_FALSE(b.run(srv.port).ok);
    srv.reply = h2_reply(14, "");  // HTTP 500 before anything gRPC
    CHECK(b.run(srv.port).message == "HTTP 500");
}
