/* auth: JSON Web Tokens (RFC 7519) in the compact JWS form (RFC 7515), verified with
 * OpenSSL: HS256 (HMAC SHA-256), RS256 (RSASSA-PKCS1-v1_5 SHA-256) and ES256 (ECDSA P-256
 * SHA-256, the JOSE r||s signature turned into DER for OpenSSL). This file: the keys and
 * algorithms of an instance, and a token's way up to a verified signature; jwt_claims.c
 * reads the JSON.
 *
 * Verification order: the three parts decode (canonical base64url only, so a token has one
 * spelling), the header is JSON with an "alg" this instance accepts (never "none"), the
 * signature matches (ES256: optionally low-S only), and only then the claims are read:
 * require_claims (default exp), exp, nbf (with clock_skew), iss, aud, and the consumer
 * claim (default "sub"). A token is never logged nor echoed back. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include "jwt.h"

#define MIN_HMAC_SECRET 32 /* RFC 7518 3.2: a key at least as long as the hash */
#define MIN_RSA_BITS 2048

/* ---- configuration ------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} alg_names[] = {{"HS256", ALG_HS256}, {"RS256", ALG_RS256}, {"ES256", ALG_ES256}};

static unsigned alg_bit(torii_str_t s) {
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; ++i)
        if (auth_str_eq(s, alg_names[i].name)) return alg_names[i].bit;
    return 0;
}

void jwt_destroy(jwt_conf_t *j) {
    if (!j) return;
    if (j->secret) OPENSSL_cleanse(j->secret, j->secret_len);
    free(j->secret);
    EVP_MAC_CTX_free(j->hmac);
    EVP_MAC_free(j->mac);
    EVP_MD_CTX_free(j->rsa_verify);
    EVP_MD_CTX_free(j->ec_verify);
    EVP_PKEY_free(j->rsa);
    EVP_PKEY_free(j->ec);
    jwt_claims_free(j);
    free(j);
}

/* One of `inline_key` (the text itself) or `file_key` (an absolute path), or neither.
 * Returns 1 with *out malloc'ed, 0 when neither is set, -1 after an error. */
static int inline_or_file(const torii_conf_t *conf, const char *inline_key, const char *file_key,
                          char **out, size_t *len, const char **which) {
    torii_str_t text, path;
    int a = host->conf_string(conf, inline_key, &text);
    int b = host->conf_string(conf, file_key, &path);
    if (a == TORII_EINVAL || b == TORII_EINVAL) return -1;
    if (a == TORII_OK && b == TORII_OK) {
        host->conf_error(conf, file_key, "set %s or %s, not both", inline_key, file_key);
        return -1;
    }
    if (a == TORII_OK) {
        *which = inline_key;
        *out = auth_strdup(text);
        *len = text.len;
        return *out ? 1 : -1;
    }
    if (b == TORII_OK) {
        *which = file_key;
        *out = auth_read_file(conf, file_key, path, len);
        return *out ? 1 : -1;
    }
    return 0;
}

static EVP_PKEY *read_public_key(const torii_conf_t *conf, const char *key, const char *pem,
                                 size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (!pk) {
        host->conf_error(conf, key, "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\" ...)");
        return NULL;
    }
    return pk;
}

static EVP_MD_CTX *verify_template(EVP_PKEY *pk) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestVerifyInit_ex(c, NULL, "SHA256", NULL, NULL, pk, NULL) == 1) return c;
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    return NULL;
}

static EVP_MAC_CTX *hmac_template(EVP_MAC *mac, const uint8_t *key, size_t len) {
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (c && EVP_MAC_init(c, key, len, params) == 1) return c;
    EVP_MAC_CTX_free(c);
    ERR_clear_error();
    return NULL;
}

/* secret / secret_file: the HS256 key. 0 after an error. */
static int read_secret(const torii_conf_t *conf, jwt_conf_t *j) {
    const char *which = NULL;
    char *text = NULL;
    size_t len = 0;
    int got = inline_or_file(conf, "secret", "secret_file", &text, &len, &which);
    if (got <= 0) return got == 0;
    if (strcmp(which, "secret_file") == 0) /* drop the trailing newline editors add */
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = 0;
    if (len < MIN_HMAC_SECRET) {
        OPENSSL_cleanse(text, len);
        free(text);
        host->conf_error(conf, which, "the HS256 secret must be at least %d bytes (it has %zu)",
                         MIN_HMAC_SECRET, len);
        return 0;
    }
    j->secret = (uint8_t *)text;
    j->secret_len = len;
    return 1;
}

