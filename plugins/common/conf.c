/* Config getters shared by the bundled plugins: see conf.h. */
#include "common/conf.h"

#include <stdio.h>
#include <string.h>

int pc_has_key(const torii_host_t *h, const torii_conf_t *conf, const char *key) {
    torii_str_t k;
    size_t n = strlen(key);
    for (size_t i = 0; h->conf_key_at(conf, i, &k) == TORII_OK; ++i)
        if (k.len == n && !memcmp(k.ptr, key, n)) return 1;
    return 0;
}

void pc_fmt_ms(char *buf, size_t cap, int64_t ms) {
    if (ms % 1000 == 0)
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, cap, "%lldms", (long long)ms);
}

int pc_get_duration(const torii_host_t *h, const torii_conf_t *conf, const char *key, int64_t dflt,
                    int64_t lo, int64_t hi, int64_t *out) {
    *out = dflt;
    int rc = h->conf_duration_ms(conf, key, out);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK && (*out < lo || *out > hi)) {
        char a[32], b[32];
        pc_fmt_ms(a, sizeof a, lo);
        pc_fmt_ms(b, sizeof b, hi);
        return h->conf_error(conf, key, "must be between %s and %s", a, b);
    }
    return TORII_OK;
}

int pc_get_int(const torii_host_t *h, const torii_conf_t *conf, const char *key, int64_t dflt,
               int64_t lo, int64_t hi, int64_t *out) {
    *out = dflt;
    int rc = h->conf_int(conf, key, out);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK && (*out < lo || *out > hi))
        return h->conf_error(conf, key, "must be between %lld and %lld", (long long)lo,
                             (long long)hi);
    return TORII_OK;
}
