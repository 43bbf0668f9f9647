/* stats: recording. Label sets and their shared-zone keys, the locked updates of the
 * series, what is read from an exchange, and the hooks that record it (access, log,
 * peer_result; connect for tcp sessions). This is the per-request path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fnv.h"
#include "stats.h"

static int warned_full;

/* ---- hashing and labels ------------------------------------------------------------- */

/* The identity of a label set: its kind and every full (untruncated) value, each with its
 * length so that ("ab","c") and ("a","bc") differ. */
static uint64_t labels_hash(char kind, const torii_str_t *fields, size_t n) {
    uint64_t h = pc_fnv64(PC_FNV64_INIT, &kind, 1);
    for (size_t i = 0; i < n; ++i) {
        uint64_t len = fields[i].len;
        h = pc_fnv64(h, &len, sizeof len);
        h = pc_fnv64(h, fields[i].ptr, fields[i].len);
    }
    return h;
}

static void make_key(char *key, uint64_t hash, char suffix) {
    static const char hex[] = "0123456789abcdef";
    memcpy(key, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    char *p = key + sizeof KEY_PREFIX - 1;
    for (int i = 15; i >= 0; --i)
        *p++ = hex[(hash >> (i * 4)) & 15];
    *p++ = '|';
    *p++ = suffix;
    *p = 0;
}

/* Appends one length-prefixed field of at most `max` bytes. A longer value is cut at a
 * UTF-8 character boundary and ends with "~" and 8 hex digits of a hash of the whole value,
 * so that two long values sharing a beginning stay two series. Returns bytes written. */
static size_t put_field(unsigned char *out, torii_str_t v, size_t max) {
    if (max > 255) max = 255;
    if (v.len <= max) {
        out[0] = (unsigned char)v.len;
        if (v.len) memcpy(out + 1, v.ptr, v.len);
        return 1 + v.len;
    }
    size_t keep = max - TRUNC_MARK_LEN;
    while (keep > 0 && ((unsigned char)v.ptr[keep] & 0xC0) == 0x80)
        --keep;
    char mark[TRUNC_MARK_LEN + 1];
    snprintf(mark, sizeof mark, "~%08x", (unsigned)pc_fnv32(v.ptr, v.len));
    out[0] = (unsigned char)(keep + TRUNC_MARK_LEN);
    memcpy(out + 1, v.ptr, keep);
    memcpy(out + 1 + keep, mark, TRUNC_MARK_LEN);
    return 1 + keep + TRUNC_MARK_LEN;
}

/* Label hashes this process has already stored in the zone (an open-addressing set). */
static uint64_t *known;
static size_t known_cap, known_len;

static int known_has(uint64_t h) {
    if (!known_cap) return 0;
    for (size_t i = h % known_cap;; i = (i + 1) % known_cap) {
        if (known[i] == 0) return 0;
        if (known[i] == h) return 1;
    }
}

static void known_add(uint64_t h) {
    if ((known_len + 1) * 2 > known_cap) {
        size_t cap = known_cap ? known_cap * 2 : 64;
        uint64_t *t = calloc(cap, sizeof *t);
        if (!t) return;
        for (size_t i = 0; i < known_cap; ++i) {
            if (!known[i]) continue;
            size_t j = known[i] % cap;
            while (t[j])
                j = (j + 1) % cap;
            t[j] = known[i];
        }
        free(known);
        known = t;
        known_cap = cap;
    }
    size_t j = h % known_cap;
    while (known[j]) {
        if (known[j] == h) return;
        j = (j + 1) % known_cap;
    }
    known[j] = h;
    ++known_len;
}

static void warn_full(void) {
    if (warned_full) return;
    warned_full = 1;
    host->log(TORII_LOG_WARN, "stats: the shared zone is full; some requests are not counted");
}

/* The hash of a label set, storing its values in the zone the first time this process
 * sees it. fields[flex] takes what the others leave of the value's 256 bytes. */
static uint64_t series(char kind, const torii_str_t *fields, size_t n, size_t flex) {
    uint64_t h = labels_hash(kind, fields, n);
    if (h == 0) h = 1; /* 0 marks an empty slot of `known` */
    if (known_has(h)) return h;
    unsigned char value[LABELS_MAX];
    size_t room = LABELS_MAX - 1 - n; /* the kind byte and one length byte per field */
    size_t short_len[8] = {0};
    for (size_t i = 0; i < n && i < 8; ++i) {
        if (i == flex) continue;
        short_len[i] = fields[i].len <= SHORT_FIELD_MAX ? fields[i].len : SHORT_FIELD_MAX;
        room -= short_len[i];
    }
    size_t len = 0;
    value[len++] = (unsigned char)kind;
    for (size_t i = 0; i < n; ++i)
        len += put_field(value + len, fields[i], i == flex ? room : SHORT_FIELD_MAX);
    char key[KEY_LEN + 1];
    make_key(key, h, 'l');
    if (host->kv_set((torii_str_t){key, KEY_LEN}, value, len, 0) == TORII_OK)
        known_add(h);
    else
        warn_full();
    return h;
}

static uint64_t route_series(torii_request_t *r) {
    torii_str_t f[3] = {host->req_server(r), host->req_location(r), host->req_upstream(r)};
    return series('r', f, 3, 1);
}

/* The last instance is gone: the plugin may be unloaded next. */
void stats_labels_forget(void) {
    free(known);
    known = NULL;
    known_cap = known_len = 0;
}

/* ---- the shared updates -------------------------------------------------------------- */

static void add_observation(const delta_t *d, uint16_t *nbuckets, uint32_t *layout, int64_t *sum_us,
                            int64_t *buckets) {
    if (*layout != d->s->layout || *nbuckets != d->s->nbuckets) {
        /* new, or counted under other bounds: the histogram starts again */
        *layout = d->s->layout;
        *nbuckets = (uint16_t)d->s->nbuckets;
        *sum_us = 0;
        memset(buckets, 0, (MAX_BUCKETS + 1) * sizeof(int64_t));
    }
    buckets[d->bucket]++;
    *sum_us += d->us;
}

static void route_update(void *value, size_t *len, void *arg) {
    const delta_t *d = arg;
    route_val_t v;
    memset(&v, 0, sizeof v);
    if (*len == sizeof v) memcpy(&v, value, sizeof v);
    if (v.version != VALUE_VERSION) {
        memset(&v, 0, sizeof v);
        v.version = VALUE_VERSION;
    }
    if (d->observe) {
        v.requests[d->cls]++;
        v.bytes_in += d->bytes_in;
        v.bytes_out += d->bytes_out;
        if (d->bucket >= 0) add_observation(d, &v.nbuckets, &v.layout, &v.sum_us, v.buckets);
    }
    v.in_flight += d->in_flight;
    memcpy(value, &v, sizeof v);
    *len = sizeof v;
}

static void upstream_update(void *value, size_t *len, void *arg) {
    const delta_t *d = arg;
    upstream_val_t v;
    memset(&v, 0, sizeof v);
    if (*len == sizeof v) memcpy(&v, value, sizeof v);
    if (v.version != VALUE_VERSION) {
        memset(&v, 0, sizeof v);
        v.version = VALUE_VERSION;
    }
    v.responses[d->cls]++;
    if (d->bucket >= 0) add_observation(d, &v.nbuckets, &v.layout, &v.sum_us, v.buckets);
    memcpy(value, &v, sizeof v);
    *len = sizeof v;
}

static void grpc_update(void *value, size_t *len, void *arg) {
    const delta_t *d = arg;
    grpc_val_t v;
    memset(&v, 0, sizeof v);
    if (*len == sizeof v) memcpy(&v, value, sizeof v);
    if (v.version != VALUE_VERSION) {
        memset(&v, 0, sizeof v);
        v.version = VALUE_VERSION;
    }
    v.calls[d->cls]++;
    memcpy(value, &v, sizeof v);
    *len = sizeof v;
}

static void error_update(void *value, size_t *len, void *arg) {
    const delta_t *d = arg;
    error_val_t v;
    memset(&v, 0, sizeof v);
    if (*len == sizeof v) memcpy(&v, value, sizeof v);
    if (v.version != VALUE_VERSION) {
        memset(&v, 0, sizeof v);
        v.version = VALUE_VERSION;
    }
    v.responses[d->cls]++;
    memcpy(value, &v, sizeof v);
    *len = sizeof v;
}

static int error_slot(int status) {
    for (int i = 0; i < ERROR_CODES; ++i)
        if (error_codes[i] == status) return i;
    return ERROR_CODES;
}

static int update(uint64_t hash, char suffix, void (*fn)(void *, size_t *, void *), delta_t *d) {
    char key[KEY_LEN + 1];
    make_key(key, hash, suffix);
    int rc = host->shared_update((torii_str_t){key, KEY_LEN}, fn, d, 0);
    if (rc != TORII_OK) warn_full();
    return rc;
}

/* ---- reading the exchange ------------------------------------------------------------- */

static int64_t var_int(torii_request_t *r, torii_str_t name) {
    torii_str_t v;
    if (host->var(r, name, &v) != TORII_OK) return 0;
    int64_t n = 0;
    for (size_t i = 0; i < v.len && i < 19; ++i) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') break;
        n = n * 10 + (v.ptr[i] - '0');
    }
    return n;
}

