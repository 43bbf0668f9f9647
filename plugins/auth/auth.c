/* auth: who may use a location or a tcp server. In the access phase, in this order:
 *
 *   1. allow/deny CIDR lists (IPv4 and IPv6) on $remote_addr: 403 when a deny entry
 *      matches, or when allow is set and no allow entry matches (deny wins);
 *   2. one credential check by `type`, with 401 and a WWW-Authenticate challenge on failure:
 *        "key"    an API key from a header (X-API-Key by default) or a query argument,
 *                 each key naming its consumer;
 *        "basic"  HTTP Basic against users with salted SHA-2 hashes ({SSHA256}/{SSHA512}),
 *                 inline or from a users file;
 *        "jwt"    a bearer JSON Web Token (HS256, RS256, ES256) with exp/nbf/iss/aud
 *                 checks (jwt.c).
 *
 * The authenticated consumer's name becomes $consumer (ratelimit keys, header_rewrite
 * values). With hide_credentials = true the credential header (or query argument) is not
 * sent upstream.
 * Credentials (keys, passwords, tokens) are never logged nor echoed; files are read in
 * create(), never on the request path. Nothing is shared between workers: the instance is
 * read-only after create(), so every worker decides alike.
 *
 *   [server.location.plugins.auth]
 *   type = "key"
 *   keys = [ { key = "k-123", consumer = "alice" } ]
 *   header = "X-API-Key"            # default; "" for none
 *   query = "apikey"                # optional
 *   allow = ["10.0.0.0/8", "::1"]
 *   deny = ["10.9.0.0/16"]
 *   realm = "torii"
 *   hide_credentials = false
 *
 * On a tcp server ([server.plugins.auth], ABI 1.2) the connect hook applies the allow/deny
 * lists to each connection, before any byte is read; `type` is refused there (a byte stream
 * carries no credential torii could read).
 *
 * docs/plugins/auth.md lists every key. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "auth.h"

#define MAX_FILE (64u << 20) /* users/key files */
#define MAX_NAME 255         /* consumer and user names */
#define MAX_BASIC 4096       /* base64 of user:password */
#define MIN_SALT 4

const torii_host_t *auth_host;

typedef enum { TYPE_NONE, TYPE_KEY, TYPE_BASIC, TYPE_JWT } auth_type_t;

typedef struct {
    uint8_t digest[32]; /* SHA-256 of the key: looked up by digest, never by the key */
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
    user_entry_t *users;
    size_t nusers;
    user_entry_t dummy;      /* verified against when the user is unknown: same cost */
    EVP_MD *sha256, *sha512; /* fetched once: OpenSSL 3's implicit fetches are slow */
    jwt_conf_t *jwt;
} auth_t;

/* ---- helpers ------------------------------------------------------------------------------ */

char *auth_strdup(torii_str_t s) {
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    return p;
}

char *auth_read_file(const torii_conf_t *conf, const char *key, torii_str_t path, size_t *len) {
    char *name = auth_strdup(path);
    if (!name) return NULL;
    if (name[0] != '/') {
        host->conf_error(conf, key,
                         "\"%s\": use an absolute path (plugins cannot see the config's folder)",
                         name);
        free(name);
        return NULL;
    }
    FILE *f = fopen(name, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > MAX_FILE) {
        host->conf_error(conf, key, "cannot read \"%s\": %s", name,
                         !f ? strerror(errno) : "not a regular file of at most 64 MiB");
        if (f) fclose(f);
        free(name);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        host->conf_error(conf, key, "cannot read \"%s\"", name);
        free(buf);
        fclose(f);
        free(name);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    free(name);
    *len = n;
    return buf;
}

static int printable_name(torii_str_t s) {
    if (s.len == 0 || s.len > MAX_NAME) return 0;
    for (size_t i = 0; i < s.len; ++i)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f) return 0;
    return 1;
}

static int ieq_prefix(torii_str_t s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.len >= n && strncasecmp(s.ptr, prefix, n) == 0;
}

static torii_str_t trim(torii_str_t s) {
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        ++s.ptr, --s.len;
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        --s.len;
    return s;
}

/* ---- API keys ------------------------------------------------------------------------------- */

static void sha256(const auth_t *a, const void *p, size_t n, uint8_t out[32]) {
    unsigned len = 32;
    if (EVP_Digest(p, n, out, &len, a->sha256, NULL) != 1) memset(out, 0, 32);
}

static int by_digest(const void *a, const void *b) {
    return memcmp(((const key_entry_t *)a)->digest, ((const key_entry_t *)b)->digest, 32);
}

