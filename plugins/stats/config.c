/* stats: the configuration table (`buckets`, the histogram's bounds) and the layout hash
 * that tells values counted under other bounds apart. */
#include <string.h>

#include "common/conf.h"
#include "common/fnv.h"
#include "stats.h"

/* "250ms", "2.5s", "1m" in microseconds, or -1. */
static int64_t parse_duration_us(torii_str_t t) {
    size_t i = 0;
    int64_t whole = 0, frac = 0, frac_scale = 1;
    for (; i < t.len && t.ptr[i] >= '0' && t.ptr[i] <= '9'; ++i) {
        if (i >= 9) return -1;
        whole = whole * 10 + (t.ptr[i] - '0');
    }
    if (i == 0) return -1;
    if (i < t.len && t.ptr[i] == '.') {
        size_t digits = 0;
        for (++i; i < t.len && t.ptr[i] >= '0' && t.ptr[i] <= '9'; ++i, ++digits) {
            if (digits >= 6) return -1;
            frac = frac * 10 + (t.ptr[i] - '0');
            frac_scale *= 10;
        }
        if (digits == 0) return -1;
    }
    int64_t unit;
    size_t rest = t.len - i;
    if (rest == 2 && t.ptr[i] == 'm' && t.ptr[i + 1] == 's')
        unit = 1000;
    else if (rest == 1 && t.ptr[i] == 's')
        unit = 1000000;
    else if (rest == 1 && t.ptr[i] == 'm')
        unit = 60000000;
    else
        return -1;
    return whole * unit + frac * unit / frac_scale;
}

static const uint64_t default_bounds_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

int stats_read_buckets(const torii_conf_t *conf, stats_t *s, int *explicit_buckets) {
    *explicit_buckets = 0;
    if (!pc_has_key(host, conf, "buckets")) {
        s->nbuckets = sizeof default_bounds_ms / sizeof default_bounds_ms[0];
        for (size_t i = 0; i < s->nbuckets; ++i)
            s->bounds_us[i] = default_bounds_ms[i] * 1000;
        return TORII_OK;
    }
    /* Not an array: conf_array_size records "expected an array" at the key. */
    size_t n = host->conf_array_size(conf, "buckets");
    if (n == 0)
        return host->conf_error(conf, "buckets",
                                "needs at least one duration, e.g. [\"50ms\", \"1s\"]");
    if (n > MAX_BUCKETS)
        return host->conf_error(conf, "buckets", "at most %d buckets (+Inf is implicit), got %zu",
                                MAX_BUCKETS, n);
    for (size_t i = 0; i < n; ++i) {
        torii_str_t v;
        if (host->conf_array_string(conf, "buckets", i, &v) != TORII_OK)
            return TORII_EINVAL; /* not a string: the host recorded where */
        int64_t us = parse_duration_us(v);
        if (us < 0)
            return host->conf_error(conf, "buckets",
                                    "\"%.*s\" is not a duration such as \"250ms\", \"2.5s\", "
                                    "\"1m\"",
                                    (int)(v.len > 64 ? 64 : v.len), v.ptr);
        if (us < 1000)
            return host->conf_error(conf, "buckets",
                                    "\"%.*s\" is below 1ms, the resolution of the measured "
                                    "times",
                                    (int)v.len, v.ptr);
        if (i > 0 && (uint64_t)us <= s->bounds_us[i - 1])
            return host->conf_error(conf, "buckets",
                                    "durations must increase: \"%.*s\" is not above the one "
                                    "before it",
                                    (int)v.len, v.ptr);
        s->bounds_us[i] = (uint64_t)us;
    }
    s->nbuckets = n;
    *explicit_buckets = 1;
    return TORII_OK;
}

uint32_t stats_layout_of(const stats_t *s) {
    uint64_t h = pc_fnv64(PC_FNV64_INIT, &s->nbuckets, sizeof s->nbuckets);
    h = pc_fnv64(h, s->bounds_us, s->nbuckets * sizeof s->bounds_us[0]);
    uint32_t l = (uint32_t)(h ^ (h >> 32));
    return l ? l : 1; /* 0 is "no histogram yet" */
}

int stats_same_buckets(const stats_t *a, const stats_t *b) {
    return a->nbuckets == b->nbuckets &&
           memcmp(a->bounds_us, b->bounds_us, a->nbuckets * sizeof a->bounds_us[0]) == 0;
}
