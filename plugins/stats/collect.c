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

/* This process's series: a label hash, the labels stored in the zone ("|l") on first sight,
 * and the addresses of its shared values ("|r", "|e", "|g", "|u"), each fetched from the
 * zone on its first use (host->shared_slot) and kept: an update is then a few atomic adds,
 * with no lock and no key lookup. An open-addressing table keyed by the hash. */
enum { SLOT_ROUTE, SLOT_ERROR, SLOT_GRPC, SLOT_UPSTREAM, SLOTS };
static const char slot_suffix[SLOTS] = {'r', 'e', 'g', 'u'};
static const size_t slot_size[SLOTS] = {sizeof(route_val_t), sizeof(error_val_t),
                                        sizeof(grpc_val_t), sizeof(upstream_val_t)};

typedef struct {
    uint64_t hash; /* 0: an empty entry */
    void *slot[SLOTS];
} series_t;

static series_t *known;
static size_t known_cap, known_len;

static series_t *known_find(uint64_t h) {
    if (!known_cap) return NULL;
    for (size_t i = h % known_cap;; i = (i + 1) % known_cap) {
        if (known[i].hash == 0) return NULL;
        if (known[i].hash == h) return &known[i];
    }
}

/* Entries move when the table grows: callers keep slot addresses, never entry addresses. */
static series_t *known_add(uint64_t h) {
    if ((known_len + 1) * 2 > known_cap) {
        size_t cap = known_cap ? known_cap * 2 : 64;
        series_t *t = calloc(cap, sizeof *t);
        if (!t) return NULL;
        for (size_t i = 0; i < known_cap; ++i) {
            if (!known[i].hash) continue;
            size_t j = known[i].hash % cap;
            while (t[j].hash)
                j = (j + 1) % cap;
            t[j] = known[i];
        }
        free(known);
        known = t;
        known_cap = cap;
    }
    size_t j = h % known_cap;
    while (known[j].hash)
        j = (j + 1) % known_cap;
    known[j].hash = h;
    ++known_len;
    return &known[j];
}

static void warn_full(void) {
    if (warned_full) return;
    warned_full = 1;
    host->log(TORII_LOG_WARN, "stats: the shared zone is full; some requests are not counted");
}

/* The series of a label set, storing its values in the zone the first time this process
 * sees it (NULL when that fails). fields[flex] takes what the others leave of the value's
 * 256 bytes. */
static series_t *series(char kind, const torii_str_t *fields, size_t n, size_t flex) {
    uint64_t h = labels_hash(kind, fields, n);
    if (h == 0) h = 1; /* 0 marks an empty entry of `known` */
    series_t *found = known_find(h);
    if (found) return found;
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
    if (host->kv_set((torii_str_t){key, KEY_LEN}, value, len, 0) != TORII_OK) {
        warn_full();
        return NULL;
    }
    return known_add(h);
}

/* The shared value `which` of a series, fetched from the zone on first use. */
static void *series_slot(series_t *se, int which) {
    if (!se) return NULL;
    if (!se->slot[which]) {
        char key[KEY_LEN + 1];
        make_key(key, se->hash, slot_suffix[which]);
        se->slot[which] = host->shared_slot((torii_str_t){key, KEY_LEN}, slot_size[which]);
        if (!se->slot[which]) warn_full();
    }
    return se->slot[which];
}

/* The route's values into st (each NULL when the zone had no room), from the instance's
 * cache or, the first time, from its series. */
static void route_values(stats_t *s, torii_request_t *r, req_state_t *st) {
    torii_str_t f[3] = {host->req_server(r), host->req_location(r), host->req_upstream(r)};
    route_cache_t *c = &s->routes[((uintptr_t)f[1].ptr >> 3) % ROUTE_CACHE];
    if (c->location == f[1].ptr && c->server == f[0].ptr && c->upstream == f[2].ptr &&
        (c->server || c->location)) {
        st->route = c->route;
        st->errors = c->errors;
        st->grpc = c->grpc;
        return;
    }
    series_t *se = series('r', f, 3, 1);
    st->route = series_slot(se, SLOT_ROUTE);
    st->errors = series_slot(se, SLOT_ERROR);
    st->grpc = series_slot(se, SLOT_GRPC);
    if (st->route && st->errors && st->grpc)
        *c = (route_cache_t){f[0].ptr, f[1].ptr, f[2].ptr, st->route, st->errors, st->grpc};
}