static int read_keys(const torii_conf_t *conf, auth_t *a) {
    static const char *const fields[] = {"key", "consumer", NULL};
    size_t n = host->conf_array_size(conf, "keys");
    if (n == 0)
        return host->conf_error(
            conf, "keys" /* or the table */,
            "type = \"key\" needs keys = [ { key = \"...\", consumer = \"...\" } ]");
    a->keys = calloc(n, sizeof(key_entry_t));
    if (!a->keys) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        const torii_conf_t *t = host->conf_array_table(conf, "keys", i);
        if (!t || host->conf_allow_only(t, fields) != TORII_OK) return TORII_EINVAL;
        torii_str_t key, consumer;
        int rk = host->conf_string(t, "key", &key),
            rc = host->conf_string(t, "consumer", &consumer);
        if (rk == TORII_EINVAL || rc == TORII_EINVAL) return TORII_EINVAL;
        if (rk != TORII_OK || key.len == 0)
            return host->conf_error(t, NULL, "keys[%zu] needs a non-empty key", i);
        if (memchr(key.ptr, 0, key.len)) /* refused in requests, so it could never match */
            return host->conf_error(t, NULL, "keys[%zu]: a key cannot hold a NUL byte", i);
        if (rc != TORII_OK || !printable_name(consumer))
            return host->conf_error(
                t, NULL, "keys[%zu] needs a consumer name of 1 to %d printable bytes", i, MAX_NAME);
        key_entry_t *e = &a->keys[a->nkeys];
        sha256(a, key.ptr, key.len, e->digest);
        for (size_t k = 0; k < a->nkeys; ++k)
            if (memcmp(a->keys[k].digest, e->digest, 32) == 0)
                return host->conf_error(t, NULL, "keys[%zu] repeats the key of keys[%zu]", i, k);
        if (!(e->consumer = auth_strdup(consumer))) return TORII_EINVAL;
        a->nkeys++;
    }
    qsort(a->keys, a->nkeys, sizeof(key_entry_t), by_digest);
    return TORII_OK;
}

static const key_entry_t *find_key(const auth_t *a, torii_str_t key) {
    key_entry_t probe;
    sha256(a, key.ptr, key.len, probe.digest);
    const key_entry_t *e = bsearch(&probe, a->keys, a->nkeys, sizeof(key_entry_t), by_digest);
    /* bsearch's memcmp only ever sees digests; the last compare is constant-time anyway */
    if (e && CRYPTO_memcmp(e->digest, probe.digest, 32) == 0) return e;
    return NULL;
}

/* ---- Basic users ------------------------------------------------------------------------------
 */

static const char *parse_hash(const auth_t *a, torii_str_t text, user_entry_t *u) {
    static const struct {
        const char *scheme;
        const char *md;
        size_t len;
    } schemes[] = {{"{SSHA256}", "SHA256", 32}, {"{SSHA512}", "SHA512", 64}};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; ++i) {
        size_t n = strlen(schemes[i].scheme);
        if (text.len < n || memcmp(text.ptr, schemes[i].scheme, n) != 0) continue;
        torii_str_t b64 = {text.ptr + n, text.len - n};
        uint8_t *buf = malloc(b64.len / 4 * 3 + 4);
        size_t len = 0;
        if (!buf) return "out of memory";
        if (!auth_b64_decode(b64.ptr, b64.len, 0, buf, &len)) {
            free(buf);
            return "the hash is not valid base64";
        }
        if (len < schemes[i].len + MIN_SALT) {
            free(buf);
            return "the hash is too short: digest then a salt of at least 4 bytes";
        }
        u->md = schemes[i].len == 32 ? a->sha256 : a->sha512;
        u->md_len = schemes[i].len;
        u->stored = buf;
        u->stored_len = len;
        return NULL;
    }
    return "unknown hash scheme: use {SSHA256} or {SSHA512} (see docs/plugins/auth.md)";
}

static const char *check_user_name(torii_str_t user) {
    if (!printable_name(user)) return "user names are 1 to 255 printable bytes";
    if (memchr(user.ptr, ':', user.len)) return "user names cannot contain ':'";
    return NULL;
}

static int add_user(auth_t *a, size_t *cap, torii_str_t user, torii_str_t hash, const char **why) {
    if ((*why = check_user_name(user))) return 0;
    for (size_t i = 0; i < a->nusers; ++i)
        if (strlen(a->users[i].user) == user.len &&
            memcmp(a->users[i].user, user.ptr, user.len) == 0) {
            *why = "this user is listed twice";
            return 0;
        }
    if (a->nusers == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        user_entry_t *p = realloc(a->users, ncap * sizeof(user_entry_t));
        if (!p) {
            *why = "out of memory";
            return 0;
        }
        a->users = p;
        *cap = ncap;
    }
    user_entry_t *u = &a->users[a->nusers];
    memset(u, 0, sizeof *u);
    if ((*why = parse_hash(a, hash, u))) return 0;
    if (!(u->user = auth_strdup(user))) {
        free(u->stored);
        *why = "out of memory";
        return 0;
    }
    a->nusers++;
    return 1;
}

