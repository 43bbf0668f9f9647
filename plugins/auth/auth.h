/* auth: pieces shared by the plugin's files (internal to plugins/auth, not an API).
 *
 *   auth.c        the descriptor and the hooks: address check, then one credential check
 *   config.c      create/destroy, the typed-key checks, where credentials are read from
 *   credential.c  finding the key or bearer token in the request (header, query argument)
 *   key.c         API keys: the table of key tags, the lookup
 *   basic.c       HTTP Basic: users (inline or a users file), salted hashes, the header
 *   base64.c      base64 and base64url decoding (OpenSSL), strict when asked
 *   cidr.c        allow/deny address lists (IPv4 and IPv6)
 *   jwt_verify.c  JWT keys, algorithms and signatures (jwt.h)
 *   jwt_claims.c  JWT header and claims (jwt.h)
 */
#ifndef TORII_AUTH_INTERNAL_H
#define TORII_AUTH_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <torii/plugin.h>

/* torii's function table, set by the entry point. */
extern const torii_host_t *auth_host;
#define host auth_host /* the name every plugin uses for the table */

#define AUTH_MAX_NAME 255 /* consumer and user names */

typedef enum { TYPE_NONE, TYPE_KEY, TYPE_BASIC, TYPE_JWT } auth_type_t;

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

/* ---- the instance ------------------------------------------------------------------- */

typedef struct jwt_conf jwt_conf_t;

typedef struct {
    uint64_t tag[2]; /* the key's keyed hash (key.c): looked up by tag, never by the key */
    char *consumer;
} key_entry_t;

typedef struct {
    char *user;
    const EVP_MD *md;
    size_t md_len;
    uint8_t *stored; /* digest(password || salt) || salt */
    size_t stored_len;
} user_entry_t;

typedef struct {
    auth_type_t type;
    cidr_list_t allow, deny;
    int hide_credentials;
    char *header;    /* NULL: no header source */
    char *query;     /* NULL: no query source */
    char *challenge; /* WWW-Authenticate without an error */
    char *realm;
    key_entry_t *keys;
    size_t nkeys;
    unsigned char key_secret[2][16]; /* the SipHash keys of the tags, random per instance */
    user_entry_t *users;
    size_t nusers;
    user_entry_t dummy;      /* verified against when the user is unknown: same cost */
    EVP_MD *sha256, *sha512; /* fetched once: OpenSSL 3's implicit fetches are slow */
    jwt_conf_t *jwt;
} auth_t;

/* ---- small helpers (static inline: used on the request path of several files) -------- */

static inline int auth_str_eq(torii_str_t a, const char *b) {
    return a.len == strlen(b) && memcmp(a.ptr, b, a.len) == 0;
}

static inline int auth_ieq_prefix(torii_str_t s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.len >= n && strncasecmp(s.ptr, prefix, n) == 0;
}

/* Without the spaces and tabs HTTP allows around a field value (and a users file line). */
static inline torii_str_t auth_trim(torii_str_t s) {
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        ++s.ptr, --s.len;
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        --s.len;
    return s;
}

/* 1 to AUTH_MAX_NAME bytes without control characters: a consumer or user name. */
static inline int auth_printable_name(torii_str_t s) {
    if (s.len == 0 || s.len > AUTH_MAX_NAME) return 0;
    for (size_t i = 0; i < s.len; ++i)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f) return 0;
    return 1;
}

/* ---- config.c ----------------------------------------------------------------------- */

/* A NUL-terminated copy of a config string (or NULL on allocation failure). */
char *auth_strdup(torii_str_t s);

/* Reads a whole file named by `path` (absolute) for the config key `key`; on failure
 * records an error against the key and returns NULL. *len gets the size; the buffer is
 * NUL-terminated and must be freed. */
char *auth_read_file(const torii_conf_t *conf, const char *key, torii_str_t path, size_t *len);

void *auth_create(const torii_host_t *h, const torii_conf_t *conf);
void auth_destroy(void *instance);

/* ---- auth.c ------------------------------------------------------------------------- */

/* The 401 with the instance's challenge (and, for bearer tokens, RFC 6750's error and
 * description); `why` goes to the log only. */
torii_action_t auth_unauthorized(const auth_t *a, torii_request_t *r, const char *why,
                                 const char *bearer_error);

/* ---- credential.c ------------------------------------------------------------------- */

/* A request header that must appear at most once: 1 (found), 0 (absent), -1 (repeated). */
int auth_single_header(torii_request_t *r, const char *name, torii_str_t *out);
/* The key or bearer token of the request: 1 (found), 0 (absent), -1 (given more than once),
 * -2 (it holds a NUL byte). */
int auth_credential(const auth_t *a, torii_request_t *r, torii_str_t *out);
/* hide_credentials for the query source: removes the argument the credential came in. */
void auth_hide_query_arg(const auth_t *a, torii_request_t *r);

/* ---- key.c -------------------------------------------------------------------------- */

int auth_read_keys(const torii_conf_t *conf, auth_t *a);
void auth_free_keys(auth_t *a);
torii_action_t auth_check_key(const auth_t *a, torii_request_t *r);

/* ---- basic.c ------------------------------------------------------------------------ */

int auth_read_users(const torii_conf_t *conf, auth_t *a);
void auth_free_users(auth_t *a);
torii_action_t auth_check_basic(const auth_t *a, torii_request_t *r);

/* ---- base64.c ----------------------------------------------------------------------- */

/* Base64 (RFC 4648 section 4), '=' padding optional, by default. Flags: */
#define AUTH_B64_URL 1    /* base64url (section 5) */
#define AUTH_B64_STRICT 2 /* only the canonical spelling: no '=', the unused low bits zero */
/* out needs (len / 4 + 1) * 3 bytes. Returns 0 on bad input. */
int auth_b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out, size_t *out_len);

/* ---- jwt_verify.c ------------------------------------------------------------------- */

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