/* The last instance is gone: the plugin may be unloaded next. */
void stats_labels_forget(void) {
    free(known);
    known = NULL;
    known_cap = known_len = 0;
}

/* ---- the shared updates -------------------------------------------------------------- */

/* Every worker adds to the same values at once, so every write is atomic. Relaxed order is
 * enough: each counter is exact on its own, and a scrape reads a moment's numbers (a bucket
 * may be one ahead of the sum it races with). */
static inline void add(int64_t *p, int64_t d) {
    __atomic_fetch_add(p, d, __ATOMIC_RELAXED);
}

static void clear(int64_t *p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        __atomic_store_n(&p[i], 0, __ATOMIC_RELAXED);
}

/* A value's first 8 bytes (version, nbuckets, layout: see stats.h) read as one word, so that
 * one compare-and-swap decides who restarts a value. */
static uint64_t tag_of(uint16_t nbuckets, uint32_t layout) {
    return (uint64_t)VALUE_VERSION | (uint64_t)nbuckets << 16 | (uint64_t)layout << 32;
}

/* Makes sure the value at `v` is this version's, counted under `want`'s bucket bounds: a new
 * value (all zeros) or one of another version is cleared whole; one counted under other
 * bounds (before a reload that changed `buckets`) keeps its counters and restarts its
 * histogram (`hist`, `hist_n` words). The worker whose compare-and-swap wins clears; adds
 * racing with that clear may be lost, once per series and change. */
