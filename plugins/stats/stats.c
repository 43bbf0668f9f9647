/* stats: request counters and latency histograms per server, location, upstream and target,
 * kept in torii's shared memory zone (so every worker adds to the same numbers) and served
 * as Prometheus text (format 0.0.4) on the admin listener's `GET /metrics`.
 *
 *   [server.plugins.stats]                  # every location of the server is counted
 *   buckets = ["5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms",
 *              "1s", "2.5s", "5s", "10s"]   # optional; the same in every stats table
 *
 *   [server.location.plugins.stats]
 *   enabled = false                         # ... except this location
 *
 * What is recorded for every exchange the plugin is enabled for:
 *   route series {server, location, upstream}, in the log phase: requests by status class,
 *     request and response body bytes, a histogram of $request_time, and a gauge of requests
 *     in flight (incremented in the access phase, decremented in the log phase);
 *   upstream series {upstream, target}, in peer_result, once per attempt on a target
 *     (retries included): attempts by the class of the target's status ("none" when it sent
 *     no response head) and a histogram of $upstream_response_time (attempts with a head);
 *   gRPC series, the route's labels, in the log phase of gRPC calls only: calls by
 *     $grpc_status (0-16, "other" for anything else, "none" for a call that ended without
 *     one: cancelled or cut).
 * On a tcp server ([server.plugins.stats]) each session counts as one exchange of the route
 * {server, "", upstream}: from its connect hook to its end, its status (200 for a session
 * that ran), the bytes each way and its duration; each connect attempt is an upstream
 * attempt with status 0 (class "other") and the connect time as its latency.
 * Rendered too, read at scrape time: the core's counters "torii|connections" and
 * "torii|accepted" (every client connection of every worker, admin ones included).
 *
 * Shared zone layout (keys are at most 64 bytes, values at most 256): each label set is
 * identified by a 64-bit FNV-1a hash of its full label values, H as 16 hex digits.
 *   "stats|H|l"  the label values (kind byte, then length-prefixed fields), written once
 *   "stats|H|r"  a route_val_t, updated with one host->shared_update per exchange
 *   "stats|H|u"  an upstream_val_t, updated once per attempt
 *   "stats|H|g"  a grpc_val_t beside a route's "r", updated once per gRPC call
 *   "stats|H|e"  an error_val_t beside a route's "r": 4xx/5xx answers by code
 * One locked update per series per request (or attempt) keeps a histogram's buckets, sum and count
 * consistent with each other whatever a scrape races with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

#define METRICS_PATH "/metrics"
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define KEY_PREFIX "stats|"
#define MAX_BUCKETS 20
#define VALUE_VERSION 1
#define LABELS_MAX 256 /* a shared value's size limit */
/* Caps of the short label values; the location (route) gets what is left of LABELS_MAX. */
#define SHORT_FIELD_MAX 64
#define TRUNC_MARK_LEN 9 /* "~" and 8 hex digits */

enum { CLASS_OTHER = 0, CLASS_NONE = 6, ROUTE_CLASSES = 6, UPSTREAM_CLASSES = 7 };
static const char *const class_names[UPSTREAM_CLASSES] = {"other", "1xx", "2xx", "3xx",
                                                          "4xx",   "5xx", "none"};

/* The shared values. `layout` identifies the bucket bounds the histogram was counted with:
 * a value written under other bounds (before a reload that changed `buckets`) has its
 * histogram restarted by the next update and is not rendered until then. */
typedef struct {
    uint16_t version;
    uint16_t nbuckets;
    uint32_t layout;
    int64_t requests[ROUTE_CLASSES];
    int64_t bytes_in;  /* request body bytes ($request_length) */
    int64_t bytes_out; /* response body bytes ($bytes_sent) */
    int64_t in_flight;
    int64_t sum_us;
    int64_t buckets[MAX_BUCKETS + 1]; /* per bucket, not cumulative; the last is "> last bound" */
} route_val_t;

