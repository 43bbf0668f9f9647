/* auth: API keys (type = "key"). Each key names its consumer. Keys are kept as 128-bit tags
 * in a sorted table and looked up by the tag of what the request carries: the table never
 * holds a key, and the lookup's timing depends on tags, not on the key.
 *
 * A tag is two SipHash-2-4 values of the key under two random 128-bit keys drawn when the
 * instance is made (plugins/common/siphash.h). SipHash is a PRF: without those keys nobody
 * can tell a key's tag, aim a guess at a tag, or learn from the lookup's timing which tag a
 * guess came near; a guess is accepted with probability (number of keys) / 2^128. It replaced
 * a SHA-256 digest per request, whose compression function alone cost about 2,000
 * instructions on the request path; SipHash over a typical key costs about a tenth. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>

#include "auth.h"
#include "common/siphash.h"

static void tag_of(const auth_t *a, const void *p, size_t n, uint64_t out[2]) {
    out[0] = pc_siphash24(a->key_secret[0], p, n);
    out[1] = pc_siphash24(a->key_secret[1], p, n);
}

static int by_tag(const void *pa, const void *pb) {
    const uint64_t *x = ((const key_entry_t *)pa)->tag, *y = ((const key_entry_t *)pb)->tag;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

int auth_read_keys(const torii_conf_t *conf, auth_t *a) {
    static const char *const fields[] = {"key", "consumer", NULL};
    size_t n = host->conf_array_size(conf, "keys");
    if (n == 0)
        return host->conf_error(
            conf, "keys" /* or the table */,
            "type = \"key\" needs keys = [ { key = \"...\", consumer = \"...\" } ]");
    if (RAND_bytes(&a->key_secret[0][0], (int)sizeof a->key_secret) != 1)
        return host->conf_error(conf, "keys", "OpenSSL could not draw random bytes");
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
        tag_of(a, key.ptr, key.len, e->tag);
        for (size_t k = 0; k < a->nkeys; ++k)
            if (by_tag(&a->keys[k], e) == 0)
                return host->conf_error(t, NULL, "keys[%zu] repeats the key of keys[%zu]", i, k);
        if (!(e->consumer = auth_strdup(consumer))) return TORII_EINVAL;
        a->nkeys++;
    }
    qsort(a->keys, a->nkeys, sizeof(key_entry_t), by_tag);
    return TORII_OK;
}

void auth_free_keys(auth_t *a) {
    for (size_t i = 0; i < a->nkeys; ++i)
        free(a->keys[i].consumer);
    if (a->keys) OPENSSL_cleanse(a->keys, a->nkeys * sizeof(key_entry_t));
    OPENSSL_cleanse(a->key_secret, sizeof a->key_secret);
    free(a->keys);
}

static const key_entry_t *find_key(const auth_t *a, torii_str_t key) {
    key_entry_t probe;
    tag_of(a, key.ptr, key.len, probe.tag);
    const key_entry_t *e = bsearch(&probe, a->keys, a->nkeys, sizeof(key_entry_t), by_tag);
    /* bsearch only ever compares tags; the last compare is constant-time anyway */
    if (e && CRYPTO_memcmp(e->tag, probe.tag, sizeof probe.tag) == 0) return e;
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
