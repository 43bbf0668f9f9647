/* ratelimit: a token bucket per key, in the access phase.
 *
 *   [server.location.plugins.ratelimit]
 *   rate = 100              # tokens added per period (required; a number > 0)
 *   period = "1s"           # default "1s"
 *   burst = 50              # bucket capacity, >= 1 (default 1)
 *   key = "$remote_addr"    # any template of variables (default "$remote_addr")
 *   delay = false           # true: queue admitted requests so they leave at `rate`
 *   headers = true          # RateLimit-Limit / -Remaining / -Reset on every answer
 *   max_keys = 4096         # local backend: buckets kept at most (LRU eviction)
 *   name = "api"            # bucket namespace; default: where the table is (server, location),
 *                           # so buckets outlive a reload; tables with one name share buckets
 *   log_interval = "10s"    # at most one log line per interval for zone/backend errors
 *   backend = "local"       # or "redis"; then:
 *   redis = "127.0.0.1:6379"      # an IP literal and port (no name lookups in a worker)
 *   redis_timeout = "100ms"
 *   on_backend_error = "allow"    # or "deny" (503) while Redis cannot answer
 *
 * A request takes one token. With none left it is answered 429 with Retry-After and the
 * RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers: Limit = burst, the capacity;
 * Remaining = whole tokens left; Reset = seconds until the bucket is full again). Admitted
 * requests carry the same headers, added in the response phase. Over T seconds a key that
 * keeps asking gets burst + rate * T / period requests through.
 *
 * delay = true is nginx's limit_req without nodelay: the same requests are admitted, but an
 * admitted request waits (paused, resumed from a timer) until the bucket would be full
 * again had it been the last one, (burst - tokens) / rate, so admitted requests leave
 * spaced at the rate with at most `burst` of them waiting; the rest are answered 429 at once.
 *
 * Local backend: each bucket is 16 bytes in torii's shared zone under
 * "rl|<name>|=<key>" (or "#<128-bit hash>" for long keys), changed atomically with
 * host->shared_update and stamped with host->now_ms (CLOCK_MONOTONIC, machine-wide), so the
 * limit is exact across the workers of a machine. A shared counter "rl#<name>" counts the
 * buckets made; past max_keys one worker (a lease "rl#<name>#sweep") walks the buckets,
 * drops every full one (an absent bucket reads as full, so nothing changes) and then the
 * least recently used ones down to 90% of max_keys. If the zone itself is full the request
 * goes through unlimited and the error is logged once per log_interval.
 *
 * Redis backend (redis.c): one atomic Lua script per request on a per-worker connection.
 *
 * On a tcp server ([server.plugins.ratelimit], ABI 1.2) the same bucket limits the rate of
 * new connections: the connect hook takes one token per connection; with none left the
 * connection is closed before any byte is read (logged 429), or with delay = true held
 * until its turn. `headers` has no meaning there. */
#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const torii_host_t *rl_host;
#define host rl_host

#define RL_DEFAULT_MAX_KEYS 4096
#define RL_ZONE_CAPACITY 16384 /* torii's shared zone, for every plugin together */
#define RL_ZONE_KEY_MAX 64

/* ---- small helpers -------------------------------------------------------------------- */

