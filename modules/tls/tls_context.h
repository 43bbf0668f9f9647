// The SSL_CTX of a TLS listener ([[server]] tls) and of TLS upstreams ([upstream.X] tls),
// built once when the configuration is loaded, so `torii -t` reports certificate and key
// errors with FILE:LINE and a reload picks up new files. Workers inherit them at fork.
//
// Server contexts carry no per-listener data: certificate choice by SNI and ALPN choice
// ask the connection's TlsServerHooks (SSL app data), set by the accept stage.
#pragma once

#include <string>

#include "core/base/result.h"
#include "core/config/config.h"
#include "modules/tls/openssl_handles.h"

namespace torii {

// What the accept stage decides during a server handshake.
class TlsServerHooks {
public:
    // The context of the server named by SNI (nullptr: absent or unknown name; the default
    // server's context stays).
    virtual SSL_CTX *context_for_name(const char *server_name) = 0;
    // The protocol for the client's ALPN offer (wire format), or false for none in common.
    virtual bool choose_alpn(const unsigned char *offer, unsigned offer_len,
                             const unsigned char **out, unsigned char *out_len) = 0;

protected:
    ~TlsServerHooks() = default;
};

// On failure *at names the key of the tls table at fault ("cert", "key", "ca", "client_ca")
// and the error says why: "\"/etc/torii/cert.pem\": no such file".
Result<SslCtxShared> make_server_tls_context(const ServerTlsConfig &tls, std::string *at);
// `h2`: offer ALPN "h2" (protocol = "h2") instead of "http/1.1".
Result<SslCtxShared> make_upstream_tls_context(const UpstreamTlsConfig &tls, bool h2,
                                               std::string *at);

}  // namespace torii
