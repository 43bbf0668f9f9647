#include "modules/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "modules/tls/ticket_keys.h"

namespace torii {

// Mozilla's "intermediate" TLS 1.2 suites (forward secret, AEAD only); TLS 1.3 suites are
// OpenSSL's defaults, all of which are modern.
static const char *const kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void common_settings(SSL_CTX *ctx) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Partial and moving writes: the socket hands SSL_write whatever its evbuffer holds.
    // Released buffers: an idle TLS connection keeps no 34 KiB of read/write buffers.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_cipher_list(ctx, kCiphers12);
    // Read ahead: one read(2) takes a whole record (and whatever follows) instead of one for
    // its 5-byte header and one for the rest, as nginx does. Bytes OpenSSL holds beyond the
    // record are announced by the socket (SSL_has_pending), not by the kernel.
    SSL_CTX_set_read_ahead(ctx, 1);
}

static int on_server_name(SSL *ssl, int *, void *) {
    auto *hooks = static_cast<TlsServerHooks *>(SSL_get_app_data(ssl));
    if (!hooks) return SSL_TLSEXT_ERR_OK;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx = hooks->context_for_name(name);
    if (ctx && ctx != SSL_get_SSL_CTX(ssl)) {
        SSL_set_SSL_CTX(ssl, ctx);
        // SSL_set_SSL_CTX switches the certificate only: client certificate settings come
        // along by hand.
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
        SSL_set_client_CA_list(ssl, SSL_dup_CA_list(SSL_CTX_get_client_CA_list(ctx)));
    }
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                   const unsigned char *in, unsigned in_len, void *) {
    auto *hooks = static_cast<TlsServerHooks *>(SSL_get_app_data(ssl));
    if (hooks && hooks->choose_alpn(in, in_len, out, out_len)) return SSL_TLSEXT_ERR_OK;
    // No protocol in common: go on without ALPN (HTTP/1.1), as nginx does.
    return SSL_TLSEXT_ERR_NOACK;
}

// "\"/etc/torii/cert.pem\": no such file", with the key named through *at.
static Error fail(std::string *at, const char *key, const std::string &path,
                  const std::string &why) {
    if (at) *at = key;
    return make_error("\"" + path + "\": " + why);
}

// OpenSSL reports a missing file as a stack of "system lib" entries: say it plainly first.
static bool readable(std::string *at, const char *key, const std::string &path, Error *err) {
    if (::access(path.c_str(), R_OK) == 0) return true;
    *err = fail(at, key, path, std::strerror(errno));
    return false;
}

Result<SslCtxShared> make_server_tls_context(const ServerTlsConfig &tls, std::string *at) {
    ERR_clear_error();
    SslCtxShared ctx = share_ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return make_error(openssl_errors());
    SSL_CTX *c = ctx.get();
    common_settings(c);
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    Error err;
    if (!readable(at, "cert", tls.cert, &err) || !readable(at, "key", tls.key, &err) ||
        (!tls.client_ca.empty() && !readable(at, "client_ca", tls.client_ca, &err)))
        return err;
    if (SSL_CTX_use_certificate_chain_file(c, tls.cert.c_str()) != 1)
        return fail(at, "cert", tls.cert, openssl_errors());
    if (SSL_CTX_use_PrivateKey_file(c, tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
        return fail(at, "key", tls.key, openssl_errors());
    if (SSL_CTX_check_private_key(c) != 1)
        return fail(at, "key", tls.key, "does not match tls.cert (" + openssl_errors() + ")");
    if (!tls.client_ca.empty()) {
        if (SSL_CTX_load_verify_locations(c, tls.client_ca.c_str(), nullptr) != 1)
            return fail(at, "client_ca", tls.client_ca, openssl_errors());
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(tls.client_ca.c_str());
        if (names) SSL_CTX_set_client_CA_list(c, names);
        int mode = SSL_VERIFY_PEER;
        if (tls.verify_client == "on") mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(c, mode, nullptr);
    }
    // Resumption by ticket only (stateless, shared keys); the id context ties a session to
    // torii's contexts, which OpenSSL requires once client certificates may be verified.
    static const unsigned char kIdContext[] = "torii";
    SSL_CTX_set_session_id_context(c, kIdContext, sizeof kIdContext - 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, 1);
    install_ticket_keys(c);
    SSL_CTX_set_tlsext_servername_callback(c, on_server_name);
    SSL_CTX_set_alpn_select_cb(c, on_alpn, nullptr);
    return ctx;
}

// Sessions for resumption toward a target: the socket's SSL app data is the target's slot.
static int on_new_upstream_session(SSL *ssl, SSL_SESSION *session) {
    auto *slot = static_cast<SslSessionPtr *>(SSL_get_app_data(ssl));
    if (!slot) return 0;
    slot->reset(session);
    return 1;  // we keep the reference
}

Result<SslCtxShared> make_upstream_tls_context(const UpstreamTlsConfig &tls, bool h2,
                                               std::string *at) {
    ERR_clear_error();
    SslCtxShared ctx = share_ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) return make_error(openssl_errors());
    SSL_CTX *c = ctx.get();
    common_settings(c);
    Error err;
    if ((tls.verify && !tls.ca.empty() && !readable(at, "ca", tls.ca, &err)) ||
        (!tls.cert.empty() &&
         (!readable(at, "cert", tls.cert, &err) || !readable(at, "key", tls.key, &err))))
        return err;
    if (tls.verify) {
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
        if (!tls.ca.empty()) {
            if (SSL_CTX_load_verify_locations(c, tls.ca.c_str(), nullptr) != 1)
                return fail(at, "ca", tls.ca, openssl_errors());
        } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
            return fail(at, "ca", "(system store)", openssl_errors());
        }
    }
    if (!tls.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(c, tls.cert.c_str()) != 1)
            return fail(at, "cert", tls.cert, openssl_errors());
        if (SSL_CTX_use_PrivateKey_file(c, tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
            return fail(at, "key", tls.key, openssl_errors());
        if (SSL_CTX_check_private_key(c) != 1)
            return fail(at, "key", tls.key, "does not match tls.cert");
    }
    static const unsigned char kAlpn[] = "\x08http/1.1";
    static const unsigned char kAlpnH2[] = "\x02h2";
    if (h2)
        SSL_CTX_set_alpn_protos(c, kAlpnH2, sizeof kAlpnH2 - 1);
    else
        SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn - 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_upstream_session);
    return ctx;
}

}  // namespace torii