uint64_t rl_hash64(const char *p, size_t n, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a, then a 64-bit finaliser */
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

void rl_ref(rl_t *in) {
    in->refs++;
}

void rl_unref(rl_t *in) {
    if (--in->refs == 0 && in->destroyed) free(in);
}

void rl_note_error(rl_t *in, const char *fmt, ...) {
    uint64_t now = host->now_ms();
    if (in->logged && now - in->last_log_ms < (uint64_t)in->log_interval_ms) {
        in->suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (in->suppressed)
        host->log(TORII_LOG_WARN, "ratelimit \"%s\": %s (%llu more since the last report)",
                  in->name, msg, (unsigned long long)in->suppressed);
    else
        host->log(TORII_LOG_WARN, "ratelimit \"%s\": %s", in->name, msg);
    in->logged = 1;
    in->last_log_ms = now;
    in->suppressed = 0;
}

static int64_t ceil_seconds(double ms) {
    if (!(ms > 0)) return 0;
    double s = ceil(ms / 1000.0 - 1e-9);
    return s > 1e12 ? (int64_t)1e12 : (int64_t)s;
}

/* ---- verdicts and answers -------------------------------------------------------------- */

rl_outcome_t rl_decide(const rl_t *in, rl_ctx_t *ctx, double before, int taken) {
    rl_outcome_t out = {RL_ALLOW, 0, 0};
    double burst = (double)in->burst;
    if (before > burst) before = burst;
    double after = taken ? before - 1.0 : before;
    if (after < 0) after = 0;
    ctx->have = 1;
    ctx->remaining = (int64_t)floor(after + 1e-9);
    ctx->reset_s = ceil_seconds((burst - after) / in->rate_ms);
    if (!taken) {
        out.verdict = RL_REJECT;
        out.retry_s = ceil_seconds((1.0 - before) / in->rate_ms);
        if (out.retry_s < 1) out.retry_s = 1;
        return out;
    }
    if (in->delay) {
        /* When the bucket would be full again had this been the last request. */
        double wait = (burst - before) / in->rate_ms;
        if (wait >= 1.0) {
            out.verdict = RL_DELAY;
            out.delay_ms = (uint64_t)ceil(wait);
        }
    }
    return out;
}

/* Decimal digits of v (>= 0 in practice) into buf (24 bytes); snprintf costs more than the
 * rest of the plugin's work per request. */
static size_t fmt_i64(char *buf, size_t size, int64_t v) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < sizeof tmp);
    if (v < 0 && n < sizeof tmp) tmp[n++] = '-';
    if (n > size) n = size;
    for (size_t i = 0; i < n; ++i)
        buf[i] = tmp[n - 1 - i];
    return n;
}

void rl_respond_reject(const rl_t *in, torii_request_t *r, const rl_ctx_t *ctx, int64_t retry_s) {
    char retry[24], limit[24], remaining[24], reset[24];
    torii_header_t h[5];
    size_t n = 0;
    h[n++] =
        (torii_header_t){TORII_STR("Retry-After"), {retry, fmt_i64(retry, sizeof retry, retry_s)}};
    if (in->headers) {
        h[n++] = (torii_header_t){TORII_STR("RateLimit-Limit"),
                                  {limit, fmt_i64(limit, sizeof limit, in->burst)}};
        h[n++] =
            (torii_header_t){TORII_STR("RateLimit-Remaining"),
                             {remaining, fmt_i64(remaining, sizeof remaining, ctx->remaining)}};
        h[n++] = (torii_header_t){TORII_STR("RateLimit-Reset"),
                                  {reset, fmt_i64(reset, sizeof reset, ctx->reset_s)}};
    }
    h[n++] = (torii_header_t){TORII_STR("Content-Type"), TORII_STR("text/plain")};
    host->respond(r, 429, h, n, TORII_STR("429 Too Many Requests\n"));
}

