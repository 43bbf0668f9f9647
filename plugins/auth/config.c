/* auth: the instance's configuration. create() reads every key once, files included (users
 * file, secret and key files): nothing is read on the request path, and the instance is
 * read-only afterwards, so every worker decides alike. A key that belongs to another type
 * than the chosen one is an error rather than silently unused. docs/plugins/auth.md lists
 * every key. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "auth.h"

#define MAX_FILE (64u << 20) /* users/key files */

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

/* ---- keys by type ------------------------------------------------------------------- */

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
            if (!auth_str_eq(k, typed_keys[j].key)) continue;
            if (!(typed_keys[j].types & mine))
                return host->conf_error(conf, typed_keys[j].key, "applies to %s only",
                                        type_names(typed_keys[j].types));
        }
    }
    return TORII_OK;
}

/* ---- sources ------------------------------------------------------------------------ */

/* header/query: where a key or a token is read from (credential.c reads them). */
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
        /* hide_credentials removes the argument through the host (ABI 1.3): an older torii
         * would send it upstream, or rather call past the end of its function table. */
        if (a->hide_credentials && !TORII_HOST_HAS(host, req_remove_query_arg))
            return host->conf_error(conf, "hide_credentials",
                                    "with query, needs a torii with plugin ABI 1.3");
    }
    if (!a->header && !a->query)
        return host->conf_error(conf, "header", "with header = \"\", set query");
    return TORII_OK;
}

/* ---- create and destroy ------------------------------------------------------------- */

void auth_destroy(void *instance) {
    auth_t *a = instance;
    if (!a) return;
    cidr_free_list(&a->allow);
    cidr_free_list(&a->deny);
    free(a->header);
    free(a->query);
    free(a->challenge);
    free(a->realm);
    auth_free_keys(a);
    auth_free_users(a);
    EVP_MD_free(a->sha256);
    EVP_MD_free(a->sha512);
    jwt_destroy(a->jwt);
    free(a);
}

static int read_type(const torii_conf_t *conf, auth_t *a) {
    torii_str_t type;
    int rc = host->conf_string(conf, "type", &type);
    if (rc == TORII_EINVAL) return rc;
    if (rc != TORII_OK) return TORII_OK; /* TYPE_NONE: the address lists alone */
    if (auth_str_eq(type, "key"))
        a->type = TYPE_KEY;
    else if (auth_str_eq(type, "basic"))
        a->type = TYPE_BASIC;
    else if (auth_str_eq(type, "jwt"))
        a->type = TYPE_JWT;
    else
        return host->conf_error(conf, "type", "\"%.*s\" is not key, basic or jwt", (int)type.len,
                                type.ptr);
    return TORII_OK;
}

void *auth_create(const torii_host_t *h, const torii_conf_t *conf) {
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
    if (read_type(conf, a) != TORII_OK) goto fail;
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
        if (read_sources(conf, a, "X-API-Key") != TORII_OK || auth_read_keys(conf, a) != TORII_OK)
            goto fail;
    } else if (a->type == TYPE_BASIC) {
        scheme = "Basic";
        if (!(a->header = strdup("Authorization")) || auth_read_users(conf, a) != TORII_OK)
            goto fail;
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
