/* auth: JSON Web Tokens (RFC 7519) in the compact JWS form (RFC 7515), verified with
 * OpenSSL: HS256 (HMAC SHA-256), RS256 (RSASSA-PKCS1-v1_5 SHA-256) and ES256 (ECDSA P-256
 * SHA-256, the JOSE r||s signature turned into DER for OpenSSL).
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
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

#define MAX_TOKEN (16 * 1024) /* longer tokens are refused before any decoding */
#define MAX_DEPTH 16          /* JSON nesting */
#define MAX_CLAIM 1024        /* decoded length of a claim we read (iss, aud, sub) */
#define MIN_HMAC_SECRET 32    /* RFC 7518 3.2: a key at least as long as the hash */
#define MIN_RSA_BITS 2048
#define MAX_REQUIRED 16   /* require_claims entries */
#define MAX_CLAIM_NAME 63 /* json_object_members compares names up to this length */

enum { ALG_HS256 = 1, ALG_RS256 = 2, ALG_ES256 = 4 };

struct jwt_conf {
    unsigned algs;   /* accepted algorithms (ALG_* bits) */
    uint8_t *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *rsa; /* RS256 */
    EVP_PKEY *ec;  /* ES256 (P-256) */
    /* Made once in create(), copied per request: OpenSSL 3 fetches algorithms and sets up
     * key contexts on every init, which costs more than a small verification itself. */
    EVP_MAC *mac;
    EVP_MAC_CTX *hmac;      /* HMAC-SHA256 keyed with the secret */
    EVP_MD_CTX *rsa_verify; /* SHA-256 verification contexts, initialised with the key */
    EVP_MD_CTX *ec_verify;
    char *issuer;                 /* NULL: not checked */
    char *audience;               /* NULL: not checked */
    int64_t skew_s;               /* clock_skew in seconds (rounded up) */
    char *consumer_claim;         /* default "sub" */
    char *required[MAX_REQUIRED]; /* require_claims, default { "exp" } */
    size_t nrequired;
    int es256_low_s; /* refuse ES256 signatures with s > n/2 */
};

/* ---- a small JSON reader ------------------------------------------------------------------
 * Enough for JOSE headers and claim sets: validates the whole document, finds top-level
 * members by name, decodes strings (escapes, \u with surrogate pairs) and numbers. */

typedef struct {
    const char *p, *end;
} json_t;

static void ws(json_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        ++j->p;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
        int h = hexval(p[i]);
        if (h < 0) return 0;
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return 1;
}

/* A string at j->p (the opening quote). Decoded into out (up to cap bytes; *len is the full
 * decoded length, which may exceed cap) when out is not NULL. */