static int by_user(const void *a, const void *b) {
    return strcmp(((const user_entry_t *)a)->user, ((const user_entry_t *)b)->user);
}

static int read_users(const torii_conf_t *conf, auth_t *a) {
    static const char *const fields[] = {"user", "hash", NULL};
    size_t cap = 0;
    const char *why;
    size_t n = host->conf_array_size(conf, "users");
    for (size_t i = 0; i < n; ++i) {
        const torii_conf_t *t = host->conf_array_table(conf, "users", i);
        if (!t || host->conf_allow_only(t, fields) != TORII_OK) return TORII_EINVAL;
        torii_str_t user, hash;
        int ru = host->conf_string(t, "user", &user), rh = host->conf_string(t, "hash", &hash);
        if (ru == TORII_EINVAL || rh == TORII_EINVAL) return TORII_EINVAL;
        if (ru != TORII_OK || rh != TORII_OK)
            return host->conf_error(t, NULL, "users[%zu] needs user and hash", i);
        if (!add_user(a, &cap, user, hash, &why))
            return host->conf_error(t, NULL, "users[%zu]: %s", i, why);
    }
    torii_str_t path;
    int rc = host->conf_string(conf, "users_file", &path);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK) {
        size_t len;
        char *text = auth_read_file(conf, "users_file", path, &len);
        if (!text) return TORII_EINVAL;
        /* "user:{SSHA256}base64" a line; blank lines and '#' comments are skipped */
        size_t line = 0;
        char *p = text, *end = text + len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            char *eol = nl ? nl : end;
            ++line;
            torii_str_t l = trim((torii_str_t){p, (size_t)(eol - p)});
            if (l.len && l.ptr[l.len - 1] == '\r') l = trim((torii_str_t){l.ptr, l.len - 1});
            p = nl ? nl + 1 : end;
            if (l.len == 0 || l.ptr[0] == '#') continue;
            const char *colon = memchr(l.ptr, ':', l.len);
            if (!colon) {
                host->conf_error(conf, "users_file", "%.*s:%zu: expected user:{SSHA256}...",
                                 (int)path.len, path.ptr, line);
                free(text);
                return TORII_EINVAL;
            }
            torii_str_t user = {l.ptr, (size_t)(colon - l.ptr)};
            torii_str_t hash = {colon + 1, (size_t)(l.ptr + l.len - colon - 1)};
            if (!add_user(a, &cap, user, hash, &why)) {
                host->conf_error(conf, "users_file", "%.*s:%zu: %s", (int)path.len, path.ptr, line,
                                 why);
                free(text);
                return TORII_EINVAL;
            }
        }
        free(text);
    }
    if (a->nusers == 0)
        return host->conf_error(conf, rc == TORII_OK ? "users_file" : NULL,
                                "type = \"basic\" needs users = [ { user = \"...\", hash = "
                                "\"{SSHA256}...\" } ] or a users_file with at least one user");
    qsort(a->users, a->nusers, sizeof(user_entry_t), by_user);

    /* the stand-in for unknown users: a random salted hash nobody knows the password of */
    a->dummy.md = a->sha256;
    a->dummy.md_len = 32;
    a->dummy.stored_len = 48;
    a->dummy.stored = malloc(48);
    if (!a->dummy.stored || RAND_bytes(a->dummy.stored, 48) != 1) return TORII_EINVAL;
    return TORII_OK;
}

static int password_ok(const user_entry_t *u, torii_str_t password) {
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, u->md, NULL) == 1 &&
             EVP_DigestUpdate(ctx, password.ptr, password.len) == 1 &&
             EVP_DigestUpdate(ctx, u->stored + u->md_len, u->stored_len - u->md_len) == 1 &&
             EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len == u->md_len;
    EVP_MD_CTX_free(ctx);
    ok = ok && CRYPTO_memcmp(digest, u->stored, u->md_len) == 0;
    OPENSSL_cleanse(digest, sizeof digest);
    return ok;
}

/* The same order as by_user's strcmp (bytes as unsigned char, a prefix first), but with
 * the name's length: a request's name is not a C string. */