/* public_key / public_key_file: RSA (RS256) or EC P-256 (ES256). 0 after an error. */
static int read_public(const torii_conf_t *conf, jwt_conf_t *j) {
    const char *which = NULL;
    char *text = NULL;
    size_t len = 0;
    int got = inline_or_file(conf, "public_key", "public_key_file", &text, &len, &which);
    if (got <= 0) return got == 0;
    EVP_PKEY *pk = read_public_key(conf, which, text, len);
    free(text);
    if (!pk) return 0;
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pk) < MIN_RSA_BITS) {
            host->conf_error(conf, which, "RSA keys under %d bits are refused (this one has %d)",
                             MIN_RSA_BITS, EVP_PKEY_get_bits(pk));
            EVP_PKEY_free(pk);
            return 0;
        }
        j->rsa = pk;
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen);
        if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) {
            host->conf_error(conf, which, "ES256 needs a P-256 (prime256v1) key, not %s",
                             group[0] ? group : "this curve");
            EVP_PKEY_free(pk);
            return 0;
        }
        j->ec = pk;
    } else {
        host->conf_error(conf, which, "only RSA (RS256) and EC P-256 (ES256) keys are supported");
        EVP_PKEY_free(pk);
        return 0;
    }
    return 1;
}

/* algorithms: by default whatever the configured keys can verify. 0 after an error. */
static int read_algorithms(const torii_conf_t *conf, jwt_conf_t *j) {
    unsigned have =
        (j->secret ? ALG_HS256 : 0) | (j->rsa ? ALG_RS256 : 0) | (j->ec ? ALG_ES256 : 0);
    if (!have) {
        host->conf_error(conf, NULL,
                         "type = \"jwt\" needs a key: secret/secret_file (HS256) or "
                         "public_key/public_key_file (RS256, ES256)");
        return 0;
    }
    size_t n = host->conf_array_size(conf, "algorithms");
    if (n == 0) j->algs = have;
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "algorithms", i, &s) != TORII_OK) return 0;
        unsigned bit = alg_bit(s);
        if (!bit) {
            host->conf_error(conf, "algorithms",
                             "[%zu] = \"%.*s\": supported are HS256, RS256 and ES256", i,
                             (int)s.len, s.ptr);
            return 0;
        }
        if (!(bit & have)) {
            host->conf_error(conf, "algorithms", "%.*s is listed but no %s is configured",
                             (int)s.len, s.ptr,
                             bit == ALG_HS256   ? "secret"
                             : bit == ALG_RS256 ? "RSA public_key"
                                                : "EC P-256 public_key");
            return 0;
        }
        j->algs |= bit;
    }
    return 1;
}

jwt_conf_t *jwt_create(const torii_conf_t *conf) {
    jwt_conf_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (!read_secret(conf, j) || !read_public(conf, j) || !read_algorithms(conf, j)) goto fail;
    if (j->secret && (!(j->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) ||
                      !(j->hmac = hmac_template(j->mac, j->secret, j->secret_len)))) {
        host->conf_error(conf, NULL, "OpenSSL cannot set up HMAC-SHA256");
        goto fail;
    }
    if ((j->rsa && !(j->rsa_verify = verify_template(j->rsa))) ||
        (j->ec && !(j->ec_verify = verify_template(j->ec)))) {
        host->conf_error(conf, NULL, "OpenSSL cannot set up a SHA-256 verification with this key");
        goto fail;
    }
    if (!jwt_claims_read(conf, j)) goto fail;
    if (host->conf_bool(conf, "es256_low_s", &j->es256_low_s) == TORII_EINVAL) goto fail;
    return j;

fail:
    jwt_destroy(j);
    return NULL;
}

/* ---- verification ------------------------------------------------------------------ */

static int verify_hs256(const jwt_conf_t *j, const char *msg, size_t msg_len, const uint8_t *sig,
                        size_t sig_len) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(j->hmac);
    int ok = c && EVP_MAC_update(c, (const unsigned char *)msg, msg_len) == 1 &&
             EVP_MAC_final(c, mac, &mac_len, sizeof mac) == 1;
    EVP_MAC_CTX_free(c);
    ERR_clear_error();
    return ok && sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