static int json_string(json_t *j, char *out, size_t cap, size_t *len) {
    if (j->p >= j->end || *j->p != '"') return 0;
    ++j->p;
    size_t n = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        char enc[4];
        size_t k = 0;
        if (c == '"') {
            if (len) *len = n;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c != '\\') {
            enc[k++] = (char)c;
        } else {
            if (j->p >= j->end) return 0;
            char e = *j->p++;
            switch (e) {
                case '"':
                case '\\':
                case '/':
                    enc[k++] = e;
                    break;
                case 'b':
                    enc[k++] = '\b';
                    break;
                case 'f':
                    enc[k++] = '\f';
                    break;
                case 'n':
                    enc[k++] = '\n';
                    break;
                case 'r':
                    enc[k++] = '\r';
                    break;
                case 't':
                    enc[k++] = '\t';
                    break;
                case 'u': {
                    unsigned cp;
                    if (!hex4(j->p, j->end, &cp)) return 0;
                    j->p += 4;
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        unsigned lo;
                        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                            !hex4(j->p + 2, j->end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                            return 0;
                        j->p += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        return 0;
                    }
                    if (cp < 0x80) {
                        enc[k++] = (char)cp;
                    } else if (cp < 0x800) {
                        enc[k++] = (char)(0xC0 | (cp >> 6));
                        enc[k++] = (char)(0x80 | (cp & 0x3F));
                    } else if (cp < 0x10000) {
                        enc[k++] = (char)(0xE0 | (cp >> 12));
                        enc[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                        enc[k++] = (char)(0x80 | (cp & 0x3F));
                    } else {
                        enc[k++] = (char)(0xF0 | (cp >> 18));
                        enc[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                        enc[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                        enc[k++] = (char)(0x80 | (cp & 0x3F));
                    }
                    break;
                }
                default:
                    return 0;
            }
        }
        for (size_t i = 0; i < k; ++i, ++n)
            if (out && n < cap) out[n] = enc[i];
    }
    return 0;
}

static int json_number(json_t *j) {
    const char *p = j->p;
    if (p < j->end && *p == '-') ++p;
    if (p >= j->end) return 0;
    if (*p == '0') {
        ++p;
    } else if (*p >= '1' && *p <= '9') {
        while (p < j->end && *p >= '0' && *p <= '9')
            ++p;
    } else {
        return 0;
    }
    if (p < j->end && *p == '.') {
        ++p;
        if (p >= j->end || *p < '0' || *p > '9') return 0;
        while (p < j->end && *p >= '0' && *p <= '9')
            ++p;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < j->end && (*p == '+' || *p == '-')) ++p;
        if (p >= j->end || *p < '0' || *p > '9') return 0;
        while (p < j->end && *p >= '0' && *p <= '9')
            ++p;
    }
    j->p = p;
    return 1;
}

static int json_literal(json_t *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return 0;
    j->p += n;
    return 1;
}

static int json_value(json_t *j, int depth);

static int json_container(json_t *j, int depth, char close) {
    if (depth > MAX_DEPTH) return 0;
    ++j->p;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        ++j->p;
        return 1;
    }
    for (;;) {
        ws(j);
        if (close == '}') {
            if (!json_string(j, NULL, 0, NULL)) return 0;
            ws(j);
            if (j->p >= j->end || *j->p != ':') return 0;
            ++j->p;
            ws(j);
        }
        if (!json_value(j, depth + 1)) return 0;
        ws(j);
        if (j->p >= j->end) return 0;
        if (*j->p == ',') {
            ++j->p;
            continue;
        }
        if (*j->p == close) {
            ++j->p;
            return 1;
        }
        return 0;
    }
}

static int json_value(json_t *j, int depth) {
    if (j->p >= j->end) return 0;
    switch (*j->p) {
        case '{':
            return json_container(j, depth, '}');
        case '[':
            return json_container(j, depth, ']');
        case '"':
            return json_string(j, NULL, 0, NULL);
        case 't':
            return json_literal(j, "true");
        case 'f':
            return json_literal(j, "false");
        case 'n':
            return json_literal(j, "null");
        default:
            return json_number(j);
    }
}

/* A top-level member's value: where it starts (at its first byte) and what it is. */
typedef struct {
    const char *name;
    const char *at; /* NULL: absent */
    const char *end;
} member_t;

/* Validates `doc` as one JSON object and fills the wanted members (names compared after
 * unescaping). A name seen twice among the wanted ones makes the document invalid. */
static int json_object_members(const char *doc, size_t len, member_t *want, size_t nwant) {
    json_t j = {doc, doc + len};
    ws(&j);
    if (j.p >= j.end || *j.p != '{') return 0;
    ++j.p;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        ++j.p;
        ws(&j);
        return j.p == j.end;
    }
    for (;;) {
        ws(&j);
        char name[64];
        size_t name_len;
        if (!json_string(&j, name, sizeof name, &name_len)) return 0;
        ws(&j);
        if (j.p >= j.end || *j.p != ':') return 0;
        ++j.p;
        ws(&j);
        const char *at = j.p;
        if (!json_value(&j, 1)) return 0;
        if (name_len < sizeof name) {
            for (size_t i = 0; i < nwant; ++i) {
                if (strlen(want[i].name) == name_len && memcmp(want[i].name, name, name_len) == 0) {
                    if (want[i].at) return 0; /* duplicate */
                    want[i].at = at;
                    want[i].end = j.p;
                }
            }
        }
        ws(&j);
        if (j.p >= j.end) return 0;
        if (*j.p == ',') {
            ++j.p;
            continue;
        }
        if (*j.p != '}') return 0;
        ++j.p;
        ws(&j);
        return j.p == j.end;
    }
}