static int name_vs_user(const void *key, const void *elem) {
    const torii_str_t *name = key;
    const char *user = ((const user_entry_t *)elem)->user;
    size_t len = strlen(user), n = name->len < len ? name->len : len;
    int c = memcmp(name->ptr, user, n);
    if (c) return c;
    return name->len < len ? -1 : name->len > len;
}

static const user_entry_t *find_user(const auth_t *a, torii_str_t name) {
    return bsearch(&name, a->users, a->nusers, sizeof(user_entry_t), name_vs_user);
}

/* ---- config ---------------------------------------------------------------------------------- */

enum { FOR_KEY = 1, FOR_BASIC = 2, FOR_JWT = 4 };

static const struct {
    const char *key;
    unsigned types;
} typed_keys[] = {
    {"keys", FOR_KEY},
    {"header", FOR_KEY | FOR_JWT},
    {"query", FOR_KEY | FOR_JWT},
    {"users", FOR_BASIC},
    {"users_file", FOR_BASIC},
    {"algorithms", FOR_JWT},
    {"secret", FOR_JWT},
    {"secret_file", FOR_JWT},
    {"public_key", FOR_JWT},
    {"public_key_file", FOR_JWT},
    {"issuer", FOR_JWT},
    {"audience", FOR_JWT},
    {"clock_skew", FOR_JWT},
    {"consumer_claim", FOR_JWT},
    {"require_claims", FOR_JWT},
    {"es256_low_s", FOR_JWT},
    {"hide_credentials", FOR_KEY | FOR_BASIC | FOR_JWT},
    {"realm", FOR_KEY | FOR_BASIC | FOR_JWT},
};

static const char *type_names(unsigned types) {
    switch (types) {
        case FOR_KEY:
            return "type = \"key\"";
        case FOR_BASIC:
            return "type = \"basic\"";
        case FOR_JWT:
            return "type = \"jwt\"";
        case FOR_KEY | FOR_JWT:
            return "type = \"key\" or \"jwt\"";
        default:
            return "a type (\"key\", \"basic\" or \"jwt\")";
    }
}

/* Every key set must belong to the chosen type. */
static int check_typed_keys(const torii_conf_t *conf, auth_type_t type) {
    unsigned mine = type == TYPE_KEY     ? FOR_KEY
                    : type == TYPE_BASIC ? FOR_BASIC
                    : type == TYPE_JWT   ? FOR_JWT
                                         : 0;
    torii_str_t k;
    for (size_t i = 0; host->conf_key_at(conf, i, &k) == TORII_OK; ++i) {
        for (size_t j = 0; j < sizeof typed_keys / sizeof typed_keys[0]; ++j) {
            if (strlen(typed_keys[j].key) != k.len || memcmp(typed_keys[j].key, k.ptr, k.len) != 0)
                continue;
            if (!(typed_keys[j].types & mine))
                return host->conf_error(conf, typed_keys[j].key, "applies to %s only",
                                        type_names(typed_keys[j].types));
        }
    }
    return TORII_OK;
}

/* header/query: where a key or a token is read from. */
static int read_sources(const torii_conf_t *conf, auth_t *a, const char *default_header) {
    torii_str_t h = {default_header, strlen(default_header)}, q;
    if (host->conf_string(conf, "header", &h) == TORII_EINVAL) return TORII_EINVAL;
    for (size_t i = 0; i < h.len; ++i) {
        unsigned char c = (unsigned char)h.ptr[i];
        if (c <= ' ' || c == ':' || c >= 0x7f)
            return host->conf_error(conf, "header", "not a header name");
    }
    if (h.len && !(a->header = auth_strdup(h))) return TORII_EINVAL;
    int rc = host->conf_string(conf, "query", &q);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK) {
        if (q.len == 0 || memchr(q.ptr, '&', q.len) || memchr(q.ptr, '=', q.len))
            return host->conf_error(conf, "query", "not a query argument name");
        for (size_t i = 0; i < q.len; ++i)
            if ((unsigned char)q.ptr[i] < 0x20 || q.ptr[i] == 0x7f)
                return host->conf_error(conf, "query", "not a query argument name");
        if (!(a->query = auth_strdup(q))) return TORII_EINVAL;
        /* The credential is in the request line: the access log must not keep it. */
        if (!TORII_HOST_HAS(host, log_mask_query_arg))
            host->log(TORII_LOG_WARN,
                      "auth: this torii (plugin ABI before 1.1) cannot mask "
                      "query argument \"%s\" in its access log",
                      a->query);
        else if (host->log_mask_query_arg(q) != TORII_OK)
            return host->conf_error(conf, "query", "at most 64 bytes (the access log masks it)");
    }
    if (!a->header && !a->query)
        return host->conf_error(conf, "header", "with header = \"\", set query");
    return TORII_OK;
}