void rl_respond_unavailable(torii_request_t *r) {
    torii_header_t h[] = {{TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    host->respond(r, 503, h, 1, TORII_STR("503 rate limit backend unavailable\n"));
}

/* Delayed requests of this worker. A list rather than loose timers so that everything
 * pending stays reachable. */
typedef struct rl_delay {
    struct rl_delay *prev, *next;
    rl_t *in;
    uint64_t token;
    torii_timer_t *timer;
} rl_delay_t;

static rl_delay_t *delays;

static void on_delay_done(void *arg) {
    rl_delay_t *d = arg;
    if (d->prev)
        d->prev->next = d->next;
    else
        delays = d->next;
    if (d->next) d->next->prev = d->prev;
    /* Harmless when the client left meanwhile (TORII_NOT_FOUND). */
    host->resume(d->token, TORII_CONTINUE);
    rl_unref(d->in);
    free(d);
}

void rl_delay_start(rl_t *in, uint64_t token, uint64_t delay_ms) {
    rl_delay_t *d = calloc(1, sizeof *d);
    if (!d) {
        host->resume(token, TORII_CONTINUE); /* cannot wait: let it through now */
        return;
    }
    d->in = in;
    d->token = token;
    rl_ref(in);
    d->next = delays;
    if (delays) delays->prev = d;
    delays = d;
    d->timer = host->timer_add(delay_ms, on_delay_done, d);
    if (!d->timer) on_delay_done(d);
}

void rl_resume_with(rl_t *in, uint64_t token, rl_ctx_t *ctx, rl_outcome_t out) {
    torii_request_t *r = host->token_request(token);
    if (!r) {
        host->resume(token, TORII_CONTINUE);
        return;
    }
    switch (out.verdict) {
        case RL_ALLOW:
            host->resume(token, TORII_CONTINUE);
            break;
        case RL_DELAY:
            rl_delay_start(in, token, out.delay_ms);
            break;
        case RL_REJECT:
            rl_respond_reject(in, r, ctx, out.retry_s);
            host->resume(token, TORII_RESPOND);
            break;
    }
}

static torii_action_t act(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, rl_outcome_t out) {
    switch (out.verdict) {
        case RL_ALLOW:
            return TORII_CONTINUE;
        case RL_DELAY:
            rl_delay_start(in, host->pause(r), out.delay_ms);
            return TORII_PAUSE;
        case RL_REJECT:
            rl_respond_reject(in, r, ctx, out.retry_s);
            return TORII_RESPOND;
    }
    return TORII_CONTINUE;
}

/* ---- the local backend: buckets in the shared zone ------------------------------------- */

typedef struct {
    double tokens;
    uint64_t last_ms; /* host->now_ms() of the last refill */
} bucket_t;

typedef struct {
    double rate_ms, burst;
    uint64_t now;
    int created, taken;
    double before;
} take_t;

static void refill(bucket_t *b, uint64_t now, double rate_ms, double burst) {
    /* Workers read the clock before taking the lock, so `now` may trail last_ms a little. */
    if (now > b->last_ms) {
        b->tokens += (double)(now - b->last_ms) * rate_ms;
        b->last_ms = now;
    }
    if (b->tokens > burst) b->tokens = burst;
}

/* Runs under the zone's lock. */
static void take_fn(void *value, size_t *len, void *arg) {
    take_t *t = arg;
    bucket_t b;
    if (*len == sizeof b) {
        memcpy(&b, value, sizeof b);
    } else {
        b.tokens = t->burst;
        b.last_ms = t->now;
        t->created = 1;
    }
    refill(&b, t->now, t->rate_ms, t->burst);
    t->before = b.tokens;
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        t->taken = 1;
    }
    memcpy(value, &b, sizeof b);
    *len = sizeof b;
}

static torii_str_t zone_key(const rl_t *in, torii_str_t key, char *buf) {
    size_t len = strlen(in->name);
    memcpy(buf, "rl|", 3);
    memcpy(buf + 3, in->name, len);
    len += 3;
    buf[len++] = '|';
    if (len + 1 + key.len <= RL_ZONE_KEY_MAX) {
        buf[len++] = '=';
        memcpy(buf + len, key.ptr, key.len);
        len += key.len;
    } else {
        uint64_t a = rl_hash64(key.ptr, key.len, 0),
                 b = rl_hash64(key.ptr, key.len, 0x9e3779b97f4a7c15ull);
        len += (size_t)snprintf(buf + len, RL_ZONE_KEY_MAX + 1 - len, "#%016llx%016llx",
                                (unsigned long long)a, (unsigned long long)b);
    }
    return (torii_str_t){buf, len};
}

typedef struct {
    char key[RL_ZONE_KEY_MAX];
    uint8_t len;
    uint8_t full;
    uint64_t last_ms;
} seen_t;

typedef struct {
    seen_t *items;
    size_t count, cap;
    uint64_t now;
    double rate_ms, burst;
} sweep_t;

/* Runs under the zone's lock: only copies. */
static void sweep_visit(torii_str_t key, int64_t counter, const void *value, size_t len,
                        void *arg) {
    sweep_t *s = arg;
    (void)counter;
    if (len != sizeof(bucket_t) || key.len > RL_ZONE_KEY_MAX) return;
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        seen_t *items = realloc(s->items, cap * sizeof(seen_t));
        if (!items) return;
        s->items = items;
        s->cap = cap;
    }
    bucket_t b;
    memcpy(&b, value, sizeof b);
    seen_t *e = &s->items[s->count++];
    memcpy(e->key, key.ptr, key.len);
    e->len = (uint8_t)key.len;
    e->last_ms = b.last_ms; /* last used */
    refill(&b, s->now, s->rate_ms, s->burst);
    e->full = b.tokens >= s->burst;
}

