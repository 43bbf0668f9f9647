/* stats: GET /metrics. Collects every stats series of the shared zone (copies, under the
 * zone's lock), then renders them sorted by labels as Prometheus text format 0.0.4. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "stats.h"

static const char *const class_names[UPSTREAM_CLASSES] = {"other", "1xx", "2xx", "3xx",
                                                          "4xx",   "5xx", "none"};

/* Microseconds as seconds, exactly and without trailing zeros: 2500000 -> "2.5". */
static void sb_seconds(pc_sb_t *b, int64_t us) {
    char num[48];
    int neg = us < 0;
    uint64_t u = neg ? (uint64_t)(-(us + 1)) + 1 : (uint64_t)us;
    int n = snprintf(num, sizeof num, "%s%llu.%06llu", neg ? "-" : "",
                     (unsigned long long)(u / 1000000), (unsigned long long)(u % 1000000));
    while (n > 0 && num[n - 1] == '0')
        --n;
    if (n > 0 && num[n - 1] == '.') --n;
    pc_sb_add(b, num, (size_t)n);
}

/* A label value in the text format: backslash, double quote and line feed escaped. */
static void sb_label_value(pc_sb_t *b, const unsigned char *v, size_t n) {
    pc_sb_add(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
        const char *esc = v[i] == '\\'   ? "\\\\"
                          : v[i] == '"'  ? "\\\""
                          : v[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc) continue;
        pc_sb_add(b, (const char *)v + start, i - start);
        pc_sb_add(b, esc, 2);
        start = i + 1;
    }
    pc_sb_add(b, (const char *)v + start, n - start);
    pc_sb_add(b, "\"", 1);
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
static void sb_labels(pc_sb_t *b, const found_t *f, const char *const *names, size_t n) {
    const unsigned char *ptr[3];
    size_t len[3];
    label_fields(f, ptr, len, n);
    pc_sb_add(b, "{", 1);
    for (size_t i = 0; i < n; ++i) {
        if (i) pc_sb_add(b, ",", 1);
        pc_sb_str(b, names[i]);
        pc_sb_add(b, "=", 1);
        sb_label_value(b, ptr[i], len[i]);
    }
}

static void family_head(pc_sb_t *b, const char *name, const char *type, const char *help) {
    pc_sb_str(b, "# HELP ");
    pc_sb_str(b, name);
    pc_sb_add(b, " ", 1);
    pc_sb_str(b, help);
    pc_sb_str(b, "\n# TYPE ");
    pc_sb_str(b, name);
    pc_sb_add(b, " ", 1);
    pc_sb_str(b, type);
    pc_sb_add(b, "\n", 1);
}

static void sample(pc_sb_t *b, const char *name, const found_t *f, const char *const *names,
                   size_t n, const char *extra_name, const char *extra_value, int64_t v) {
    pc_sb_str(b, name);
    sb_labels(b, f, names, n);
    if (extra_name) {
        pc_sb_add(b, ",", 1);
        pc_sb_str(b, extra_name);
        pc_sb_add(b, "=", 1);
        sb_label_value(b, (const unsigned char *)extra_value, strlen(extra_value));
    }
    pc_sb_str(b, "} ");
    pc_sb_int(b, v);
    pc_sb_add(b, "\n", 1);
}

static void histogram(pc_sb_t *b, const stats_t *s, const char *name, const found_t *f,
                      const char *const *names, size_t n, const int64_t *buckets, int64_t sum_us) {
    char metric[128];
    int64_t cumulative = 0;
    snprintf(metric, sizeof metric, "%s_bucket", name);
    for (size_t i = 0; i <= s->nbuckets; ++i) {
        cumulative += buckets[i];
        pc_sb_str(b, metric);
        sb_labels(b, f, names, n);
        pc_sb_str(b, ",le=\"");
        if (i < s->nbuckets)
            sb_seconds(b, (int64_t)s->bounds_us[i]);
        else
            pc_sb_str(b, "+Inf");
        pc_sb_str(b, "\"} ");
        pc_sb_int(b, cumulative);
        pc_sb_add(b, "\n", 1);
    }
    snprintf(metric, sizeof metric, "%s_sum", name);
    pc_sb_str(b, metric);
    sb_labels(b, f, names, n);
    pc_sb_str(b, "} ");
    sb_seconds(b, sum_us);
    pc_sb_add(b, "\n", 1);
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

/* Whether a histogram holds anything: a target that never sent a response head has had no
 * latency observed, and shows no histogram rather than one of zeros. */
static int observed(const int64_t *buckets, size_t nbuckets) {
    for (size_t i = 0; i <= nbuckets; ++i)
        if (buckets[i]) return 1;
    return 0;
}

/* A family with one sample per route: the route value's int64_t field at `field`. */
static void route_family(pc_sb_t *b, const collect_t *c, const char *name, const char *type,
                         const char *help, size_t field) {
    family_head(b, name, type, help);
    for (size_t i = 0; i < c->len; ++i) {
        const found_t *f = &c->items[i];
        if (!usable(f, 'r')) continue;
        int64_t v;
        memcpy(&v, (const char *)&f->route + field, sizeof v);
        sample(b, name, f, route_label_names, 3, NULL, NULL, v);
    }
}

void stats_render(void *arg, torii_buf_t *out) {
    const stats_t *s = arg;
    collect_t c;
    memset(&c, 0, sizeof c);
    host->shared_each(TORII_STR(KEY_PREFIX), collect_entry, &c);
    if (c.len) qsort(c.items, c.len, sizeof *c.items, by_labels);
    pc_sb_t b = {0};
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
    route_family(&b, &c, "torii_http_received_bytes_total", "counter",
                 "Request body bytes received from clients.", offsetof(route_val_t, bytes_in));
    route_family(&b, &c, "torii_http_sent_bytes_total", "counter",
                 "Response body bytes sent to clients.", offsetof(route_val_t, bytes_out));
    route_family(&b, &c, "torii_http_requests_in_flight", "gauge",
                 "Requests past the access phase whose exchange has not ended yet.",
                 offsetof(route_val_t, in_flight));
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
            char code[12];  // room for any int, so no compiler doubts it
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
        if (usable(f, 'u') && f->up.layout == s->layout && f->up.nbuckets == s->nbuckets &&
            observed(f->up.buckets, s->nbuckets))
            histogram(&b, s, "torii_upstream_response_duration_seconds", f, un, 2, f->up.buckets,
                      f->up.sum_us);
    }

    /* The core's own machine-wide counters (every client connection, admin ones too). */
    family_head(&b, "torii_connections_active", "gauge",
                "Client connections open now, all workers together (admin connections, "
                "such as this scrape's, included).");
    pc_sb_str(&b, "torii_connections_active ");
    pc_sb_int(&b, host->counter_get(TORII_STR("torii|connections")));
    pc_sb_add(&b, "\n", 1);
    family_head(&b, "torii_connections_accepted_total", "counter",
                "Client connections accepted since the master started (admin connections "
                "included).");
    pc_sb_str(&b, "torii_connections_accepted_total ");
    pc_sb_int(&b, host->counter_get(TORII_STR("torii|accepted")));
    pc_sb_add(&b, "\n", 1);

    if (c.failed || b.failed) host->log(TORII_LOG_ERROR, "stats: out of memory rendering /metrics");
    if (!b.failed) host->buf_append(out, (torii_str_t){b.p, b.len});
    free(b.p);
    free(c.items);
    free(c.index);
}