static void auth_destroy(void *instance) {
    auth_t *a = instance;
    if (!a) return;
    cidr_free_list(&a->allow);
    cidr_free_list(&a->deny);
    free(a->header);
    free(a->query);
    free(a->challenge);
    free(a->realm);
    for (size_t i = 0; i < a->nkeys; ++i)
        free(a->keys[i].consumer);
    if (a->keys) OPENSSL_cleanse(a->keys, a->nkeys * sizeof(key_entry_t));
    free(a->keys);
    for (size_t i = 0; i < a->nusers; ++i) {
        free(a->users[i].user);
        free(a->users[i].stored);
    }
    free(a->users);
    free(a->dummy.stored);
    EVP_MD_free(a->sha256);
    EVP_MD_free(a->sha512);
    jwt_destroy(a->jwt);
    free(a);
}

static void *auth_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {
        "type",        "allow",    "deny",        "realm",          "hide_credentials",
        "keys",        "header",   "query",       "users",          "users_file",
        "algorithms",  "secret",   "secret_file", "public_key",     "public_key_file",
        "issuer",      "audience", "clock_skew",  "consumer_claim", "require_claims",
        "es256_low_s", NULL};
    (void)h;
    if (host->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    auth_t *a = calloc(1, sizeof(auth_t));
    if (!a) return NULL;
    if (!(a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) ||
        !(a->sha512 = EVP_MD_fetch(NULL, "SHA512", NULL))) {
        host->conf_error(conf, NULL, "OpenSSL has no SHA-256/SHA-512");
        goto fail;
    }

    torii_str_t type;
    int rc = host->conf_string(conf, "type", &type);
    if (rc == TORII_EINVAL) goto fail;
    if (rc == TORII_OK) {
        if (type.len == 3 && memcmp(type.ptr, "key", 3) == 0)
            a->type = TYPE_KEY;
        else if (type.len == 5 && memcmp(type.ptr, "basic", 5) == 0)
            a->type = TYPE_BASIC;
        else if (type.len == 3 && memcmp(type.ptr, "jwt", 3) == 0)
            a->type = TYPE_JWT;
        else {
            host->conf_error(conf, "type", "\"%.*s\" is not key, basic or jwt", (int)type.len,
                             type.ptr);
            goto fail;
        }
    }
    if (a->type != TYPE_NONE && TORII_HOST_HAS(host, conf_is_tcp_server) &&
        host->conf_is_tcp_server(conf)) {
        host->conf_error(conf, "type",
                         "a tcp server has no request to carry a credential: only allow and "
                         "deny apply there");
        goto fail;
    }
    if (check_typed_keys(conf, a->type) != TORII_OK) goto fail;
    if (cidr_read_list(conf, "allow", &a->allow) != TORII_OK ||
        cidr_read_list(conf, "deny", &a->deny) != TORII_OK)
        goto fail;
    if (a->type == TYPE_NONE && !a->allow.count && !a->deny.count) {
        host->conf_error(conf, NULL, "set type (key, basic, jwt) and/or allow/deny lists");
        goto fail;
    }
    if (a->type == TYPE_NONE) return a;

    torii_str_t realm = TORII_STR("torii");
    if (host->conf_string(conf, "realm", &realm) == TORII_EINVAL) goto fail;
    for (size_t i = 0; i < realm.len; ++i) {
        unsigned char c = (unsigned char)realm.ptr[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            host->conf_error(conf, "realm",
                             "cannot hold quotes, backslashes or control characters");
            goto fail;
        }
    }
    if (host->conf_bool(conf, "hide_credentials", &a->hide_credentials) == TORII_EINVAL) goto fail;
    if (!(a->realm = auth_strdup(realm))) goto fail;

    const char *scheme = "Key";
    if (a->type == TYPE_KEY) {
        if (read_sources(conf, a, "X-API-Key") != TORII_OK || read_keys(conf, a) != TORII_OK)
            goto fail;
    } else if (a->type == TYPE_BASIC) {
        scheme = "Basic";
        if (!(a->header = strdup("Authorization")) || read_users(conf, a) != TORII_OK) goto fail;
    } else {
        scheme = "Bearer";
        if (read_sources(conf, a, "Authorization") != TORII_OK || !(a->jwt = jwt_create(conf)))
            goto fail;
    }
    size_t n = strlen(scheme) + realm.len + 64;
    if (!(a->challenge = malloc(n))) goto fail;
    snprintf(a->challenge, n,
             a->type == TYPE_BASIC ? "%s realm=\"%s\", charset=\"UTF-8\"" : "%s realm=\"%s\"",
             scheme, a->realm);
    return a;

fail:
    auth_destroy(a);
    return NULL;
}

