#include "modules/tls/tls_variables.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "core/base/arena.h"

namespace torii {

bool is_tls_variable(std::string_view name) {
    return name == "ssl_protocol" || name == "ssl_cipher" || name == "ssl_server_name" ||
           name == "ssl_client_s_dn";
}

static std::string_view static_text(const char *s) {
    return s ? std::string_view(s) : std::string_view();
}

bool tls_variable(ssl_st *ssl, std::string_view name, Arena &arena, std::string_view *out) {
    if (!ssl) return false;
    if (name == "ssl_protocol") {
        *out = static_text(SSL_get_version(ssl));
    } else if (name == "ssl_cipher") {
        *out = static_text(SSL_get_cipher_name(ssl));
    } else if (name == "ssl_server_name") {
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (!sni) return false;
        size_t n = std::strlen(sni);
        char *p = arena.alloc(n);
        std::memcpy(p, sni, n);
        *out = {p, n};
    } else if (name == "ssl_client_s_dn") {
        X509 *cert = SSL_get0_peer_certificate(ssl);
        if (!cert) return false;
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio) return false;
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        char *data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        char *p = arena.alloc(static_cast<size_t>(n));
        std::memcpy(p, data, static_cast<size_t>(n));
        *out = {p, static_cast<size_t>(n)};
        BIO_free(bio);
    } else {
        return false;
    }
    return !out->empty();
}

}  // namespace torii