typedef struct {
    uint16_t version;
    uint16_t nbuckets;
    uint32_t layout;
    int64_t responses[UPSTREAM_CLASSES];
    int64_t sum_us;
    int64_t buckets[MAX_BUCKETS + 1];
} upstream_val_t;

/* gRPC calls of a route, apart from route_val_t (which fills its 256 bytes): by status code
 * 0-16 (OK ... UNAUTHENTICATED), then "other" and "none". */
enum { GRPC_CODES = 17, GRPC_OTHER = GRPC_CODES, GRPC_NONE, GRPC_SLOTS };

typedef struct {
    uint16_t version;
    uint16_t unused16;
    uint32_t unused32;
    int64_t calls[GRPC_SLOTS];
} grpc_val_t;

/* Error answers of a route by exact code, beside route_val_t: a class cannot tell a rate
 * limit (429) from a missing page (404), nor an open breaker (503) from a dead target (502).
 * The codes torii and the bundled plugins answer with, then "other" for any other 4xx/5xx. */
static const int error_codes[] = {400, 401, 403, 404, 405, 408, 413,
                                  429, 431, 499, 500, 502, 503, 504};
enum { ERROR_CODES = sizeof error_codes / sizeof error_codes[0], ERROR_SLOTS = ERROR_CODES + 1 };

typedef struct {
    uint16_t version;
    uint16_t unused16;
    uint32_t unused32;
    int64_t responses[ERROR_SLOTS];
} error_val_t;

_Static_assert(sizeof(error_val_t) <= LABELS_MAX, "error value over the limit");
_Static_assert(sizeof(route_val_t) <= LABELS_MAX, "route value over the shared value limit");
_Static_assert(sizeof(grpc_val_t) <= LABELS_MAX, "grpc value over the limit");
_Static_assert(sizeof(upstream_val_t) <= LABELS_MAX, "upstream value over the limit");

typedef struct stats {
    uint64_t bounds_us[MAX_BUCKETS];
    size_t nbuckets;
    uint32_t layout;
} stats_t;

/* What one exchange adds to a series (the argument of the shared_update callbacks). */
typedef struct {
    const stats_t *s;
    int observe; /* 1: count the exchange; 0: only move the in-flight gauge */
    int cls;     /* status class index */
    int bucket;  /* -1: no latency to observe */
    int64_t us;  /* the latency */
    int64_t bytes_in, bytes_out, in_flight;
} delta_t;

/* Per request, from the access phase to the log phase. */
typedef struct {
    uint64_t route;
    int in_flight; /* the gauge was incremented and must come down in the log phase */
} req_state_t;

static const torii_host_t *host;
/* The instance that registered /metrics for the configuration being loaded: every stats
 * table of one configuration must agree with its buckets. Only used while loading. */
static stats_t *leader;
static size_t instances; /* live ones: the last one out frees this process's label cache */
static int warned_full;

/* ---- hashing and labels ------------------------------------------------------------- */

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define FNV64_INIT 1469598103934665603ull

