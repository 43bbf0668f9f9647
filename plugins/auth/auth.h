/* auth: pieces shared by the plugin's files (internal to plugins/auth, not an API).
 *
 *   auth.c  config, the access and upstream hooks, API keys and Basic users
 *   cidr.c  allow/deny address lists (IPv4 and IPv6)
 *   jwt.c   base64, a small JSON reader and JWT verification (HS256, RS256, ES256)
 */
#ifndef TORII_AUTH_INTERNAL_H
#define TORII_AUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <torii/plugin.h>

/* torii's function table, set by the entry point. */
extern const torii_host_t *auth_host;
#define host auth_host /* the name every plugin uses for the table */

/* A NUL-terminated copy of a config string (or NULL on allocation failure). */
char *auth_strdup(torii_str_t s);

/* Reads a whole file named by `path` (absolute) for the config key `key`; on failure
 * records an error against the key and returns NULL. *len gets the size; the buffer is
 * NUL-terminated and must be freed. */
char *auth_read_file(const torii_conf_t *conf, const char *key, torii_str_t path, size_t *len);

/* ---- cidr.c ------------------------------------------------------------------------- */

typedef struct {
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    unsigned prefix;  /* bits that must match */
    int v6;           /* 0: IPv4, 1: IPv6 */
} cidr_t;

typedef struct {
    cidr_t *items;
    size_t count;
} cidr_list_t;

/* Reads `key` (an array of "addr" or "addr/prefix" strings); errors name the key. */
int cidr_read_list(const torii_conf_t *conf, const char *key, cidr_list_t *out);
void cidr_free_list(cidr_list_t *list);
/* A client address such as "127.0.0.1", "::1" or "::ffff:10.0.0.1" (mapped addresses
 * become IPv4). Returns 0 when it is not an address. */
int cidr_parse_addr(torii_str_t text, cidr_t *out);
/* 1 when an entry of the list covers the address. */
int cidr_match(const cidr_list_t *list, const cidr_t *addr);

/* ---- jwt.c -------------------------------------------------------------------------- */

/* Base64 (RFC 4648 section 4), '=' padding optional, by default. Flags: */
#define AUTH_B64_URL 1    /* base64url (section 5) */
#define AUTH_B64_STRICT 2 /* only the canonical spelling: no '=', the unused low bits zero */
/* out needs (len / 4 + 1) * 3 bytes. Returns 0 on bad input. */
int auth_b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out, size_t *out_len);

typedef struct jwt_conf jwt_conf_t;

/* Reads the jwt keys of the table (algorithms, secret, secret_file, public_key,
 * public_key_file, issuer, audience, clock_skew, consumer_claim, require_claims,
 * es256_low_s). NULL after an error. */
jwt_conf_t *jwt_create(const torii_conf_t *conf);
void jwt_destroy(jwt_conf_t *j);

/* Verifies a compact JWS. On success returns 1 and sets *consumer (request memory). On
 * failure returns 0 and sets *why to a short, credential-free description. */
int jwt_verify(const jwt_conf_t *j, torii_request_t *r, torii_str_t token, torii_str_t *consumer,
               const char **why);

#endif