static int verify_pkey(const EVP_MD_CTX *tmpl, const char *msg, size_t msg_len, const uint8_t *sig,
                       size_t sig_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_MD_CTX_copy_ex(ctx, tmpl) == 1 &&
             EVP_DigestVerifyUpdate(ctx, msg, msg_len) == 1 &&
             EVP_DigestVerifyFinal(ctx, sig, sig_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static int verify_es256(const jwt_conf_t *j, const char *msg, size_t msg_len, const uint8_t *sig,
                        size_t sig_len) {
    /* P-256's group order n, halved: (r, s) and (r, n - s) both verify, so every token has
     * a twin with another signature. Most signers (OpenSSL, Go, Java) pick either at random,
     * hence es256_low_s is opt-in. Public values: memcmp's timing tells nothing. */
    static const uint8_t half_n[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00,
                                       0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                       0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B, 0xCF, 0x42,
                                       0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};
    if (sig_len != 64) return 0; /* JOSE: r and s, 32 bytes each, big-endian */
    if (j->es256_low_s && memcmp(sig + 32, half_n, 32) > 0) return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *der = NULL;
    int der_len = -1;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        der_len = i2d_ECDSA_SIG(es, &der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    int ok = der_len > 0 && verify_pkey(j->ec_verify, msg, msg_len, der, (size_t)der_len);
    OPENSSL_free(der);
    return ok;
}

/* Decodes one base64url part into request memory. */
static uint8_t *part(torii_request_t *r, const char *p, size_t n, size_t *out_len) {
    uint8_t *buf = host->req_alloc(r, n / 4 * 3 + 4);
    if (!buf || !auth_b64_decode(p, n, AUTH_B64_URL | AUTH_B64_STRICT, buf, out_len)) return NULL;
    return buf;
}

/* The header's algorithm as an ALG_* bit: 0 when the header is not a JSON object with a
 * string "alg", -1 when it has "crit" (RFC 7515 4.1.11: parameters we would have to
 * understand; we understand none). */
static int header_alg(const uint8_t *head, size_t len, unsigned *bit) {
    json_t *h = jwt_json_object(head, len);
    torii_str_t alg;
    int rc = h && jwt_json_string(json_object_get(h, "alg"), &alg);
    if (rc) {
        *bit = alg_bit(alg); /* before json_decref: alg points into h */
        if (json_object_get(h, "crit")) rc = -1;
    }
    json_decref(h);
    return rc;
}

int jwt_verify(const jwt_conf_t *j, torii_request_t *r, torii_str_t token, torii_str_t *consumer,
               const char **why) {
    *why = "the token is malformed";
    if (token.len == 0 || token.len > MAX_TOKEN) return 0;
    const char *t = token.ptr, *end = t + token.len;
    const char *dot1 = memchr(t, '.', token.len);
    if (!dot1) return 0;
    const char *dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) return 0; /* JWE has five */
    size_t hlen, plen, slen;
    uint8_t *head = part(r, t, (size_t)(dot1 - t), &hlen);
    uint8_t *payload = part(r, dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
    uint8_t *sig = part(r, dot2 + 1, (size_t)(end - dot2 - 1), &slen);
    if (!head || !payload || !sig) return 0;

    unsigned bit = 0;
    int h = header_alg(head, hlen, &bit);
    if (h == 0) return 0;
    *why = "the token's algorithm is not accepted";
    if (!bit || !(bit & j->algs)) return 0; /* "none" and anything unlisted */
    if (h < 0) {
        *why = "the token has critical header parameters this gateway does not understand";
        return 0;
    }

    *why = "the token's signature does not verify";
    const char *msg = t;
    size_t msg_len = (size_t)(dot2 - t);
    int ok = bit == ALG_HS256   ? verify_hs256(j, msg, msg_len, sig, slen)
             : bit == ALG_RS256 ? verify_pkey(j->rsa_verify, msg, msg_len, sig, slen)
                                : verify_es256(j, msg, msg_len, sig, slen);
    if (!ok) return 0;
    return jwt_check_claims(j, r, payload, plen, consumer, why);
}