static uint32_t fnv32(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

/* The identity of a label set: its kind and every full (untruncated) value, each with its
 * length so that ("ab","c") and ("a","bc") differ. */
static uint64_t labels_hash(char kind, const torii_str_t *fields, size_t n) {
    uint64_t h = fnv64(FNV64_INIT, &kind, 1);
    for (size_t i = 0; i < n; ++i) {
        uint64_t len = fields[i].len;
        h = fnv64(h, &len, sizeof len);
        h = fnv64(h, fields[i].ptr, fields[i].len);
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
#define KEY_LEN (sizeof KEY_PREFIX - 1 + 16 + 2)

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
    snprintf(mark, sizeof mark, "~%08x", (unsigned)fnv32(v.ptr, v.len));
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

static torii_action_t stats_access(void *instance, torii_request_t *r, void **ctx) {
    req_state_t *st = host->req_alloc(r, sizeof *st);
    if (!st) return TORII_CONTINUE;
    st->route = route_series(r);
    delta_t d = {.s = instance, .observe = 0, .bucket = -1, .in_flight = 1};
    st->in_flight = update(st->route, 'r', route_update, &d) == TORII_OK;
    *ctx = st;
    return TORII_CONTINUE;
}

static torii_action_t stats_log(void *instance, torii_request_t *r, void **ctx) {
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
static void stats_peer_result(void *instance, torii_request_t *r, torii_str_t upstream,
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

/* ---- /metrics ------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} sb_t;

static void sb_add(sb_t *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sb_t *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static void sb_int(sb_t *b, int64_t v) {
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    sb_add(b, num, (size_t)n);
}

/* Microseconds as seconds, exactly and without trailing zeros: 2500000 -> "2.5". */
static void sb_seconds(sb_t *b, int64_t us) {
    char num[48];
    int neg = us < 0;
    uint64_t u = neg ? (uint64_t)(-(us + 1)) + 1 : (uint64_t)us;
    int n = snprintf(num, sizeof num, "%s%llu.%06llu", neg ? "-" : "",
                     (unsigned long long)(u / 1000000), (unsigned long long)(u % 1000000));
    while (n > 0 && num[n - 1] == '0')
        --n;
    if (n > 0 && num[n - 1] == '.') --n;
    sb_add(b, num, (size_t)n);
}

/* A label value in the text format: backslash, double quote and line feed escaped. */
static void sb_label_value(sb_t *b, const unsigned char *v, size_t n) {
    sb_add(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
        const char *esc = v[i] == '\\'   ? "\\\\"
                          : v[i] == '"'  ? "\\\""
                          : v[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc) continue;
        sb_add(b, (const char *)v + start, i - start);
        sb_add(b, esc, 2);
        start = i + 1;
    }
    sb_add(b, (const char *)v + start, n - start);
    sb_add(b, "\"", 1);
}

typedef struct {
    uint64_t hash;
    int has_labels, has_route, has_upstream, has_grpc, has_errors;
    unsigned char kind;
    unsigned char labels[LABELS_MAX];
    size_t labels_len;
    route_val_t route;
    upstream_val_t up;
    grpc_val_t grpc;
    error_val_t errors;
} found_t;

typedef struct {
    found_t *items;
    size_t len, cap;
    size_t *index; /* open addressing over items, by hash; SIZE_MAX empty */
    size_t index_cap;
    int failed;
} collect_t;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static found_t *collect_get(collect_t *c, uint64_t hash) {
    if ((c->len + 1) * 2 > c->index_cap) {
        size_t cap = c->index_cap ? c->index_cap * 2 : 256;
        size_t *idx = malloc(cap * sizeof *idx);
        found_t *items = realloc(c->items, (cap / 2) * sizeof *items);
        if (!idx || !items) {
            free(idx);
            if (items) c->items = items;
            c->failed = 1;
            return NULL;
        }
        c->items = items;
        c->cap = cap / 2;
        memset(idx, 0xff, cap * sizeof *idx);
        for (size_t i = 0; i < c->len; ++i) {
            size_t j = c->items[i].hash % cap;
            while (idx[j] != (size_t)-1)
                j = (j + 1) % cap;
            idx[j] = i;
        }
        free(c->index);
        c->index = idx;
        c->index_cap = cap;
    }
    size_t j = hash % c->index_cap;
    while (c->index[j] != (size_t)-1) {
        if (c->items[c->index[j]].hash == hash) return &c->items[c->index[j]];
        j = (j + 1) % c->index_cap;
    }
    found_t *f = &c->items[c->len];
    memset(f, 0, sizeof *f);
    f->hash = hash;
    c->index[j] = c->len++;
    return f;
}

/* Runs under the zone's lock: copies and returns. */
static void collect_entry(torii_str_t key, int64_t counter, const void *value, size_t len,
                          void *arg) {
    collect_t *c = arg;
    (void)counter;
    if (c->failed || key.len != KEY_LEN || key.ptr[KEY_LEN - 2] != '|') return;
    uint64_t h = 0;
    for (size_t i = sizeof KEY_PREFIX - 1; i < KEY_LEN - 2; ++i) {
        int x = hexval(key.ptr[i]);
        if (x < 0) return;
        h = (h << 4) | (uint64_t)x;
    }
    char suffix = key.ptr[KEY_LEN - 1];
    found_t *f;
    if (suffix == 'l' && len >= 1 && len <= LABELS_MAX) {
        if (!(f = collect_get(c, h))) return;
        f->has_labels = 1;
        f->kind = ((const unsigned char *)value)[0];
        memcpy(f->labels, value, len);
        f->labels_len = len;
    } else if (suffix == 'r' && len == sizeof(route_val_t)) {
        if (!(f = collect_get(c, h))) return;
        memcpy(&f->route, value, len);
        f->has_route = f->route.version == VALUE_VERSION;
    } else if (suffix == 'g' && len == sizeof(grpc_val_t)) {
        if (!(f = collect_get(c, h))) return;
        memcpy(&f->grpc, value, len);
        f->has_grpc = f->grpc.version == VALUE_VERSION;
    } else if (suffix == 'e' && len == sizeof(error_val_t)) {
        if (!(f = collect_get(c, h))) return;
        memcpy(&f->errors, value, len);
        f->has_errors = f->errors.version == VALUE_VERSION;
    } else if (suffix == 'u' && len == sizeof(upstream_val_t)) {
        if (!(f = collect_get(c, h))) return;
        memcpy(&f->up, value, len);
        f->has_upstream = f->up.version == VALUE_VERSION;
    }
}

/* The fields of a stored label value; 0 when malformed. */
static size_t label_fields(const found_t *f, const unsigned char **ptr, size_t *len, size_t max) {
    size_t n = 0, i = 1;
    while (i < f->labels_len && n < max) {
        size_t l = f->labels[i++];
        if (i + l > f->labels_len) return 0;
        ptr[n] = f->labels + i;
        len[n++] = l;
        i += l;
    }
    return i == f->labels_len ? n : 0;
}

static int by_labels(const void *a, const void *b) {
    const found_t *x = a, *y = b;
    if (x->labels_len != y->labels_len || memcmp(x->labels, y->labels, x->labels_len)) {
        size_t n = x->labels_len < y->labels_len ? x->labels_len : y->labels_len;
        int c = memcmp(x->labels, y->labels, n);
        if (c) return c;
        return x->labels_len < y->labels_len ? -1 : 1;
    }
    return 0;
}

static const char *const route_label_names[] = {"server", "location", "upstream"};
static const char *const upstream_label_names[] = {"upstream", "target"};

/* `{a="x",b="y"` — the caller closes it, after any extra label. */
static void sb_labels(sb_t *b, const found_t *f, const char *const *names, size_t n) {
    const unsigned char *ptr[3];
    size_t len[3];
    label_fields(f, ptr, len, n);
    sb_add(b, "{", 1);
    for (size_t i = 0; i < n; ++i) {
        if (i) sb_add(b, ",", 1);
        sb_str(b, names[i]);
        sb_add(b, "=", 1);
        sb_label_value(b, ptr[i], len[i]);
    }
}

static void family_head(sb_t *b, const char *name, const char *type, const char *help) {
    sb_str(b, "# HELP ");
    sb_str(b, name);
    sb_add(b, " ", 1);
    sb_str(b, help);
    sb_str(b, "\n# TYPE ");
    sb_str(b, name);
    sb_add(b, " ", 1);
    sb_str(b, type);
    sb_add(b, "\n", 1);
}

static void sample(sb_t *b, const char *name, const found_t *f, const char *const *names, size_t n,
                   const char *extra_name, const char *extra_value, int64_t v) {
    sb_str(b, name);
    sb_labels(b, f, names, n);
    if (extra_name) {
        sb_add(b, ",", 1);
        sb_str(b, extra_name);
        sb_add(b, "=", 1);
        sb_label_value(b, (const unsigned char *)extra_value, strlen(extra_value));
    }
    sb_str(b, "} ");
    sb_int(b, v);
    sb_add(b, "\n", 1);
}

static void histogram(sb_t *b, const stats_t *s, const char *name, const found_t *f,
                      const char *const *names, size_t n, const int64_t *buckets, int64_t sum_us) {
    char metric[128];
    int64_t cumulative = 0;
    snprintf(metric, sizeof metric, "%s_bucket", name);
    for (size_t i = 0; i <= s->nbuckets; ++i) {
        cumulative += buckets[i];
        sb_str(b, metric);
        sb_labels(b, f, names, n);
        sb_str(b, ",le=\"");
        if (i < s->nbuckets)
            sb_seconds(b, (int64_t)s->bounds_us[i]);
        else
            sb_str(b, "+Inf");
        sb_str(b, "\"} ");
        sb_int(b, cumulative);
        sb_add(b, "\n", 1);
    }
    snprintf(metric, sizeof metric, "%s_sum", name);
    sb_str(b, metric);
    sb_labels(b, f, names, n);
    sb_str(b, "} ");
    sb_seconds(b, sum_us);
    sb_add(b, "\n", 1);
    snprintf(metric, sizeof metric, "%s_count", name);
    sample(b, metric, f, names, n, NULL, NULL, cumulative);
}

static int usable(const found_t *f, char kind) {
    const unsigned char *ptr[3];
    size_t len[3];
    size_t want = kind == 'r' ? 3 : 2;
    return f->has_labels && f->kind == (unsigned char)kind &&
           (kind == 'r' ? f->has_route : f->has_upstream) && label_fields(f, ptr, len, 3) == want;
}

static void render(void *arg, torii_buf_t *out) {
    const stats_t *s = arg;
    collect_t c;
    memset(&c, 0, sizeof c);
    host->shared_each(TORII_STR(KEY_PREFIX), collect_entry, &c);
    if (c.len) qsort(c.items, c.len, sizeof *c.items, by_labels);
    sb_t b = {0};
    const char *const *rn = route_label_names, *const *un = upstream_label_names;

    family_head(&b, "torii_http_requests_total", "counter",
                "Requests answered, by server, location, upstream and status class.");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (!usable(f, 'r')) continue;
        for (int k = 1; k <= ROUTE_CLASSES; ++k) {
            int cls = k % ROUTE_CLASSES; /* 1xx..5xx, then other */
            if (f->route.requests[cls])
                sample(&b, "torii_http_requests_total", f, rn, 3, "status_class", class_names[cls],
                       f->route.requests[cls]);
        }
    }
    family_head(&b, "torii_http_error_responses_total", "counter",
                "Error answers (4xx, 5xx) by server, location, upstream and code: 429 is a rate "
                "limit, 503 no target or an open breaker, 502/504 a failed target; other: any "
                "other 4xx/5xx.");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (!usable(f, 'r') || !f->has_errors) continue;
        for (int k = 0; k < ERROR_SLOTS; ++k) {
            char code[8];
            if (!f->errors.responses[k]) continue;
            if (k < ERROR_CODES)
                snprintf(code, sizeof code, "%d", error_codes[k]);
            else
                snprintf(code, sizeof code, "other");
            sample(&b, "torii_http_error_responses_total", f, rn, 3, "code", code,
                   f->errors.responses[k]);
        }
    }
    family_head(&b, "torii_http_received_bytes_total", "counter",
                "Request body bytes received from clients.");
    for (size_t i = 0; i < c.len; ++i)
        if (usable(&c.items[i], 'r'))
            sample(&b, "torii_http_received_bytes_total", &c.items[i], rn, 3, NULL, NULL,
                   c.items[i].route.bytes_in);
    family_head(&b, "torii_http_sent_bytes_total", "counter",
                "Response body bytes sent to clients.");
    for (size_t i = 0; i < c.len; ++i)
        if (usable(&c.items[i], 'r'))
            sample(&b, "torii_http_sent_bytes_total", &c.items[i], rn, 3, NULL, NULL,
                   c.items[i].route.bytes_out);
    family_head(&b, "torii_http_requests_in_flight", "gauge",
                "Requests past the access phase whose exchange has not ended yet.");
    for (size_t i = 0; i < c.len; ++i)
        if (usable(&c.items[i], 'r'))
            sample(&b, "torii_http_requests_in_flight", &c.items[i], rn, 3, NULL, NULL,
                   c.items[i].route.in_flight);
    family_head(&b, "torii_http_request_duration_seconds", "histogram",
                "Time from the request head to the end of the exchange ($request_time).");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (usable(f, 'r') && f->route.layout == s->layout && f->route.nbuckets == s->nbuckets)
            histogram(&b, s, "torii_http_request_duration_seconds", f, rn, 3, f->route.buckets,
                      f->route.sum_us);
    }

    family_head(&b, "torii_grpc_calls_total", "counter",
                "gRPC calls answered, by server, location, upstream and grpc-status (0-16; "
                "other: any other value; none: the call ended without one).");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (!usable(f, 'r') || !f->has_grpc) continue;
        for (int k = 0; k < GRPC_SLOTS; ++k) {
            char code[8];
            if (!f->grpc.calls[k]) continue;
            if (k < GRPC_CODES)
                snprintf(code, sizeof code, "%d", k);
            else
                snprintf(code, sizeof code, "%s", k == GRPC_OTHER ? "other" : "none");
            sample(&b, "torii_grpc_calls_total", f, rn, 3, "grpc_status", code, f->grpc.calls[k]);
        }
    }

    family_head(&b, "torii_upstream_requests_total", "counter",
                "Attempts on each target of an upstream, retries included, by the class of "
                "the target's status (none: no response head).");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (!usable(f, 'u')) continue;
        for (int k = 1; k <= UPSTREAM_CLASSES; ++k) {
            int cls = k == UPSTREAM_CLASSES ? CLASS_OTHER : k; /* 1xx..5xx, none, other */
            if (f->up.responses[cls])
                sample(&b, "torii_upstream_requests_total", f, un, 2, "status_class",
                       class_names[cls], f->up.responses[cls]);
        }
    }
    family_head(&b, "torii_upstream_response_duration_seconds", "histogram",
                "Time from sending the request to the target to its response head "
                "($upstream_response_time).");
    for (size_t i = 0; i < c.len; ++i) {
        const found_t *f = &c.items[i];
        if (usable(f, 'u') && f->up.layout == s->layout && f->up.nbuckets == s->nbuckets)
            histogram(&b, s, "torii_upstream_response_duration_seconds", f, un, 2, f->up.buckets,
                      f->up.sum_us);
    }

    /* The core's own machine-wide counters (every client connection, admin ones too). */
    family_head(&b, "torii_connections_active", "gauge",
                "Client connections open now, all workers together (admin connections, "
                "such as this scrape's, included).");
    sb_str(&b, "torii_connections_active ");
    sb_int(&b, host->counter_get(TORII_STR("torii|connections")));
    sb_add(&b, "\n", 1);
    family_head(&b, "torii_connections_accepted_total", "counter",
                "Client connections accepted since the master started (admin connections "
                "included).");
    sb_str(&b, "torii_connections_accepted_total ");
    sb_int(&b, host->counter_get(TORII_STR("torii|accepted")));
    sb_add(&b, "\n", 1);

    if (c.failed || b.failed) host->log(TORII_LOG_ERROR, "stats: out of memory rendering /metrics");
    if (!b.failed) host->buf_append(out, (torii_str_t){b.p, b.len});
    free(b.p);
    free(c.items);
    free(c.index);
}