static int full_then_oldest(const void *pa, const void *pb) {
    const seen_t *a = pa, *b = pb;
    if (a->full != b->full) return a->full ? -1 : 1;
    return a->last_ms < b->last_ms ? -1 : a->last_ms > b->last_ms;
}

static void lease_fn(void *value, size_t *len, void *arg) {
    int *got = arg;
    if (*len == 0) {
        *(char *)value = 1;
        *len = 1;
        *got = 1;
    }
}

/* Over max_keys: drop full buckets, then the least recently used, down to 90%. One worker at
 * a time (a lease that expires after 2 s should its holder die). */
static void sweep(rl_t *in, torii_str_t count_key) {
    char lease[RL_ZONE_KEY_MAX + 1], prefix[RL_ZONE_KEY_MAX + 1];
    int ln = snprintf(lease, sizeof lease, "rl#%s#sweep", in->name);
    int pn = snprintf(prefix, sizeof prefix, "rl|%s|", in->name);
    int got = 0;
    torii_str_t lease_key = {lease, (size_t)ln};
    if (host->shared_update(lease_key, lease_fn, &got, 2000) != TORII_OK || !got) return;

    sweep_t s = {NULL, 0, 0, host->now_ms(), in->rate_ms, (double)in->burst};
    host->shared_each((torii_str_t){prefix, (size_t)pn}, sweep_visit, &s);
    size_t target = (size_t)(in->max_keys - (in->max_keys / 10 > 0 ? in->max_keys / 10 : 1));
    qsort(s.items, s.count, sizeof(seen_t), full_then_oldest);
    size_t left = s.count, dropped = 0;
    for (size_t i = 0; i < s.count; ++i) {
        if (!s.items[i].full && left <= target) break;
        host->kv_delete((torii_str_t){s.items[i].key, s.items[i].len});
        --left;
        ++dropped;
    }
    host->counter_add(count_key, (int64_t)left - host->counter_get(count_key));
    host->log(TORII_LOG_DEBUG, "ratelimit \"%s\": %zu buckets, %zu dropped (max_keys %lld)",
              in->name, s.count, dropped, (long long)in->max_keys);
    free(s.items);
    host->kv_delete(lease_key);
}

static torii_action_t local_access(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, torii_str_t key) {
    char buf[RL_ZONE_KEY_MAX + 1];
    torii_str_t zkey = zone_key(in, key, buf);
    take_t t = {in->rate_ms, (double)in->burst, host->now_ms(), 0, 0, 0};
    if (host->shared_update(zkey, take_fn, &t, 0) != TORII_OK) {
        rl_note_error(in,
                      "the shared zone is full: requests go through unlimited until it has room");
        return TORII_CONTINUE;
    }
    if (t.created) {
        char cbuf[RL_ZONE_KEY_MAX + 1];
        int n = snprintf(cbuf, sizeof cbuf, "rl#%s", in->name);
        torii_str_t count_key = {cbuf, (size_t)n};
        if (host->counter_add(count_key, 1) > in->max_keys) sweep(in, count_key);
    }
    return act(in, r, ctx, rl_decide(in, ctx, t.before, t.taken));
}

/* ---- hooks ----------------------------------------------------------------------------- */

static torii_action_t rl_access(void *instance, torii_request_t *r, void **req_ctx) {
    rl_t *in = instance;
    torii_str_t key;
    /* nginx's rule: a request whose key is empty is not limited. */
    if (host->template_expand(r, in->key, &key) != TORII_OK || key.len == 0) return TORII_CONTINUE;
    rl_ctx_t *ctx = host->req_alloc(r, sizeof *ctx);
    if (!ctx) return TORII_ERROR;
    memset(ctx, 0, sizeof *ctx);
    *req_ctx = ctx;
    if (in->redis) return rl_redis_access(in, r, ctx, key);
    return local_access(in, r, ctx, key);
}

static torii_action_t rl_response(void *instance, torii_request_t *r, void **req_ctx) {
    rl_t *in = instance;
    rl_ctx_t *ctx = *req_ctx;
    if (!in->headers || !ctx || !ctx->have) return TORII_CONTINUE;
    char buf[24];
    host->resp_set_header(r, TORII_STR("RateLimit-Limit"),
                          (torii_str_t){buf, fmt_i64(buf, sizeof buf, in->burst)});
    host->resp_set_header(r, TORII_STR("RateLimit-Remaining"),
                          (torii_str_t){buf, fmt_i64(buf, sizeof buf, ctx->remaining)});
    host->resp_set_header(r, TORII_STR("RateLimit-Reset"),
                          (torii_str_t){buf, fmt_i64(buf, sizeof buf, ctx->reset_s)});
    return TORII_CONTINUE;
}