/* "1.234" (seconds, as $request_time prints them) in microseconds, or -1. */
static int64_t var_seconds_us(torii_request_t *r, torii_str_t name) {
    torii_str_t v;
    if (host->var(r, name, &v) != TORII_OK || v.len == 0) return -1;
    int64_t whole = 0, frac = 0, scale = 1000000;
    size_t i = 0;
    for (; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9' && i < 12; ++i)
        whole = whole * 10 + (v.ptr[i] - '0');
    if (i == 0) return -1;
    if (i < v.len && v.ptr[i] == '.') {
        for (++i; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; ++i) {
            if (scale > 1) {
                scale /= 10;
                frac += (v.ptr[i] - '0') * scale;
            }
        }
    }
    return whole * 1000000 + frac;
}

static int bucket_of(const stats_t *s, int64_t us) {
    size_t i = 0;
    while (i < s->nbuckets && (uint64_t)us > s->bounds_us[i])
        ++i;
    return (int)i;
}

static int status_class(int status) {
    return status >= 100 && status <= 599 ? status / 100 : CLASS_OTHER;
}

/* The slot of a gRPC call in grpc_val_t, or -1 when the exchange is not a gRPC call. */
static int grpc_slot(torii_request_t *r) {
    torii_str_t v;
    if (host->var(r, TORII_STR("grpc_status"), &v) == TORII_OK) {
        int code = 0;
        if (v.len == 0 || v.len > 2) return GRPC_OTHER;
        for (size_t i = 0; i < v.len; ++i) {
            if (v.ptr[i] < '0' || v.ptr[i] > '9') return GRPC_OTHER;
            code = code * 10 + (v.ptr[i] - '0');
        }
        return code < GRPC_CODES ? code : GRPC_OTHER;
    }
    /* No status: a gRPC call (application/grpc, +proto, ...) that was cancelled or cut. */
    static const char grpc_type[] = "application/grpc";
    if (host->var(r, TORII_STR("http_content_type"), &v) == TORII_OK &&
        v.len >= sizeof grpc_type - 1 && memcmp(v.ptr, grpc_type, sizeof grpc_type - 1) == 0 &&
        (v.len == sizeof grpc_type - 1 || v.ptr[sizeof grpc_type - 1] == '+' ||
         v.ptr[sizeof grpc_type - 1] == ';'))
        return GRPC_NONE;
    return -1;
}

/* ---- hooks ---------------------------------------------------------------------------- */

torii_action_t stats_access(void *instance, torii_request_t *r, void **ctx) {
    req_state_t *st = host->req_alloc(r, sizeof *st);
    if (!st) return TORII_CONTINUE;
    st->route = route_series(r);
    delta_t d = {.s = instance, .observe = 0, .bucket = -1, .in_flight = 1};
    st->in_flight = update(st->route, 'r', route_update, &d) == TORII_OK;
    *ctx = st;
    return TORII_CONTINUE;
}

torii_action_t stats_log(void *instance, torii_request_t *r, void **ctx) {
    const stats_t *s = instance;
    const req_state_t *st = *ctx;
    int status = host->resp_status(r);
    int64_t request_us = var_seconds_us(r, TORII_STR("request_time"));

    delta_t d = {.s = s, .observe = 1, .cls = status_class(status)};
    d.bucket = request_us >= 0 ? bucket_of(s, request_us) : -1;
    d.us = request_us;
    d.bytes_in = var_int(r, TORII_STR("request_length"));
    d.bytes_out = var_int(r, TORII_STR("bytes_sent"));
    d.in_flight = st && st->in_flight ? -1 : 0;
    uint64_t route = st ? st->route : route_series(r);
    update(route, 'r', route_update, &d);

    if (status >= 400 && status <= 599) { /* errors only: a 2xx pays nothing more */
        delta_t e = {.s = s, .observe = 1, .cls = error_slot(status), .bucket = -1};
        update(route, 'e', error_update, &e);
    }

    int slot = grpc_slot(r);
    if (slot >= 0) {
        delta_t g = {.s = s, .observe = 1, .cls = slot, .bucket = -1};
        update(route, 'g', grpc_update, &g);
    }

    return TORII_CONTINUE;
}

/* Every attempt on a target, including those a retry hides from $upstream_addr. */
void stats_peer_result(void *instance, torii_request_t *r, torii_str_t upstream,
                       torii_str_t address, torii_peer_outcome_t outcome, int status) {
    const stats_t *s = instance;
    torii_str_t v;
    if (outcome != TORII_PEER_OK &&
        (host->var(r, TORII_STR("status"), &v) == TORII_OK ||
         host->var(r, TORII_STR("upstream_response_time"), &v) == TORII_OK))
        /* A failure after a response head (an invalid body): the core reports the attempt
         * a second time, and it was counted with its status already. A head ends retries,
         * so no later attempt of this request can be hidden by this test. */
        return;
    torii_str_t f[2] = {upstream, address};
    uint64_t h = series('u', f, 2, 1);
    delta_t u = {.s = s, .observe = 1, .bucket = -1};
    if (outcome == TORII_PEER_OK) {
        /* The core set $upstream_response_time just before reporting this attempt. */
        int64_t us = var_seconds_us(r, TORII_STR("upstream_response_time"));
        if (us < 0) us = 0; /* under a microsecond */
        u.cls = status_class(status);
        u.bucket = bucket_of(s, us);
        u.us = us;
    } else {
        u.cls = CLASS_NONE; /* refused, reset, timed out, or an invalid response head */
    }
    update(h, 'u', upstream_update, &u);
}
