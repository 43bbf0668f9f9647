/* auth: HTTP Basic (type = "basic", RFC 7617). Users come from the config (users = [...])
 * and/or a users file ("user:{SSHA256}base64" a line), with salted SHA-2 hashes: {SSHA256}
 * or {SSHA512}, the base64 of digest(password || salt) || salt. An unknown user is checked
 * against a random stand-in hash, so that a wrong name costs what a wrong password does. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>

#include "auth.h"
#include "common/grow.h"

#define MAX_BASIC 4096 /* base64 of user:password */
#define MIN_SALT 4

static const char *parse_hash(const auth_t *a, torii_str_t text, user_entry_t *u) {
    static const struct {
        const char *scheme;
        size_t len;
    } schemes[] = {{"{SSHA256}", 32}, {"{SSHA512}", 64}};
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
    if (!auth_printable_name(user)) return "user names are 1 to 255 printable bytes";
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
    user_entry_t *users = pc_grow(a->users, cap, a->nusers, sizeof *users, 16);
    if (!users) {
        *why = "out of memory";
        return 0;
    }
    a->users = users;
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

/* "user:{SSHA256}base64" a line; blank lines and '#' comments are skipped. */
static int read_users_file(const torii_conf_t *conf, auth_t *a, size_t *cap, torii_str_t path) {
    size_t len;
    const char *why;
    char *text = auth_read_file(conf, "users_file", path, &len);
    if (!text) return TORII_EINVAL;
    size_t line = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        ++line;
        torii_str_t l = auth_trim((torii_str_t){p, (size_t)(eol - p)});
        if (l.len && l.ptr[l.len - 1] == '\r') l = auth_trim((torii_str_t){l.ptr, l.len - 1});
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
        if (!add_user(a, cap, user, hash, &why)) {
            host->conf_error(conf, "users_file", "%.*s:%zu: %s", (int)path.len, path.ptr, line,
                             why);
            free(text);
            return TORII_EINVAL;
        }
    }
    free(text);
    return TORII_OK;
}

int auth_read_users(const torii_conf_t *conf, auth_t *a) {
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
    if (rc == TORII_OK && read_users_file(conf, a, &cap, path) != TORII_OK) return TORII_EINVAL;
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

void auth_free_users(auth_t *a) {
    for (size_t i = 0; i < a->nusers; ++i) {
        free(a->users[i].user);
        free(a->users[i].stored);
    }
    free(a->users);
    free(a->dummy.stored);
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

torii_action_t auth_check_basic(const auth_t *a, torii_request_t *r) {
    torii_str_t v;
    int got = auth_single_header(r, "Authorization", &v);
    if (got < 0) return auth_unauthorized(a, r, "Authorization is given more than once", NULL);
    if (!got) return auth_unauthorized(a, r, "no credentials", NULL);
    v = auth_trim(v);
    if (!auth_ieq_prefix(v, "basic "))
        return auth_unauthorized(a, r, "not Basic credentials", NULL);
    v = auth_trim((torii_str_t){v.ptr + 6, v.len - 6});
    if (v.len == 0 || v.len > MAX_BASIC)
        return auth_unauthorized(a, r, "malformed Basic credentials", NULL);
    char *plain = host->req_alloc(r, v.len / 4 * 3 + 4);
    size_t n = 0;
    if (!plain || !auth_b64_decode(v.ptr, v.len, 0, (uint8_t *)plain, &n))
        return auth_unauthorized(a, r, "malformed Basic credentials", NULL);
    char *colon = memchr(plain, ':', n);
    /* A NUL byte (RFC 7617 forbids control characters) is refused: "alice\0junk" would be
     * alice to a C-string comparison and someone else to the upstream. */
    if (!colon || memchr(plain, 0, n)) {
        OPENSSL_cleanse(plain, n);
        return auth_unauthorized(a, r, "malformed Basic credentials", NULL);
    }
    torii_str_t user = {plain, (size_t)(colon - plain)};
    torii_str_t password = {colon + 1, n - (size_t)(colon + 1 - plain)};
    const user_entry_t *u = find_user(a, user);
    int ok = password_ok(u ? u : &a->dummy, password) && u;
    OPENSSL_cleanse(colon + 1, password.len);
    if (!ok) {
        OPENSSL_cleanse(plain, n);
        return auth_unauthorized(a, r, "unknown user or wrong password", NULL);
    }
    host->req_set_consumer(r, (torii_str_t){u->user, strlen(u->user)});
    host->log(TORII_LOG_DEBUG, "auth: Basic user \"%s\"", u->user);
    return TORII_CONTINUE;
}