/* A member that must be a string of at most MAX_CLAIM bytes without control characters:
 * decoded into request memory. */
static int member_string(torii_request_t *r, const member_t *m, torii_str_t *out) {
    if (!m->at || *m->at != '"') return 0;
    json_t j = {m->at, m->end};
    size_t len;
    if (!json_string(&j, NULL, 0, &len) || len > MAX_CLAIM) return 0;
    char *buf = auth_host->req_alloc(r, len + 1);
    if (!buf) return 0;
    j.p = m->at;
    json_string(&j, buf, len, &len);
    for (size_t i = 0; i < len; ++i)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) return 0;
    buf[len] = 0;
    *out = (torii_str_t){buf, len};
    return 1;
}

static int member_number(const member_t *m, double *out) {
    char buf[64];
    if (!m->at) return 0;
    size_t n = (size_t)(m->end - m->at);
    if (n == 0 || n >= sizeof buf) return 0;
    if (!(*m->at == '-' || (*m->at >= '0' && *m->at <= '9'))) return 0;
    memcpy(buf, m->at, n);
    buf[n] = 0;
    char *e;
    *out = strtod(buf, &e);
    return *e == 0;
}

static int str_eq(torii_str_t a, const char *b) {
    return a.len == strlen(b) && memcmp(a.ptr, b, a.len) == 0;
}

/* aud: a string, or an array of strings, one of which must equal the configured audience. */
static int audience_matches(torii_request_t *r, const member_t *m, const char *want) {
    torii_str_t s;
    if (!m->at) return 0;
    if (*m->at == '"') return member_string(r, m, &s) && str_eq(s, want);
    if (*m->at != '[') return 0;
    json_t j = {m->at + 1, m->end};
    for (;;) {
        ws(&j);
        if (j.p >= j.end || *j.p == ']') return 0;
        member_t item = {"aud", j.p, NULL};
        json_t k = j;
        if (!json_value(&k, 1)) return 0;
        item.end = k.p;
        if (*item.at == '"' && member_string(r, &item, &s) && str_eq(s, want)) return 1;
        j.p = k.p;
        ws(&j);
        if (j.p < j.end && *j.p == ',') ++j.p;
    }
}

/* ---- configuration ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} alg_names[] = {{"HS256", ALG_HS256}, {"RS256", ALG_RS256}, {"ES256", ALG_ES256}};

static unsigned alg_bit(torii_str_t s) {
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; ++i)
        if (str_eq(s, alg_names[i].name)) return alg_names[i].bit;
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
    free(j->issuer);
    free(j->audience);
    free(j->consumer_claim);
    for (size_t i = 0; i < j->nrequired; ++i)
        free(j->required[i]);
    free(j);
}

static int has_key(const torii_conf_t *conf, const char *key) {
    torii_str_t k;
    for (size_t i = 0; auth_host->conf_key_at(conf, i, &k) == TORII_OK; ++i)
        if (str_eq(k, key)) return 1;
    return 0;
}

/* require_claims: names that end up in error_description (RFC 6750 3: no '"' or '\\'). By
 * default ["exp"]: a token without exp would be valid forever. [] requires nothing. */
static int read_required(const torii_conf_t *conf, jwt_conf_t *j) {
    if (!has_key(conf, "require_claims")) {
        j->nrequired = 1;
        return (j->required[0] = auth_strdup(TORII_STR("exp"))) != NULL;
    }
    size_t n = host->conf_array_size(conf, "require_claims");
    if (n > MAX_REQUIRED) {
        host->conf_error(conf, "require_claims", "at most %d claims", MAX_REQUIRED);
        return 0;
    }
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "require_claims", i, &s) != TORII_OK) return 0;
        int ok = s.len > 0 && s.len <= MAX_CLAIM_NAME;
        for (size_t k = 0; ok && k < s.len; ++k)
            ok = s.ptr[k] > 0x20 && s.ptr[k] < 0x7f && s.ptr[k] != '"' && s.ptr[k] != '\\';
        if (!ok) {
            host->conf_error(conf, "require_claims",
                             "[%zu]: claim names are 1 to %d printable bytes without spaces, "
                             "quotes or backslashes",
                             i, MAX_CLAIM_NAME);
            return 0;
        }
        if (!(j->required[j->nrequired] = auth_strdup(s))) return 0;
        j->nrequired++;
    }
    return 1;
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
        auth_host->conf_error(conf, key,
                              "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\" ...)");
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

