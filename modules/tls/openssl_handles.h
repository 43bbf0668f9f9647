// RAII owners for OpenSSL handles, and the one way torii turns OpenSSL's error queue into
// text for logs and config errors.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace torii {

struct SslCtxDeleter {
    void operator()(SSL_CTX *c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
    void operator()(SSL *s) const { SSL_free(s); }
};
struct SslSessionDeleter {
    void operator()(SSL_SESSION *s) const { SSL_SESSION_free(s); }
};

using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, SslSessionDeleter>;
// Contexts are shared: the config that built them and every connection made from them.
using SslCtxShared = std::shared_ptr<SSL_CTX>;

inline SslCtxShared share_ctx(SSL_CTX *ctx) {
    return SslCtxShared(ctx, SslCtxDeleter{});
}

// The reasons on OpenSSL's error queue, oldest first, joined by "; ", and the queue
// emptied; `fallback` when it is empty.
std::string openssl_errors(const char *fallback = "unknown TLS error");

}  // namespace torii
