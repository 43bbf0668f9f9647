/* auth: API keys (type = "key"). Each key names its consumer. Keys are kept as SHA-256
 * digests in a sorted table and looked up by the digest of what the request carries: the
 * table never holds a key, and the lookup's timing depends on digests, not on the key. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <stdlib.h>

#include "auth.h"

static void sha256(const auth_t *a, const void *p, size_t n, uint8_t out[32]) {
    unsigned len = 32;
    if (EVP_Digest(p, n, out, &len, a->sha256, NULL) != 1) memset(out, 0, 32);
}

static int by_digest(const void *a, const void *b) {
    return memcmp(((const key_entry_t *)a)->digest, ((const key_entry_t *)b)->digest, 32);
}

int auth_read_keys(const torii_conf_t *conf, auth_t *a) {
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
        if (rc != TORII_OK || !auth_printable_name(consumer))
            return host->conf_error(t, NULL,
                                    "keys[%zu] needs a consumer name of 1 to %d printable bytes", i,
                                    AUTH_MAX_NAME);
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

void auth_free_keys(auth_t *a) {
    for (size_t i = 0; i < a->nkeys; ++i)
        free(a->keys[i].consumer);
    if (a->keys) OPENSSL_cleanse(a->keys, a->nkeys * sizeof(key_entry_t));
    free(a->keys);
}

static const key_entry_t *find_key(const auth_t *a, torii_str_t key) {
    key_entry_t probe;
    sha256(a, key.ptr, key.len, probe.digest);
    const key_entry_t *e = bsearch(&probe, a->keys, a->nkeys, sizeof(key_entry_t), by_digest);
    /* bsearch's memcmp only ever sees digests; the last compare is constant-time anyway */
    if (e && CRYPTO_memcmp(e->digest, probe.digest, 32) == 0) return e;
    return NULL;
}

torii_action_t auth_check_key(const auth_t *a, torii_request_t *r) {
    torii_str_t key;
    int got = auth_credential(a, r, &key);
    if (got == -2) return auth_unauthorized(a, r, "the API key holds a NUL byte", NULL);
    if (got < 0) return auth_unauthorized(a, r, "the API key is given more than once", NULL);
    if (!got) return auth_unauthorized(a, r, "no API key", NULL);
    const key_entry_t *e = find_key(a, key);
    if (!e) return auth_unauthorized(a, r, "unknown API key", NULL);
    host->req_set_consumer(r, (torii_str_t){e->consumer, strlen(e->consumer)});
    host->log(TORII_LOG_DEBUG, "auth: API key of consumer \"%s\"", e->consumer);
    return TORII_CONTINUE;
}