/* ---- configuration --------------------------------------------------------------------- */

static unsigned tables_seen; /* default names "1", "2", ... in config order */
static unsigned live_instances;

static int copy_str(torii_str_t s, char *out, size_t size) {
    if (s.len >= size) return -1;
    memcpy(out, s.ptr, s.len);
    out[s.len] = 0;
    return 0;
}

static int valid_name(torii_str_t s) {
    if (s.len == 0 || s.len > 24) return 0;
    for (size_t i = 0; i < s.len; ++i) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* "127.0.0.1:6379" or "[::1]:6379": an IP literal, so that connecting never resolves names. */
static int parse_address(torii_str_t s, char *host_out, size_t host_size, int *port) {
    char text[96];
    if (copy_str(s, text, sizeof text) != 0) return -1;
    char *colon = strrchr(text, ':');
    if (!colon || colon == text) return -1;
    *colon = 0;
    char *h = text;
    if (*h == '[') {
        size_t n = strlen(h);
        if (n < 3 || h[n - 1] != ']') return -1;
        h[n - 1] = 0;
        ++h;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, h, addr) != 1 && inet_pton(AF_INET6, h, addr) != 1) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 1 || p > 65535) return -1;
    if (strlen(h) >= host_size) return -1;
    strcpy(host_out, h);
    *port = (int)p;
    return 0;
}

static int has_key(const torii_conf_t *conf, const char *key) {
    torii_str_t k;
    for (size_t i = 0; host->conf_key_at(conf, i, &k) == TORII_OK; ++i)
        if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0) return 1;
    return 0;
}

static void *rl_fail(rl_t *in) {
    free(in);
    return NULL;
}