jwt_conf_t *jwt_create(const torii_conf_t *conf) {
    jwt_conf_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    const char *which = NULL;
    char *text = NULL;
    size_t len = 0;

    /* secret / secret_file */
    int got = inline_or_file(conf, "secret", "secret_file", &text, &len, &which);
    if (got < 0) goto fail;
    if (got > 0) {
        if (strcmp(which, "secret_file") == 0) /* drop the trailing newline editors add */
            while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
                text[--len] = 0;
        if (len < MIN_HMAC_SECRET) {
            OPENSSL_cleanse(text, len);
            free(text);
            text = NULL;
            host->conf_error(conf, which, "the HS256 secret must be at least %d bytes (it has %zu)",
                             MIN_HMAC_SECRET, len);
            goto fail;
        }
        j->secret = (uint8_t *)text;
        j->secret_len = len;
        text = NULL;
    }

    /* public_key / public_key_file: RSA (RS256) or EC P-256 (ES256) */
    got = inline_or_file(conf, "public_key", "public_key_file", &text, &len, &which);
    if (got < 0) goto fail;
    if (got > 0) {
        EVP_PKEY *pk = read_public_key(conf, which, text, len);
        free(text);
        text = NULL;
        if (!pk) goto fail;
        if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
            if (EVP_PKEY_get_bits(pk) < MIN_RSA_BITS) {
                host->conf_error(conf, which,
                                 "RSA keys under %d bits are refused (this one has %d)",
                                 MIN_RSA_BITS, EVP_PKEY_get_bits(pk));
                EVP_PKEY_free(pk);
                goto fail;
            }
            j->rsa = pk;
        } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
            char group[64] = "";
            size_t glen = 0;
            EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &glen);
            if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) {
                host->conf_error(conf, which, "ES256 needs a P-256 (prime256v1) key, not %s",
                                 group[0] ? group : "this curve");
                EVP_PKEY_free(pk);
                goto fail;
            }
            j->ec = pk;
        } else {
            host->conf_error(conf, which,
                             "only RSA (RS256) and EC P-256 (ES256) keys are supported");
            EVP_PKEY_free(pk);
            goto fail;
        }
    }

    /* algorithms: by default whatever the configured keys can verify */
    unsigned have =
        (j->secret ? ALG_HS256 : 0) | (j->rsa ? ALG_RS256 : 0) | (j->ec ? ALG_ES256 : 0);
    if (!have) {
        host->conf_error(conf, NULL,
                         "type = \"jwt\" needs a key: secret/secret_file (HS256) or "
                         "public_key/public_key_file (RS256, ES256)");
        goto fail;
    }
    size_t n = host->conf_array_size(conf, "algorithms");
    if (n == 0) {
        j->algs = have;
    }
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "algorithms", i, &s) != TORII_OK) goto fail;
        unsigned bit = alg_bit(s);
        if (!bit) {
            host->conf_error(conf, "algorithms",
                             "[%zu] = \"%.*s\": supported are HS256, RS256 and ES256", i,
                             (int)s.len, s.ptr);
            goto fail;
        }
        if (!(bit & have)) {
            host->conf_error(conf, "algorithms", "%.*s is listed but no %s is configured",
                             (int)s.len, s.ptr,
                             bit == ALG_HS256   ? "secret"
                             : bit == ALG_RS256 ? "RSA public_key"
                                                : "EC P-256 public_key");
            goto fail;
        }
        j->algs |= bit;
    }

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

    torii_str_t s;
    int rc = host->conf_string(conf, "issuer", &s);
    if (rc == TORII_EINVAL) goto fail;
    if (rc == TORII_OK && !(j->issuer = auth_strdup(s))) goto fail;
    rc = host->conf_string(conf, "audience", &s);
    if (rc == TORII_EINVAL) goto fail;
    if (rc == TORII_OK && !(j->audience = auth_strdup(s))) goto fail;
    s = TORII_STR("sub");
    if (host->conf_string(conf, "consumer_claim", &s) == TORII_EINVAL) goto fail;
    if (s.len == 0 || s.len >= 64) {
        host->conf_error(conf, "consumer_claim", "must be 1 to 63 bytes");
        goto fail;
    }
    if (!(j->consumer_claim = auth_strdup(s))) goto fail;
    int64_t skew_ms = 0;
    if (host->conf_duration_ms(conf, "clock_skew", &skew_ms) == TORII_EINVAL) goto fail;
    if (skew_ms < 0) {
        host->conf_error(conf, "clock_skew", "must not be negative");
        goto fail;
    }
    j->skew_s = (skew_ms + 999) / 1000;
    if (!read_required(conf, j)) goto fail;
    if (host->conf_bool(conf, "es256_low_s", &j->es256_low_s) == TORII_EINVAL) goto fail;
    return j;