/* ---- per request -------------------------------------------------------------------------- */

static void log_refusal(torii_request_t *r, int status, const char *why) {
    torii_str_t addr = TORII_STR("-"), loc = host->req_location(r);
    host->var(r, TORII_STR("remote_addr"), &addr);
    if (loc.len == 0) { /* a tcp server's connection: no location, name the server */
        torii_str_t server = host->req_server(r);
        host->log(TORII_LOG_INFO, "auth: connection from %.*s to tcp server %.*s refused: %s",
                  (int)addr.len, addr.ptr, (int)server.len, server.ptr, why);
        return;
    }
    host->log(TORII_LOG_INFO, "auth: %d for %.*s on location \"%.*s\": %s", status, (int)addr.len,
              addr.ptr, (int)loc.len, loc.ptr, why);
}

static torii_action_t forbid(torii_request_t *r, const char *why) {
    log_refusal(r, 403, why);
    torii_header_t hdr[] = {{TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    host->respond(r, 403, hdr, 1, TORII_STR("forbidden\n"));
    return TORII_RESPOND;
}

static torii_action_t unauthorized(const auth_t *a, torii_request_t *r, const char *why,
                                   const char *bearer_error) {
    log_refusal(r, 401, why);
    torii_str_t challenge = {a->challenge, strlen(a->challenge)};
    if (bearer_error) { /* RFC 6750 3: error and a human-readable description */
        size_t n = strlen(a->challenge) + strlen(bearer_error) + 64;
        char *v = host->req_alloc(r, n);
        if (v) {
            int len = snprintf(v, n, "%s, error=\"invalid_token\", error_description=\"%s\"",
                               a->challenge, bearer_error);
            challenge = (torii_str_t){v, (size_t)len};
        }
    }
    torii_header_t hdr[] = {{TORII_STR("WWW-Authenticate"), challenge},
                            {TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    host->respond(r, 401, hdr, 2, TORII_STR("unauthorized\n"));
    return TORII_RESPOND;
}

static int hexdigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A request header that must appear at most once: 1 (found), 0 (absent), -1 (repeated: a
 * client could slip a second credential past us to an upstream that reads the other one). */
static int single_header(torii_request_t *r, const char *name, torii_str_t *out) {
    size_t n = host->req_header_count(r), len = strlen(name);
    int found = 0;
    torii_header_t h;
    for (size_t i = 0; i < n; ++i) {
        if (host->req_header_at(r, i, &h) != TORII_OK || h.name.len != len ||
            strncasecmp(h.name.ptr, name, len) != 0)
            continue;
        if (found++) return -1;
        *out = h.value;
    }
    return found;
}

/* Percent-decoding as HTML forms and most upstream frameworks do it: "%XX" is a byte, '+' is
 * a space, a '%' without two hex digits after it stays as it is. One decoded byte at *pp,
 * which moves past what it read. */
static char form_byte(const char **pp, const char *end) {
    const char *c = *pp;
    int hi, lo;
    if (*c == '%' && end - c >= 3 && (hi = hexdigit(c[1])) >= 0 && (lo = hexdigit(c[2])) >= 0) {
        *pp = c + 3;
        return (char)(hi * 16 + lo);
    }
    *pp = c + 1;
    return *c == '+' ? ' ' : *c;
}

static char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Does the argument name [p, end) decode to `name`? 0: no; 1: yes; 2: yes up to a decoded
 * NUL byte, which a C upstream would stop at (so it is this argument, and malformed). ASCII
 * case is ignored: some upstreams (ASP.NET) do, so "APIKEY" may be their "apikey". */
static int arg_name_is(const char *p, const char *end, const char *name, size_t nlen) {
    size_t i = 0;
    while (p < end) {
        char c = form_byte(&p, end);
        if (c == 0) return i == nlen ? 2 : 0;
        if (i == nlen || ascii_lower(c) != ascii_lower(name[i])) return 0;
        ++i;
    }
    return i == nlen;
}

/* The `name=value` of the query, into request memory: 1 (found), 0 (absent), -1 (repeated,
 * for the same reason as headers), -2 (malformed: a NUL byte in the decoded name or value).
 * Names are compared after percent-decoding, as the upstream will read them: otherwise
 * "?apikey=A&api%6Bey=B" passes A here while the upstream may take B. */
static int query_arg(torii_request_t *r, const char *name, torii_str_t *out) {
    torii_str_t q = host->req_query(r);
    size_t nlen = strlen(name);
    const char *p = q.ptr, *end = q.ptr + q.len, *value = NULL, *value_end = NULL;
    int seen = 0, nul = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        int is = arg_name_is(p, eq ? eq : pe, name, nlen);
        if (is) {
            ++seen;
            nul |= is == 2;
            value = eq ? eq + 1 : pe;
            value_end = pe;
        }
        p = amp ? amp + 1 : end;
    }
    if (!seen) return 0;
    if (seen > 1) return -1;
    if (nul) return -2;
    char *buf = host->req_alloc(r, (size_t)(value_end - value) + 1);
    if (!buf) return 0;
    size_t n = 0;
    for (const char *c = value; c < value_end;)
        buf[n++] = form_byte(&c, value_end);
    if (memchr(buf, 0, n)) return -2;
    *out = (torii_str_t){buf, n};
    return 1;
}

/* A key or a bearer token: the header (Authorization needs the Bearer scheme; another
 * header may carry the token bare or after "Bearer "), or the query argument. 1 (found),
 * 0 (absent), -1 (the header or argument is repeated, or both carry one: an upstream
 * reading the other would get a credential torii never checked), -2 (a NUL byte in it,
 * which a C upstream would cut the credential at). */
static int credential(const auth_t *a, torii_request_t *r, torii_str_t *out) {
    torii_str_t v, qv;
    int got = a->header ? single_header(r, a->header, &v) : 0;
    if (got < 0) return -1;
    if (got) {
        v = trim(v);
        if (a->type == TYPE_JWT) {
            if (ieq_prefix(v, "bearer ")) {
                v = trim((torii_str_t){v.ptr + 7, v.len - 7});
            } else if (strcasecmp(a->header, "authorization") == 0) {
                v.len = 0; /* another scheme: not ours */
            }
        }
        got = v.len != 0;
    }
    int qgot = a->query ? query_arg(r, a->query, &qv) : 0;
    if (qgot < 0) return qgot;
    if (qgot && qv.len) {
        if (got) return -1;
        v = qv;
        got = 1;
    }
    if (!got) return 0;
    if (memchr(v.ptr, 0, v.len)) return -2;
    *out = v;
    return 1;
}

static torii_action_t check_key(const auth_t *a, torii_request_t *r) {
    torii_str_t key;
    int got = credential(a, r, &key);
    if (got == -2) return unauthorized(a, r, "the API key holds a NUL byte", NULL);
    if (got < 0) return unauthorized(a, r, "the API key is given more than once", NULL);
    if (!got) return unauthorized(a, r, "no API key", NULL);
    const key_entry_t *e = find_key(a, key);
    if (!e) return unauthorized(a, r, "unknown API key", NULL);
    host->req_set_consumer(r, (torii_str_t){e->consumer, strlen(e->consumer)});
    host->log(TORII_LOG_DEBUG, "auth: API key of consumer \"%s\"", e->consumer);
    return TORII_CONTINUE;
}

static torii_action_t check_basic(const auth_t *a, torii_request_t *r) {
    torii_str_t v;
    int got = single_header(r, "Authorization", &v);
    if (got < 0) return unauthorized(a, r, "Authorization is given more than once", NULL);
    if (!got) return unauthorized(a, r, "no credentials", NULL);
    v = trim(v);
    if (!ieq_prefix(v, "basic ")) return unauthorized(a, r, "not Basic credentials", NULL);
    v = trim((torii_str_t){v.ptr + 6, v.len - 6});
    if (v.len == 0 || v.len > MAX_BASIC)
        return unauthorized(a, r, "malformed Basic credentials", NULL);
    char *plain = host->req_alloc(r, v.len / 4 * 3 + 4);
    size_t n = 0;
    if (!plain || !auth_b64_decode(v.ptr, v.len, 0, (uint8_t *)plain, &n))
        return unauthorized(a, r, "malformed Basic credentials", NULL);
    char *colon = memchr(plain, ':', n);
    /* A NUL byte (RFC 7617 forbids control characters) is refused: "alice\0junk" would be
     * alice to a C-string comparison and someone else to the upstream. */
    if (!colon || memchr(plain, 0, n)) {
        OPENSSL_cleanse(plain, n);
        return unauthorized(a, r, "malformed Basic credentials", NULL);
    }
    torii_str_t user = {plain, (size_t)(colon - plain)};
    torii_str_t password = {colon + 1, n - (size_t)(colon + 1 - plain)};
    const user_entry_t *u = find_user(a, user);
    int ok = password_ok(u ? u : &a->dummy, password) && u;
    OPENSSL_cleanse(colon + 1, password.len);
    if (!ok) {
        OPENSSL_cleanse(plain, n);
        return unauthorized(a, r, "unknown user or wrong password", NULL);
    }
    host->req_set_consumer(r, (torii_str_t){u->user, strlen(u->user)});
    host->log(TORII_LOG_DEBUG, "auth: Basic user \"%s\"", u->user);
    return TORII_CONTINUE;
}

static torii_action_t check_jwt(const auth_t *a, torii_request_t *r) {
    torii_str_t token, consumer;
    const char *why;
    int got = credential(a, r, &token);
    if (got == -2) return unauthorized(a, r, "the token is malformed", "the token is malformed");
    if (got < 0)
        return unauthorized(a, r, "the token is given more than once",
                            "the token is given more than once");
    if (!got) return unauthorized(a, r, "no bearer token", NULL);
    if (!jwt_verify(a->jwt, r, token, &consumer, &why)) return unauthorized(a, r, why, why);
    if (!printable_name(consumer))
        return unauthorized(a, r, "the token's consumer claim is not a usable name",
                            "the token's consumer claim is not a usable name");
    host->req_set_consumer(r, consumer);
    host->log(TORII_LOG_DEBUG, "auth: token of consumer \"%.*s\"", (int)consumer.len, consumer.ptr);
    return TORII_CONTINUE;
}

/* The allow/deny lists on $remote_addr: deny wins; with an allow list, only what it covers. */
static torii_action_t check_address(const auth_t *a, torii_request_t *r) {
    if (!a->allow.count && !a->deny.count) return TORII_CONTINUE;
    torii_str_t text;
    cidr_t addr;
    if (host->var(r, TORII_STR("remote_addr"), &text) != TORII_OK || !cidr_parse_addr(text, &addr))
        return forbid(r, "client address unknown");
    if (cidr_match(&a->deny, &addr)) return forbid(r, "address denied");
    if (a->allow.count && !cidr_match(&a->allow, &addr)) return forbid(r, "address not allowed");
    return TORII_CONTINUE;
}

/* The connection phase of a tcp server (ABI 1.2): the address lists only (create() refused
 * `type` there). A refused connection is closed and logged 403. */
static torii_action_t auth_connect(void *instance, torii_request_t *r, void **ctx) {
    (void)ctx;
    return check_address(instance, r);
}

static torii_action_t auth_access(void *instance, torii_request_t *r, void **ctx) {
    const auth_t *a = instance;
    (void)ctx;
    torii_action_t verdict = check_address(a, r);
    if (verdict != TORII_CONTINUE) return verdict;
    switch (a->type) {
        case TYPE_KEY:
            return check_key(a, r);
        case TYPE_BASIC:
            return check_basic(a, r);
        case TYPE_JWT:
            return check_jwt(a, r);
        default:
            return TORII_CONTINUE;
    }
}

/* Removes the query argument the credential came in: the one whose name matches `query`
 * the way query_arg() matched it (decoded, any case), removed by its own decoded spelling
 * through host->req_remove_query_arg (ABI 1.3). The access phase let through only requests
 * with at most one such argument. */
static void hide_query_arg(const auth_t *a, torii_request_t *r) {
    torii_str_t q = host->req_query(r);
    size_t nlen = strlen(a->query);
    const char *p = q.ptr, *end = q.ptr + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        if (arg_name_is(p, ne, a->query, nlen) == 1) {
            char name[128];
            size_t n = 0;
            for (const char *c = p; c < ne && n < sizeof name;)
                name[n++] = form_byte(&c, ne);
            host->req_remove_query_arg(r, (torii_str_t){name, n});
            return; /* q is stale now; there was only one */
        }
        p = amp ? amp + 1 : end;
    }
}

/* hide_credentials: the upstream does not see the header or query argument the credential
 * came in. */
static torii_action_t auth_upstream(void *instance, torii_request_t *r, void **ctx) {
    const auth_t *a = instance;
    (void)ctx;
    if (a->hide_credentials && a->header)
        host->req_remove_header(r, (torii_str_t){a->header, strlen(a->header)});
    if (a->hide_credentials && a->query) hide_query_arg(a, r);
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "auth",
    .version = "1.0",
    .create = auth_create,
    .destroy = auth_destroy,
    .worker_init = NULL, /* read-only after create: nothing per worker */
    .pre_route = NULL,
    .access = auth_access,
    .upstream = auth_upstream,
    .response = NULL,
    .log = NULL,
    .request_done = NULL, /* per-request memory comes from req_alloc */
    .connect = auth_connect,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    if (!TORII_HOST_HAS(h, req_set_consumer)) {
        h->log(TORII_LOG_ERROR,
               "auth: this torii lacks req_set_consumer (plugin ABI 1.0 with "
               "traffic-control additions): upgrade torii");
        return NULL;
    }
    host = h;
    return &descriptor;
}