/* ---- config --------------------------------------------------------------------------- */

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

static int has_key(const torii_conf_t *conf, const char *name) {
    torii_str_t k;
    size_t n = strlen(name);
    for (size_t i = 0; host->conf_key_at(conf, i, &k) == TORII_OK; ++i)
        if (k.len == n && memcmp(k.ptr, name, n) == 0) return 1;
    return 0;
}

static int read_buckets(const torii_conf_t *conf, stats_t *s, int *explicit_buckets) {
    *explicit_buckets = 0;
    if (!has_key(conf, "buckets")) {
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

static uint32_t layout_of(const stats_t *s) {
    uint64_t h = fnv64(FNV64_INIT, &s->nbuckets, sizeof s->nbuckets);
    h = fnv64(h, s->bounds_us, s->nbuckets * sizeof s->bounds_us[0]);
    uint32_t l = (uint32_t)(h ^ (h >> 32));
    return l ? l : 1; /* 0 is "no histogram yet" */
}

static int same_buckets(const stats_t *a, const stats_t *b) {
    return a->nbuckets == b->nbuckets &&
           memcmp(a->bounds_us, b->bounds_us, a->nbuckets * sizeof a->bounds_us[0]) == 0;
}

static void stats_destroy(void *instance) {
    if (instance == leader) leader = NULL;
    free(instance);
    if (--instances == 0) { /* the plugin may be unloaded next */
        free(known);
        known = NULL;
        known_cap = known_len = 0;
    }
}

static void *stats_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"buckets", NULL};
    (void)h;
    if (host->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    stats_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    int explicit_buckets;
    if (read_buckets(conf, s, &explicit_buckets) != TORII_OK) {
        free(s);
        return NULL;
    }
    /* The first stats table of a configuration takes /metrics; the others of the same
     * configuration find it taken and follow that table's buckets, since upstream series
     * are shared by every location that proxies to the upstream. */
    if (host->admin_register(METRICS_PATH, METRICS_CONTENT_TYPE, render, s) == TORII_OK) {
        leader = s; /* render() reads this instance's buckets */
    } else if (!leader) {
        host->log(TORII_LOG_WARN, "stats: %s is taken by another plugin; counting, not serving",
                  METRICS_PATH);
        leader = s;
    } else if (!explicit_buckets) {
        s->nbuckets = leader->nbuckets;
        memcpy(s->bounds_us, leader->bounds_us, sizeof s->bounds_us);
    } else if (!same_buckets(s, leader)) {
        host->conf_error(conf, "buckets",
                         "every stats table of a configuration uses the same buckets: set them "
                         "on the first stats table only, or identically everywhere");
        free(s);
        return NULL;
    }
    s->layout = layout_of(s);
    ++instances;
    return s;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "stats",
    .version = "1.0",
    .create = stats_create,
    .destroy = stats_destroy,
    .worker_init = NULL, /* all state is in the shared zone */
    .pre_route = NULL,   /* counted from the access phase: the location is known there */
    .access = stats_access,
    .upstream = NULL,
    .response = NULL,
    .log = stats_log,
    .request_done = NULL, /* per-request state lives in request memory */
    .peer_result = stats_peer_result,
    .connect = stats_access, /* tcp servers: a session counts like a request */
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    if (!TORII_HOST_HAS(h, req_set_consumer)) { /* the ABI of peer_result and torii|* */
        h->log(TORII_LOG_ERROR,
               "stats: this torii is older than the plugin (no peer_result); upgrade torii");
        return NULL;
    }
    host = h;
    return &descriptor;
}