fail:
    free(text);
    jwt_destroy(j);
    return NULL;
}

/* ---- verification -------------------------------------------------------------------------- */

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
    uint8_t *buf = auth_host->req_alloc(r, n / 4 * 3 + 4);
    if (!buf || !auth_b64_decode(p, n, AUTH_B64_URL | AUTH_B64_STRICT, buf, out_len)) return NULL;
    return buf;
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

    member_t hm[] = {{"alg", NULL, NULL}, {"crit", NULL, NULL}};
    if (!json_object_members((const char *)head, hlen, hm, 2)) return 0;
    torii_str_t alg;
    if (!member_string(r, &hm[0], &alg)) return 0;
    *why = "the token's algorithm is not accepted";
    unsigned bit = alg_bit(alg);
    if (!bit || !(bit & j->algs)) return 0; /* "none" and anything unlisted */
    if (hm[1].at) {
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

    member_t cm[5 + MAX_REQUIRED] = {{"exp", NULL, NULL},
                                     {"nbf", NULL, NULL},
                                     {"iss", NULL, NULL},
                                     {"aud", NULL, NULL},
                                     {j->consumer_claim, NULL, NULL}};
    for (size_t i = 0; i < j->nrequired; ++i)
        cm[5 + i] = (member_t){j->required[i], NULL, NULL};
    *why = "the token's claims are not a JSON object";
    if (!json_object_members((const char *)payload, plen, cm, 5 + j->nrequired)) return 0;
    for (size_t i = 0; i < j->nrequired; ++i) {
        const member_t *m = &cm[5 + i];
        if (m->at && !(m->end - m->at == 4 && memcmp(m->at, "null", 4) == 0)) continue;
        size_t n = strlen(m->name) + 32;
        char *msg = auth_host->req_alloc(r, n);
        *why = "the token lacks a required claim";
        if (msg) {
            snprintf(msg, n, "the token has no %s claim", m->name);
            *why = msg;
        }
        return 0;
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    double v;
    if (cm[0].at) {
        *why = "the token's exp is not a number";
        if (!member_number(&cm[0], &v)) return 0;
        *why = "the token has expired";
        if (!(now < v + (double)j->skew_s)) return 0;
    }
    if (cm[1].at) {
        *why = "the token's nbf is not a number";
        if (!member_number(&cm[1], &v)) return 0;
        *why = "the token is not valid yet";
        if (!(now >= v - (double)j->skew_s)) return 0;
    }
    torii_str_t s;
    if (j->issuer) {
        *why = "the token's issuer is not accepted";
        if (!member_string(r, &cm[2], &s) || !str_eq(s, j->issuer)) return 0;
    }
    if (j->audience) {
        *why = "the token's audience is not accepted";
        if (!audience_matches(r, &cm[3], j->audience)) return 0;
    }
    *why = "the token has no usable consumer claim";
    if (!member_string(r, &cm[4], consumer) || consumer->len == 0) return 0;
    *why = NULL;
    return 1;
}