static void claim(void *v, size_t size, uint64_t want, int64_t *hist, size_t hist_n) {
    uint64_t *tag = v;
    uint64_t have = __atomic_load_n(tag, __ATOMIC_ACQUIRE);
    if (have == want) return;
    if (!__atomic_compare_exchange_n(tag, &have, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return; /* another worker claimed it first */
    if ((uint16_t)have != VALUE_VERSION || !hist)
        clear((int64_t *)v + 1, size / sizeof(int64_t) - 1);
    else
        clear(hist, hist_n);
}

static void observe(const delta_t *d, int64_t *sum_us, int64_t *buckets) {
    add(&buckets[d->bucket], 1);
    add(sum_us, d->us);
}

static void route_add(route_val_t *v, const delta_t *d) {
    if (!v) return;
    claim(v, sizeof *v, tag_of((uint16_t)d->s->nbuckets, d->s->layout), &v->sum_us,
          1 + MAX_BUCKETS + 1);
    if (d->observe) {
        add(&v->requests[d->cls], 1);
        if (d->bytes_in) add(&v->bytes_in, d->bytes_in);
        if (d->bytes_out) add(&v->bytes_out, d->bytes_out);
        if (d->bucket >= 0) observe(d, &v->sum_us, v->buckets);
    }
    if (d->in_flight) add(&v->in_flight, d->in_flight);
}

static void upstream_add(upstream_val_t *v, const delta_t *d) {
    if (!v) return;
    claim(v, sizeof *v, tag_of((uint16_t)d->s->nbuckets, d->s->layout), &v->sum_us,
          1 + MAX_BUCKETS + 1);
    add(&v->responses[d->cls], 1);
    if (d->bucket >= 0) observe(d, &v->sum_us, v->buckets);
}

/* gRPC and error values have no histogram: their tag is the version alone. */
static void count_in(void *v, size_t size, int64_t *slots, int slot) {
    if (!v) return;
    claim(v, size, VALUE_VERSION, NULL, 0);
    add(&slots[slot], 1);
}

static int error_slot(int status) {
    for (int i = 0; i < ERROR_CODES; ++i)
        if (error_codes[i] == status) return i;
    return ERROR_CODES;
}

/* ---- reading the exchange ------------------------------------------------------------- */

/* The variables read per exchange, resolved by name once (host->var_ref), in the master
 * before the workers fork: a handle is a plain index from then on. */
static struct {
    int resolved;
    int request_time, request_length, bytes_sent, status, upstream_response_time, grpc_status;
} vars;

int stats_resolve_vars(void) {
    if (vars.resolved) return TORII_OK;
    struct {
        int *handle;
        const char *name;
    } want[] = {{&vars.request_time, "request_time"},
                {&vars.request_length, "request_length"},
                {&vars.bytes_sent, "bytes_sent"},
                {&vars.status, "status"},
                {&vars.upstream_response_time, "upstream_response_time"},
                {&vars.grpc_status, "grpc_status"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
        *want[i].handle = host->var_ref((torii_str_t){want[i].name, strlen(want[i].name)});
        if (*want[i].handle < 0) {
            host->log(TORII_LOG_ERROR, "stats: this torii has no $%s", want[i].name);
            return TORII_EINVAL;
        }
    }
    vars.resolved = 1;
    return TORII_OK;
}

/* A number the core keeps for the exchange (host->var_int: times in microseconds, sizes in
 * bytes), or `none` when it has none. */
static int64_t number(torii_request_t *r, int handle, int64_t none) {
    int64_t v;
    return host->var_int(r, handle, &v) == TORII_OK ? v : none;
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
    if (!(host->req_protocol(r) & TORII_PROTO_GRPC)) return -1;
    int64_t code;
    switch (host->var_int(r, vars.grpc_status, &code)) {
        case TORII_OK:
            return code < GRPC_CODES ? (int)code : GRPC_OTHER;
        case TORII_NOT_FOUND: /* a call that ended without a status: cancelled or cut */
            return GRPC_NONE;
        default: /* a status that is not a number */
            return GRPC_OTHER;
    }
}

/* ---- hooks ---------------------------------------------------------------------------- */

torii_action_t stats_access(void *instance, torii_request_t *r, void **ctx) {
    req_state_t *st = host->req_alloc(r, sizeof *st);
    if (!st) return TORII_CONTINUE;
    route_values(instance, r, st);
    delta_t d = {.s = instance, .observe = 0, .bucket = -1, .in_flight = 1};
    route_add(st->route, &d);
    *ctx = st;
    return TORII_CONTINUE;
}

torii_action_t stats_log(void *instance, torii_request_t *r, void **ctx) {
    const stats_t *s = instance;
    req_state_t *st = *ctx, fresh;
    if (!st) { /* no access phase ran (refused before it) or no request memory was left */
        route_values(instance, r, &fresh);
        st = &fresh;
    }
    int status = host->resp_status(r);
    int64_t request_us = number(r, vars.request_time, -1);

    delta_t d = {.s = s, .observe = 1, .cls = status_class(status)};
    d.bucket = request_us >= 0 ? bucket_of(s, request_us) : -1;
    d.us = request_us;
    d.bytes_in = number(r, vars.request_length, 0);
    d.bytes_out = number(r, vars.bytes_sent, 0);
    d.in_flight = st != &fresh && st->route ? -1 : 0;
    route_add(st->route, &d);

    if (status >= 400 && status <= 599 && st->errors) /* errors only: a 2xx pays nothing more */
        count_in(st->errors, sizeof(error_val_t), ((error_val_t *)st->errors)->responses,
                 error_slot(status));

    int slot = grpc_slot(r);
    if (slot >= 0 && st->grpc)
        count_in(st->grpc, sizeof(grpc_val_t), ((grpc_val_t *)st->grpc)->calls, slot);

    return TORII_CONTINUE;
}

/* Every attempt on a target, including those a retry hides from $upstream_addr. */
void stats_peer_result(void *instance, torii_request_t *r, torii_str_t upstream,
                       torii_str_t address, torii_peer_outcome_t outcome, int status) {
    const stats_t *s = instance;
    if (outcome != TORII_PEER_OK &&
        (number(r, vars.status, 0) || number(r, vars.upstream_response_time, 0)))
        /* A failure after a response head (an invalid body): the core reports the attempt
         * a second time, and it was counted with its status already. A head ends retries,
         * so no later attempt of this request can be hidden by this test. */
        return;
    torii_str_t f[2] = {upstream, address};
    upstream_val_t *val = series_slot(series('u', f, 2, 1), SLOT_UPSTREAM);
    delta_t u = {.s = s, .observe = 1, .bucket = -1};
    if (outcome == TORII_PEER_OK) {
        /* The core set $upstream_response_time just before reporting this attempt. */
        int64_t us = number(r, vars.upstream_response_time, 0); /* none: under a microsecond */
        u.cls = status_class(status);
        u.bucket = bucket_of(s, us);
        u.us = us;
    } else {
        u.cls = CLASS_NONE; /* refused, reset, timed out, or an invalid response head */
    }
    upstream_add(val, &u);
}
