/* auth: the JWT instance shared by jwt_verify.c (keys, algorithms, signatures) and
 * jwt_claims.c (the JSON of the header and the claims). Internal to plugins/auth. */
#ifndef TORII_AUTH_JWT_H
#define TORII_AUTH_JWT_H

#include <jansson.h>
#include <openssl/evp.h>

#include "auth.h"

#define MAX_TOKEN (16 * 1024) /* longer tokens are refused before any decoding */
#define MAX_REQUIRED 16       /* require_claims entries */

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

/* ---- jwt_claims.c ------------------------------------------------------------------- */

/* issuer, audience, clock_skew, consumer_claim, require_claims. 0 after an error. */
int jwt_claims_read(const torii_conf_t *conf, jwt_conf_t *j);
void jwt_claims_free(jwt_conf_t *j);

/* A decoded token part as one JSON object (jansson), or NULL when it is not one or breaks
 * a limit (nesting, a repeated name). json_decref() it. */
json_t *jwt_json_object(const uint8_t *doc, size_t len);

/* A string member without control characters, of at most the claim length cap: 1 with
 * *out pointing into the JSON value (valid while the document lives), else 0. */
int jwt_json_string(const json_t *v, torii_str_t *out);

/* The claims of a token whose signature verified: required claims, exp, nbf, iss, aud, then
 * the consumer claim into *consumer (request memory). 0 and *why on failure. */
int jwt_check_claims(const jwt_conf_t *j, torii_request_t *r, const uint8_t *payload, size_t len,
                     torii_str_t *consumer, const char **why);

#endif