static void *rl_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {
        "rate",          "period",           "burst",        "key",     "delay",
        "headers",       "max_keys",         "name",         "backend", "redis",
        "redis_timeout", "on_backend_error", "log_interval", NULL};
    (void)h;
    unsigned ordinal = ++tables_seen;
    if (host->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    rl_t *in = calloc(1, sizeof *in);
    if (!in) return NULL;

    int rc = host->conf_float(conf, "rate", &in->rate);
    if (rc == TORII_NOT_FOUND) {
        host->conf_error(conf, NULL, "rate is required: tokens per period, e.g. rate = 100");
        return rl_fail(in);
    }
    if (rc != TORII_OK) return rl_fail(in);
    if (!(in->rate > 0) || in->rate > 1e9) {
        host->conf_error(conf, "rate", "must be a number above 0");
        return rl_fail(in);
    }
    in->period_ms = 1000;
    rc = host->conf_duration_ms(conf, "period", &in->period_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->period_ms < 1) {
        host->conf_error(conf, "period", "must be at least 1ms");
        return rl_fail(in);
    }
    in->rate_ms = in->rate / (double)in->period_ms;

    in->burst = 1;
    rc = host->conf_int(conf, "burst", &in->burst);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->burst < 1 || in->burst > 1000000000) {
        host->conf_error(conf, "burst",
                         "must be an integer from 1 to 1000000000 (the bucket's capacity)");
        return rl_fail(in);
    }

    torii_str_t key = TORII_STR("$remote_addr");
    rc = host->conf_string(conf, "key", &key);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (key.len == 0) {
        host->conf_error(conf, "key", "must not be empty, e.g. key = \"$remote_addr\"");
        return rl_fail(in);
    }
    in->key = host->template_compile(conf, "key", key);
    if (!in->key) return rl_fail(in);

    if (host->conf_bool(conf, "delay", &in->delay) == TORII_EINVAL) return rl_fail(in);
    in->headers = 1;
    if (host->conf_bool(conf, "headers", &in->headers) == TORII_EINVAL) return rl_fail(in);

    torii_str_t name;
    rc = host->conf_string(conf, "name", &name);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (rc == TORII_OK) {
        if (!valid_name(name)) {
            host->conf_error(conf, "name", "must be 1 to 24 letters, digits, '_', '-' or '.'");
            return rl_fail(in);
        }
        copy_str(name, in->name, sizeof in->name);
    } else if (TORII_HOST_HAS(host, conf_scope) && host->conf_scope(conf, &name) == TORII_OK) {
        /* Named after where the table is used ('@' is not allowed in a written name), so the
         * next generation of a reload finds the same buckets in the zone (or in Redis). */
        snprintf(in->name, sizeof in->name, "@%016llx",
                 (unsigned long long)rl_hash64(name.ptr, name.len, 0));
    } else {
        snprintf(in->name, sizeof in->name, "%u", ordinal);
    }

    in->log_interval_ms = 10000;
    rc = host->conf_duration_ms(conf, "log_interval", &in->log_interval_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->log_interval_ms < 0) {
        host->conf_error(conf, "log_interval", "must not be negative");
        return rl_fail(in);
    }

    torii_str_t backend = TORII_STR("local");
    rc = host->conf_string(conf, "backend", &backend);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (backend.len == 5 && memcmp(backend.ptr, "redis", 5) == 0) {
        in->redis = 1;
    } else if (!(backend.len == 5 && memcmp(backend.ptr, "local", 5) == 0)) {
        host->conf_error(conf, "backend", "must be \"local\" or \"redis\"");
        return rl_fail(in);
    }

    static const char *const redis_only[] = {"redis", "redis_timeout", "on_backend_error", NULL};
    if (!in->redis) {
        in->max_keys = RL_DEFAULT_MAX_KEYS;
        rc = host->conf_int(conf, "max_keys", &in->max_keys);
        if (rc == TORII_EINVAL) return rl_fail(in);
        if (in->max_keys < 1 || in->max_keys > RL_ZONE_CAPACITY) {
            host->conf_error(conf, "max_keys", "must be from 1 to %d (the shared zone's size)",
                             RL_ZONE_CAPACITY);
            return rl_fail(in);
        }
        for (const char *const *k = redis_only; *k; ++k) {
            if (has_key(conf, *k)) {
                host->conf_error(conf, *k, "applies to backend = \"redis\" only");
                return rl_fail(in);
            }
        }
        live_instances++;
        return in;
    }

    if (has_key(conf, "max_keys")) {
        host->conf_error(conf, "max_keys",
                         "applies to backend = \"local\" only (Redis expires idle buckets itself)");
        return rl_fail(in);
    }
    torii_str_t addr = TORII_STR("127.0.0.1:6379");
    rc = host->conf_string(conf, "redis", &addr);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (parse_address(addr, in->redis_host, sizeof in->redis_host, &in->redis_port) != 0) {
        host->conf_error(
            conf, "redis",
            "expected an IP address and port, e.g. \"127.0.0.1:6379\" or \"[::1]:6379\"");
        return rl_fail(in);
    }
    copy_str(addr, in->redis_addr, sizeof in->redis_addr);
    in->redis_timeout_ms = 100;
    rc = host->conf_duration_ms(conf, "redis_timeout", &in->redis_timeout_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->redis_timeout_ms < 1) {
        host->conf_error(conf, "redis_timeout", "must be at least 1ms");
        return rl_fail(in);
    }
    torii_str_t policy = TORII_STR("allow");
    rc = host->conf_string(conf, "on_backend_error", &policy);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (policy.len == 4 && memcmp(policy.ptr, "deny", 4) == 0) {
        in->deny_on_error = 1;
    } else if (!(policy.len == 5 && memcmp(policy.ptr, "allow", 5) == 0)) {
        host->conf_error(conf, "on_backend_error", "must be \"allow\" or \"deny\"");
        return rl_fail(in);
    }
    live_instances++;
    return in;
}

static void rl_destroy(void *instance) {
    rl_t *in = instance;
    if (!in) return;
    /* Templates belong to the host. Timers and Redis calls still pending hold references. */
    in->destroyed = 1;
    if (in->refs == 0) free(in);
    if (--live_instances == 0) rl_redis_release();
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "ratelimit",
    .version = "1.0",
    .create = rl_create,
    .destroy = rl_destroy,
    .worker_init = NULL, /* Redis connections are made on first use, in the worker */
    .access = rl_access,
    .response = rl_response,
    .connect = rl_access, /* tcp servers: a connection takes a token as a request does */
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    rl_host = h;
    return &descriptor;
}
