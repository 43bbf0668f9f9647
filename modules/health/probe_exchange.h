// The request/response half of an HTTP health probe, once the transport (TCP, TLS) is up:
// HTTP/1.1 for http1 upstreams, HTTP/2 for h2 (TLS, ALPN h2) and h2c (prior knowledge)
// ones, so a probe takes the same path to the target as proxied requests and an h2-only
// target (a gRPC server) is not refused for speaking the wrong protocol.
//
// An exchange parses; the probe judges. Heads and bodies over the limits below fail. A gRPC
// health check (type "grpc") is an HTTP/2 exchange too: a POST of one gRPC message, judged
// by its trailers and response message (grpc_health.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace torii {

class Socket;

// A response head larger than this is a failure, not something to wait for.
inline constexpr size_t kProbeMaxHead = 16 * 1024;
// The body is read up to this many bytes (for body_contains); the rest is never waited for.
inline constexpr size_t kProbeMaxBody = 64 * 1024;

// What an exchange reports, in order: the final status, body pieces, the end; or a failure
// at any point. The bool answers are "keep going": false once the probe has its verdict,
// after which the exchange reports nothing more.
class ProbeResponseSink {
public:
    virtual bool on_probe_head(int status) = 0;
    virtual bool on_probe_body(const char *data, size_t len) = 0;
    virtual void on_probe_end() = 0;
    virtual void on_probe_failed(std::string why) = 0;
    // A field of the final response head or of its trailers (HTTP/2 exchanges only, for
    // the gRPC judge). `trailer`: from the trailers, or from a head that ends the stream (a
    // gRPC trailers-only response), where grpc-status belongs.
    virtual void on_probe_field(std::string_view name, std::string_view value, bool trailer) {
        (void)name;
        (void)value;
        (void)trailer;
    }

protected:
    ~ProbeResponseSink() = default;
};

struct ProbeRequest {
    std::string path;       // "/health"
    std::string authority;  // Host / :authority
    bool tls = false;       // :scheme https
    // A gRPC call (HTTP/2 only): POST `body` with content-type application/grpc and
    // te: trailers, instead of a GET.
    bool grpc = false;
    std::string body;
};

class ProbeExchange {
public:
    virtual ~ProbeExchange() = default;
    // The transport is up: queue the request on the socket and flush it.
    virtual void start(Socket &s) = 0;
    // New bytes in s.input(), or the peer closed (s.eof()).
    virtual void on_read(Socket &s) = 0;
};

std::unique_ptr<ProbeExchange> make_http1_exchange(const ProbeRequest &req,
                                                   ProbeResponseSink &sink);
std::unique_ptr<ProbeExchange> make_http2_exchange(const ProbeRequest &req,
                                                   ProbeResponseSink &sink);

}  // namespace torii
