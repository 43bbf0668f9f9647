// A server block as connections see it: its limits and timeouts (ServerConfig) and the
// handle() entry point that takes a parsed request head. VirtualServer implements it from
// [[server]]; the admin module implements it for the admin listener.
#pragma once

#include <string_view>
#include <vector>

#include "core/config/config.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace torii {

struct Request;

class HttpServer {
public:
    explicit HttpServer(const ServerConfig &config) : config_(config) {}
    virtual ~HttpServer() = default;

    const ServerConfig &config() const { return config_; }
    // Routes the request and starts its response (now or later). Must eventually lead to
    // Downstream::send_end or send_abort.
    virtual void handle(Request &req) noexcept = 0;

    // server_name matching: exact, "*.example.com", ".example.com", or "*" (any).
    bool matches_name(std::string_view host) const;

private:
    const ServerConfig &config_;
};

// The servers sharing one listen address; the first is the default (nginx's rule).
struct ServerGroup {
    std::vector<HttpServer *> servers;
    ssl_ctx_st *tls = nullptr;    // the default certificate when the listener terminates TLS
    bool proxy_protocol = false;  // connections start with a PROXY header (all servers agree)
    HttpServer *find(std::string_view host) const;
};

}  // namespace torii
