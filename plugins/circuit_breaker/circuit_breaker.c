/* circuit_breaker: stops sending traffic to a failing route, answers at once with a
 * fallback (degradation) or 503 while it is open, and lets a few probes through after a
 * cool-down to decide whether to close again.
 *
 *   [server.location.plugins.circuit_breaker]
 *   window = "10s"               # rolling window of the error ratio (10 buckets)
 *   min_requests = 20            # the ratio only counts with this many requests in the window
 *   error_ratio = 0.5            # open at this share of errors (0 = off)
 *   consecutive_failures = 5     # open after this many errors in a row (0 = off)
 *   errors = ["5xx"]             # statuses that are errors: "5xx"-style classes or codes
 *   cool_down = "30s"            # open this long, then half-open
 *   half_open_requests = 1       # probes let through when half-open; all must succeed
 *   probe_timeout = "30s"        # a probe with no outcome after this gives its place away
 *   scope = "route"              # "route" | "target" | "both"
 *   fallback = { status = 200, body = "{\"items\":[]}\n",
 *                headers = { Content-Type = "application/json" } }
 *
 * One breaker per route (server + location). Its state lives in the shared zone under
 * "cb|<server>|<location>" and is changed only with host->shared_update, so every worker
 * process sees and drives the same breaker. The access phase asks the breaker (closed:
 * pass; open: fallback; half-open: a limited number of probes pass, the rest get the
 * fallback); the log phase reports the outcome. An outcome is an error when the status is
 * in `errors`, or when the upstream gave no response at all (connect failure, reset,
 * timeout: torii's own 502/504), whatever `errors` says.
 *
 * scope "target" (or "both") also keeps a breaker per upstream target of the route, keyed
 * "cb|<server>|<location>@<address>". It works through the core's target hooks: peer_admit
 * (after the balancer picked a target, before torii connects) keeps the target out while its
 * breaker is open, and when half-open lets through at most half_open_requests probes; the
 * balancer then picks among the other targets (all kept out: torii answers 503). peer_result
 * reports the outcome of every attempt, retries included, so a failure hidden by a retry on
 * another target still counts against the target that failed. The probe place a request
 * holds on a target is remembered per request (a small table of this worker's live requests,
 * keyed by the request handle, emptied in request_done) so that an attempt that never
 * happens (another plugin kept the target out, the client left) gives its place back.
 *
 * State changes are logged (opened: warn; half-open, closed: info) and counted in shared
 * counters "cb|<id>|opened", "|half_opened", "|closed", "|rejected" (fallbacks served).
 * GET /circuit_breakers on the admin listener lists every breaker as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <torii/plugin.h>

#define CB_BUCKETS 10
#define CB_MAGIC 0x43420002u /* layout version: another one starts afresh */
#define CB_NAME_MAX 120
#define CB_KEY_MAX 64
#define FALLBACK_HEADERS_MAX 64

enum { CB_CLOSED = 0, CB_OPEN = 1, CB_HALF_OPEN = 2 };
enum { SCOPE_ROUTE = 1, SCOPE_TARGET = 2 };
enum { OUT_NEUTRAL = 0, OUT_OK = 1, OUT_ERROR = 2 };

/* One breaker as stored in the shared zone (at most 256 bytes). */
typedef struct {
    uint32_t magic;
    uint32_t window_ms; /* the config's window: another one (reload) resets the counts */
    uint8_t state;
    uint8_t name_len;
    uint16_t probes;   /* half-open: probes admitted in this round */
    uint16_t probe_ok; /* half-open: probes of this round that succeeded */
    uint16_t is_target;
    uint32_t consecutive; /* errors in a row (closed) */
    uint32_t gen;         /* half-open round; probes of older rounds no longer count */
    uint64_t since_ms;    /* when the current state began */
    uint64_t probe_at;    /* half-open: when the last probe was admitted */
    uint64_t head_tick;   /* tick (now / bucket width) of the newest bucket */
    uint32_t cool_down_ms; /* of the config that last touched it, for the admin view */
    uint32_t req[CB_BUCKETS];
    uint32_t err[CB_BUCKETS];
    char name[CB_NAME_MAX]; /* "server|location[@target]", for logs and the admin view */
} cb_state_t;

_Static_assert(sizeof(cb_state_t) <= 256, "a shared value holds at most 256 bytes");

typedef struct {
    int64_t window_ms, bucket_ms, cool_down_ms, probe_timeout_ms;
    int64_t min_requests, consecutive_failures, half_open_requests;
    double error_ratio;
    uint8_t errors[75]; /* bit per status 0..599 */
    int scope;
    int custom_fallback;
    int fallback_status;
    torii_str_t fallback_body;
    torii_header_t *fallback_headers; /* strings point into the config */
    size_t fallback_header_count;
} cb_conf_t;

typedef struct {
    char name[CB_NAME_MAX + 1]; /* display name, truncated */
    size_t name_len;
    char key[CB_KEY_MAX + 1]; /* shared-zone key of the state */
    size_t key_len;
} cb_id_t;

/* Per request, in request memory: what the access phase decided, and the probe place the
 * request holds on a half-open target. */
typedef struct cb_ctx {
    struct cb_ctx *next; /* in the live-request table (target scope) */
    const void *inst;
    const torii_request_t *r;
    uint8_t admitted; /* let through (not answered with the fallback) */
    uint8_t probe;    /* a half-open probe of the route's round `gen` */
    uint32_t gen;
    uint8_t t_probe; /* holds a probe place of round t_gen on target breaker t_id */
    uint32_t t_gen;
    cb_id_t t_id;
} cb_ctx_t;

static const torii_host_t *host;

/* This worker's live requests of target-scoped instances, so that peer_admit/peer_result
 * (which get no req_ctx) find the request's context. Single-threaded per worker. */
#define LIVE_BUCKETS 1024
static cb_ctx_t *live[LIVE_BUCKETS];

static size_t live_slot(const void *inst, const torii_request_t *r) {
    uintptr_t h = (uintptr_t)r ^ ((uintptr_t)inst >> 4);
    h ^= h >> 17;
    h *= 0x9e3779b1u;
    return (size_t)(h >> 7) % LIVE_BUCKETS;
}

static void live_add(cb_ctx_t *ctx) {
    size_t i = live_slot(ctx->inst, ctx->r);
    ctx->next = live[i];
    live[i] = ctx;
}

static cb_ctx_t *live_find(const void *inst, const torii_request_t *r) {
    for (cb_ctx_t *c = live[live_slot(inst, r)]; c; c = c->next)
        if (c->inst == inst && c->r == r) return c;
    return NULL;
}

static void live_remove(cb_ctx_t *ctx) {
    for (cb_ctx_t **p = &live[live_slot(ctx->inst, ctx->r)]; *p; p = &(*p)->next)
        if (*p == ctx) {
            *p = ctx->next;
            return;
        }
}

/* ---- names and keys --------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, torii_str_t s) {
    for (size_t i = 0; i < s.len; ++i) {
        h ^= (unsigned char)s.ptr[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void append(char *buf, size_t cap, size_t *len, torii_str_t s) {
    size_t n = s.len < cap - *len ? s.len : cap - *len;
    memcpy(buf + *len, s.ptr, n);
    *len += n;
}

/* "server|location" or "server|location@target"; the key is "cb|" + that when the longest
 * counter key ("cb|<id>|half_opened") fits in 64 bytes, else "cb|#" + a 64-bit hash. */
static void make_id(cb_id_t *id, torii_str_t server, torii_str_t location, torii_str_t target) {
    static const torii_str_t bar = {"|", 1}, at = {"@", 1};
    size_t full = server.len + 1 + location.len + (target.len ? 1 + target.len : 0);
    id->name_len = 0;
    append(id->name, CB_NAME_MAX, &id->name_len, server);
    append(id->name, CB_NAME_MAX, &id->name_len, bar);
    append(id->name, CB_NAME_MAX, &id->name_len, location);
    if (target.len) {
        append(id->name, CB_NAME_MAX, &id->name_len, at);
        append(id->name, CB_NAME_MAX, &id->name_len, target);
    }
    id->name[id->name_len] = 0;
    if (3 + full + sizeof("|half_opened") - 1 <= CB_KEY_MAX) {
        memcpy(id->key, "cb|", 3);
        memcpy(id->key + 3, id->name, id->name_len);
        id->key_len = 3 + id->name_len;
    } else {
        uint64_t h = 1469598103934665603ull;
        h = fnv(h, server);
        h = fnv(h, bar);
        h = fnv(h, location);
        if (target.len) {
            h = fnv(h, at);
            h = fnv(h, target);
        }
        id->key_len =
            (size_t)snprintf(id->key, sizeof id->key, "cb|#%016llx", (unsigned long long)h);
    }
    id->key[id->key_len] = 0;
}

static void count(const cb_id_t *id, const char *event) {
    char key[CB_KEY_MAX + 16];
    int n = snprintf(key, sizeof key, "%s|%s", id->key, event);
    if (n > 0 && (size_t)n <= CB_KEY_MAX) host->counter_add((torii_str_t){key, (size_t)n}, 1);
}

/* ---- the breaker (runs under the shared zone's lock: no shared-state calls in here) ----- */

typedef struct {
    uint8_t from, to;
    uint8_t why; /* WHY_* */
    uint32_t requests, errors, consecutive;
} transition_t;

enum { WHY_RATIO = 1, WHY_CONSECUTIVE, WHY_COOL_DOWN, WHY_PROBE_FAILED, WHY_PROBES_OK };

typedef struct {
    const cb_conf_t *c;
    const cb_id_t *id;
    int is_target;
    uint64_t now;
    /* log phase: the outcome and who reports it */
    int outcome;
    const cb_ctx_t *ctx;
    /* targets: the request already holds a probe place of round hold_gen (admit), or the
     * outcome is that of its probe of round hold_gen (result) */
    int holds;
    uint32_t hold_gen;
    /* results */
    int admit, probe, new_round;
    uint32_t gen;
    uint64_t retry_after_ms;
    transition_t tr[2];
    int ntr;
} op_t;

/* Milliseconds from `then` to `now`; 0 when another worker stored a slightly later time. */
static uint64_t since(uint64_t now, uint64_t then) {
    return now > then ? now - then : 0;
}

static void state_init(cb_state_t *s, size_t *len, const op_t *op) {
    if (*len == sizeof(cb_state_t) && s->magic == CB_MAGIC &&
        s->window_ms == (uint32_t)op->c->window_ms)
        return;
    memset(s, 0, sizeof *s);
    s->magic = CB_MAGIC;
    s->window_ms = (uint32_t)op->c->window_ms;
    s->state = CB_CLOSED;
    s->is_target = (uint16_t)op->is_target;
    s->since_ms = op->now;
    s->name_len = (uint8_t)op->id->name_len;
    memcpy(s->name, op->id->name, op->id->name_len);
    *len = sizeof(cb_state_t);
}

static void state_touch(cb_state_t *s, size_t *len, const op_t *op) {
    state_init(s, len, op);
    s->cool_down_ms = (uint32_t)op->c->cool_down_ms;
}

static void clear_window(cb_state_t *s) {
    memset(s->req, 0, sizeof s->req);
    memset(s->err, 0, sizeof s->err);
    s->consecutive = 0;
}

/* Moves the ring to `tick`, emptying the buckets that fell out of the window. */
static void advance(cb_state_t *s, uint64_t tick) {
    if (tick <= s->head_tick) return;
    uint64_t steps = tick - s->head_tick;
    if (steps >= CB_BUCKETS) {
        memset(s->req, 0, sizeof s->req);
        memset(s->err, 0, sizeof s->err);
    } else {
        for (uint64_t k = 1; k <= steps; ++k) {
            size_t slot = (size_t)((s->head_tick + k) % CB_BUCKETS);
            s->req[slot] = s->err[slot] = 0;
        }
    }
    s->head_tick = tick;
}

static void go(cb_state_t *s, op_t *op, int to, int why) {
    if (op->ntr < 2) {
        transition_t *t = &op->tr[op->ntr++];
        t->from = s->state;
        t->to = (uint8_t)to;
        t->why = (uint8_t)why;
        t->requests = t->errors = 0;
        for (size_t i = 0; i < CB_BUCKETS; ++i) {
            t->requests += s->req[i];
            t->errors += s->err[i];
        }
        t->consecutive = s->consecutive;
    }
    s->state = (uint8_t)to;
    s->since_ms = op->now;
    if (to == CB_HALF_OPEN) s->gen++;
    s->probes = s->probe_ok = 0;
    if (to == CB_OPEN || to == CB_CLOSED) clear_window(s);
}

/* Closed: counts the outcome and opens on a trigger. */
static void record(cb_state_t *s, op_t *op) {
    const cb_conf_t *c = op->c;
    uint64_t tick = op->now / (uint64_t)c->bucket_ms;
    advance(s, tick);
    size_t slot = (size_t)(tick % CB_BUCKETS);
    s->req[slot]++;
    if (op->outcome == OUT_ERROR) {
        s->err[slot]++;
        s->consecutive++;
        if (c->consecutive_failures > 0 && s->consecutive >= (uint64_t)c->consecutive_failures) {
            go(s, op, CB_OPEN, WHY_CONSECUTIVE);
            return;
        }
    } else {
        s->consecutive = 0;
    }
    /* Checked on successes too: the request that brings the window to min_requests may be
     * one. */
    if (c->error_ratio > 0) {
        uint64_t total = 0, errs = 0;
        for (size_t i = 0; i < CB_BUCKETS; ++i) {
            total += s->req[i];
            errs += s->err[i];
        }
        if (errs && total >= (uint64_t)c->min_requests &&
            (double)errs >= c->error_ratio * (double)total)
            go(s, op, CB_OPEN, WHY_RATIO);
    }
}

static void maybe_half_open(cb_state_t *s, op_t *op) {
    if (s->state == CB_OPEN && since(op->now, s->since_ms) >= (uint64_t)op->c->cool_down_ms)
        go(s, op, CB_HALF_OPEN, WHY_COOL_DOWN);
}

/* Access phase of a route breaker (pass, probe, or answer with the fallback), and peer_admit
 * of a target breaker (let the attempt go, as a probe when half-open, or keep it out). */
static void access_fn(void *value, size_t *len, void *arg) {
    cb_state_t *s = value;
    op_t *op = arg;
    const cb_conf_t *c = op->c;
    op->now = host->now_ms(); /* under the lock: times stored by the workers only grow */
    state_touch(s, len, op);
    maybe_half_open(s, op);
    op->gen = s->gen;
    if (s->state == CB_CLOSED) {
        op->admit = 1;
    } else if (s->state == CB_HALF_OPEN && op->holds && op->hold_gen == s->gen) {
        /* This request's probe comes back to the same target (a pooled connection the
         * target had closed is retried once): it keeps its place, it takes no other. */
        op->admit = op->probe = 1;
    } else if (s->state == CB_OPEN) {
        op->retry_after_ms = (uint64_t)c->cool_down_ms - since(op->now, s->since_ms);
    } else if (s->probes < (uint64_t)c->half_open_requests) {
        s->probes++;
        s->probe_at = op->now;
        op->admit = op->probe = 1;
    } else if (since(op->now, s->probe_at) >= (uint64_t)c->probe_timeout_ms) {
        /* The round's probes never reported (a worker died, or they are very slow): start
         * a new round. Late outcomes of the old one are ignored. */
        s->gen++;
        s->probes = 1;
        s->probe_ok = 0;
        s->probe_at = op->now;
        op->gen = s->gen;
        op->admit = op->probe = op->new_round = 1;
    } else {
        op->retry_after_ms = 1000;
    }
}

/* Log phase of a route breaker. */
static void route_outcome_fn(void *value, size_t *len, void *arg) {
    cb_state_t *s = value;
    op_t *op = arg;
    op->now = host->now_ms();
    state_touch(s, len, op);
    if (s->state == CB_CLOSED) {
        if (op->outcome != OUT_NEUTRAL) record(s, op);
        return;
    }
    if (s->state != CB_HALF_OPEN || !op->ctx->probe || op->ctx->gen != s->gen) return;
    if (op->outcome == OUT_NEUTRAL) {
        if (s->probes) s->probes--; /* did not reach the upstream: the place is free again */
    } else if (op->outcome == OUT_ERROR) {
        go(s, op, CB_OPEN, WHY_PROBE_FAILED);
    } else if (++s->probe_ok >= (uint64_t)op->c->half_open_requests) {
        go(s, op, CB_CLOSED, WHY_PROBES_OK);
    }
}

/* peer_result of a target breaker: one attempt's outcome. Closed: counted. Half-open: only
 * the outcome of a probe of the current round decides; anything else (an attempt admitted
 * while the breaker was still closed, a probe of an older round) is ignored, as are all
 * outcomes while open. */
static void target_result_fn(void *value, size_t *len, void *arg) {
    cb_state_t *s = value;
    op_t *op = arg;
    op->now = host->now_ms();
    state_touch(s, len, op);
    if (s->state == CB_CLOSED) {
        record(s, op);
    } else if (s->state == CB_HALF_OPEN && op->holds && op->hold_gen == s->gen) {
        if (op->outcome == OUT_ERROR)
            go(s, op, CB_OPEN, WHY_PROBE_FAILED);
        else if (++s->probe_ok >= (uint64_t)op->c->half_open_requests)
            go(s, op, CB_CLOSED, WHY_PROBES_OK);
    }
}

/* A probe place taken on a target whose attempt never happened: free it. */
static void target_release_fn(void *value, size_t *len, void *arg) {
    cb_state_t *s = value;
    op_t *op = arg;
    op->now = host->now_ms();
    state_touch(s, len, op);
    if (s->state == CB_HALF_OPEN && op->hold_gen == s->gen && s->probes) s->probes--;
}

/* ---- reporting transitions (outside the lock) ------------------------------------------ */

static void fmt_ms(char *buf, size_t cap, int64_t ms) {
    if (ms % 1000 == 0)
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, cap, "%lldms", (long long)ms);
}

static void report(const op_t *op) {
    const cb_conf_t *c = op->c;
    const char *what = op->is_target ? "target breaker" : "breaker";
    char cool[32];
    fmt_ms(cool, sizeof cool, c->cool_down_ms);
    for (int i = 0; i < op->ntr; ++i) {
        const transition_t *t = &op->tr[i];
        char d[32];
        switch (t->why) {
            case WHY_RATIO:
                fmt_ms(d, sizeof d, c->window_ms);
                host->log(TORII_LOG_WARN,
                          "circuit_breaker: %s \"%s\" opened: %u of %u requests failed in the "
                          "last %s (error_ratio %.2f); half-open in %s",
                          what, op->id->name, t->errors, t->requests, d, c->error_ratio, cool);
                break;
            case WHY_CONSECUTIVE:
                host->log(TORII_LOG_WARN,
                          "circuit_breaker: %s \"%s\" opened: %u consecutive failures; half-open "
                          "in %s",
                          what, op->id->name, t->consecutive, cool);
                break;
            case WHY_PROBE_FAILED:
                host->log(TORII_LOG_WARN,
                          "circuit_breaker: %s \"%s\" opened again: a half-open probe failed; "
                          "half-open in %s",
                          what, op->id->name, cool);
                break;
            case WHY_COOL_DOWN:
                host->log(TORII_LOG_INFO,
                          "circuit_breaker: %s \"%s\" half-open after %s: letting through up to "
                          "%lld probe(s)",
                          what, op->id->name, cool, (long long)c->half_open_requests);
                break;
            case WHY_PROBES_OK:
                host->log(TORII_LOG_INFO,
                          "circuit_breaker: %s \"%s\" closed: %lld probe(s) succeeded", what,
                          op->id->name, (long long)c->half_open_requests);
                break;
        }
        count(op->id, t->to == CB_OPEN        ? "opened"
                      : t->to == CB_HALF_OPEN ? "half_opened"
                                              : "closed");
    }
    if (op->new_round) {
        fmt_ms(cool, sizeof cool, c->probe_timeout_ms);
        host->log(TORII_LOG_INFO,
                  "circuit_breaker: %s \"%s\": half-open probes gave no outcome within %s; "
                  "letting new probes through",
                  what, op->id->name, cool);
    }
}

/* ---- config ------------------------------------------------------------------------------ */

static int has_key(const torii_conf_t *conf, const char *key) {
    torii_str_t k;
    size_t n = strlen(key);
    for (size_t i = 0; host->conf_key_at(conf, i, &k) == TORII_OK; ++i)
        if (k.len == n && !memcmp(k.ptr, key, n)) return 1;
    return 0;
}

/* `errors`: codes and classes as strings. The ABI reads arrays of strings only
 * (conf_array_string), so 500 must be written "500". An empty array leaves only the
 * responses that never came (connect failures, timeouts) as errors. */
static int parse_errors(const torii_conf_t *conf, cb_conf_t *c) {
    if (!has_key(conf, "errors")) return TORII_OK;
    size_t n = host->conf_array_size(conf, "errors"); /* not an array: error recorded */
    memset(c->errors, 0, sizeof c->errors);
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "errors", i, &s) != TORII_OK) return TORII_EINVAL;
        if (s.len == 3 && s.ptr[0] >= '1' && s.ptr[0] <= '5' &&
            (s.ptr[1] == 'x' || s.ptr[1] == 'X') && (s.ptr[2] == 'x' || s.ptr[2] == 'X')) {
            int base = (s.ptr[0] - '0') * 100;
            for (int code = base; code < base + 100; ++code)
                c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
            continue;
        }
        int code = 0, ok = s.len == 3;
        for (size_t k = 0; ok && k < s.len; ++k) {
            if (s.ptr[k] < '0' || s.ptr[k] > '9')
                ok = 0;
            else
                code = code * 10 + (s.ptr[k] - '0');
        }
        if (!ok || code < 100 || code > 599)
            return host->conf_error(conf, "errors",
                                    "\"%.*s\" is not a status (100-599) or a class such as \"5xx\"",
                                    (int)(s.len > 40 ? 40 : s.len), s.ptr);
        c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
    }
    return TORII_OK;
}

static int valid_name(torii_str_t s) {
    if (!s.len) return 0;
    for (size_t i = 0; i < s.len; ++i) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch <= ' ' || ch == ':' || ch >= 0x7f) return 0;
    }
    return 1;
}

static int valid_value(torii_str_t s) {
    for (size_t i = 0; i < s.len; ++i)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == 0) return 0;
    return 1;
}

static int parse_fallback(const torii_conf_t *conf, cb_conf_t *c) {
    c->fallback_status = 503;
    if (!has_key(conf, "fallback")) return TORII_OK;
    const torii_conf_t *f = host->conf_table(conf, "fallback");
    if (!f) return TORII_EINVAL; /* not a table: conf_table recorded the error */
    static const char *const keys[] = {"status", "body", "headers", NULL};
    if (host->conf_allow_only(f, keys) != TORII_OK) return TORII_EINVAL;
    c->custom_fallback = 1;
    int64_t status;
    int rc = host->conf_int(f, "status", &status);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK) {
        if (status < 200 || status > 599)
            return host->conf_error(f, "status", "must be a final status, 200 to 599");
        c->fallback_status = (int)status;
    }
    rc = host->conf_string(f, "body", &c->fallback_body);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_NOT_FOUND) c->fallback_body = (torii_str_t){"", 0};
    if (c->fallback_body.len && (c->fallback_status == 204 || c->fallback_status == 304))
        return host->conf_error(f, "body", "a %d answer has no body", c->fallback_status);
    if (!has_key(f, "headers")) return TORII_OK;
    const torii_conf_t *h = host->conf_table(f, "headers");
    if (!h) return TORII_EINVAL;
    size_t n = 0;
    torii_str_t k;
    while (host->conf_key_at(h, n, &k) == TORII_OK)
        ++n;
    if (n > FALLBACK_HEADERS_MAX)
        return host->conf_error(f, "headers", "at most %d headers", FALLBACK_HEADERS_MAX);
    c->fallback_headers = calloc(n + 1, sizeof(torii_header_t));
    if (!c->fallback_headers) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        host->conf_key_at(h, i, &k);
        char name[128];
        if (k.len >= sizeof name || !valid_name(k))
            return host->conf_error(h, NULL, "\"%.*s\" is not a header name",
                                    (int)(k.len > 40 ? 40 : k.len), k.ptr);
        memcpy(name, k.ptr, k.len);
        name[k.len] = 0;
        torii_str_t v;
        if (host->conf_string(h, name, &v) != TORII_OK)
            return host->conf_error(h, name, "expected a string value");
        if (!valid_value(v))
            return host->conf_error(h, name, "a header value cannot hold CR, LF or NUL");
        c->fallback_headers[c->fallback_header_count++] = (torii_header_t){k, v};
    }
    return TORII_OK;
}

/* An optional duration in [lo, hi] ms, or the default. */
static int get_duration(const torii_conf_t *conf, const char *key, int64_t dflt, int64_t lo,
                        int64_t hi, int64_t *out) {
    *out = dflt;
    int rc = host->conf_duration_ms(conf, key, out);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK && (*out < lo || *out > hi)) {
        char a[32], b[32];
        fmt_ms(a, sizeof a, lo);
        fmt_ms(b, sizeof b, hi);
        return host->conf_error(conf, key, "must be between %s and %s", a, b);
    }
    return TORII_OK;
}

static int get_int(const torii_conf_t *conf, const char *key, int64_t dflt, int64_t lo, int64_t hi,
                   int64_t *out) {
    *out = dflt;
    int rc = host->conf_int(conf, key, out);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK && (*out < lo || *out > hi))
        return host->conf_error(conf, key, "must be between %lld and %lld", (long long)lo,
                                (long long)hi);
    return TORII_OK;
}

static void cb_destroy(void *instance);
static void admin_view(void *arg, torii_buf_t *out);

static void *cb_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"window",
                                       "min_requests",
                                       "error_ratio",
                                       "consecutive_failures",
                                       "errors",
                                       "cool_down",
                                       "half_open_requests",
                                       "probe_timeout",
                                       "fallback",
                                       "scope",
                                       NULL};
    (void)h;
    cb_conf_t *c = calloc(1, sizeof(cb_conf_t));
    if (!c) return NULL;
    /* Defaults: every 5xx is an error. */
    for (int code = 500; code < 600; ++code)
        c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
    c->scope = SCOPE_ROUTE;
    c->error_ratio = 0.5;
    int bad = host->conf_allow_only(conf, keys) != TORII_OK;
    bad |= get_duration(conf, "window", 10000, CB_BUCKETS, 3600000, &c->window_ms) != TORII_OK;
    bad |= get_int(conf, "min_requests", 20, 1, 1000000000, &c->min_requests) != TORII_OK;
    bad |= get_int(conf, "consecutive_failures", 5, 0, 1000000000, &c->consecutive_failures) !=
           TORII_OK;
    bad |= get_int(conf, "half_open_requests", 1, 1, 1000, &c->half_open_requests) != TORII_OK;
    bad |= get_duration(conf, "cool_down", 30000, 1, 86400000, &c->cool_down_ms) != TORII_OK;
    bad |=
        get_duration(conf, "probe_timeout", 30000, 1, 86400000, &c->probe_timeout_ms) != TORII_OK;
    int rc = host->conf_float(conf, "error_ratio", &c->error_ratio);
    if (rc == TORII_EINVAL)
        bad = 1;
    else if (rc == TORII_OK && !(c->error_ratio >= 0 && c->error_ratio <= 1))
        bad = host->conf_error(conf, "error_ratio", "must be between 0 (off) and 1") != TORII_OK;
    torii_str_t scope;
    rc = host->conf_string(conf, "scope", &scope);
    if (rc == TORII_EINVAL)
        bad = 1;
    else if (rc == TORII_OK) {
        if (scope.len == 5 && !memcmp(scope.ptr, "route", 5))
            c->scope = SCOPE_ROUTE;
        else if (scope.len == 6 && !memcmp(scope.ptr, "target", 6))
            c->scope = SCOPE_TARGET;
        else if (scope.len == 4 && !memcmp(scope.ptr, "both", 4))
            c->scope = SCOPE_ROUTE | SCOPE_TARGET;
        else
            bad = host->conf_error(conf, "scope", "must be \"route\", \"target\" or \"both\"") !=
                  TORII_OK;
    }
    bad |= parse_errors(conf, c) != TORII_OK;
    bad |= parse_fallback(conf, c) != TORII_OK;
    if (!bad && c->error_ratio == 0 && c->consecutive_failures == 0)
        bad = host->conf_error(conf, NULL,
                               "error_ratio = 0 and consecutive_failures = 0: the "
                               "breaker could never open") != TORII_OK;
    if (bad) {
        cb_destroy(c);
        return NULL;
    }
    c->bucket_ms = c->window_ms / CB_BUCKETS;
    /* One view for every instance: taken already (another instance, another config) is fine. */
    host->admin_register("/circuit_breakers", "application/json", admin_view, NULL);
    return c;
}

static void cb_destroy(void *instance) {
    cb_conf_t *c = instance;
    if (!c) return;
    free(c->fallback_headers);
    free(c);
}

/* Idle breakers are forgotten (a closed breaker with an empty window is the same as none). */
static uint64_t state_ttl(const cb_conf_t *c) {
    int64_t t = c->cool_down_ms + c->probe_timeout_ms;
    if (c->window_ms > t) t = c->window_ms;
    return (uint64_t)t + 600000;
}

/* ---- hooks ------------------------------------------------------------------------------ */

static torii_action_t fallback(const cb_conf_t *c, torii_request_t *r, uint64_t retry_after_ms) {
    if (c->custom_fallback) {
        torii_header_t hs[FALLBACK_HEADERS_MAX + 1];
        size_t n = 0;
        int has_type = 0;
        for (size_t i = 0; i < c->fallback_header_count; ++i) {
            hs[n++] = c->fallback_headers[i];
            torii_str_t nm = c->fallback_headers[i].name;
            if (nm.len == 12 && !strncasecmp(nm.ptr, "content-type", 12)) has_type = 1;
        }
        if (!has_type && c->fallback_body.len)
            hs[n++] = (torii_header_t){TORII_STR("Content-Type"), TORII_STR("text/plain")};
        if (host->respond(r, c->fallback_status, hs, n, c->fallback_body) != TORII_OK)
            return TORII_ERROR;
        return TORII_RESPOND;
    }
    char *secs = host->req_alloc(r, 24);
    if (!secs) return TORII_ERROR;
    uint64_t seconds = (retry_after_ms + 999) / 1000;
    int len = snprintf(secs, 24, "%llu", (unsigned long long)(seconds ? seconds : 1));
    torii_header_t hs[2] = {{TORII_STR("Retry-After"), {secs, (size_t)len}},
                            {TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    if (host->respond(r, 503, hs, 2,
                      TORII_STR("503 Service Unavailable: circuit breaker open\n")) != TORII_OK)
        return TORII_ERROR;
    return TORII_RESPOND;
}

static torii_action_t cb_access(void *instance, torii_request_t *r, void **req_ctx) {
    const cb_conf_t *c = instance;
    cb_ctx_t *ctx = host->req_alloc(r, sizeof(cb_ctx_t));
    if (!ctx) return TORII_ERROR;
    memset(ctx, 0, sizeof *ctx);
    *req_ctx = ctx;
    if (c->scope & SCOPE_TARGET) { /* peer_admit/peer_result find it here */
        ctx->inst = c;
        ctx->r = r;
        live_add(ctx);
    }
    if (!(c->scope & SCOPE_ROUTE)) {
        ctx->admitted = 1;
        return TORII_CONTINUE;
    }
    cb_id_t id;
    make_id(&id, host->req_server(r), host->req_location(r), (torii_str_t){"", 0});
    op_t op;
    memset(&op, 0, sizeof op);
    op.c = c;
    op.id = &id;
    op.now = host->now_ms();
    if (host->shared_update((torii_str_t){id.key, id.key_len}, access_fn, &op, state_ttl(c)) !=
        TORII_OK) {
        /* The shared zone is full: fail open, as a breaker with no state is closed. */
        ctx->admitted = 1;
        return TORII_CONTINUE;
    }
    report(&op);
    if (op.admit) {
        ctx->admitted = 1;
        ctx->probe = (uint8_t)op.probe;
        ctx->gen = op.gen;
        return TORII_CONTINUE;
    }
    count(&id, "rejected");
    return fallback(c, r, op.retry_after_ms);
}

static int is_error_status(const cb_conf_t *c, int status) {
    return status >= 0 && status < 600 && (c->errors[status / 8] & (1u << (status % 8)));
}

static torii_action_t cb_log(void *instance, torii_request_t *r, void **req_ctx) {
    const cb_conf_t *c = instance;
    const cb_ctx_t *ctx = *req_ctx;
    if (!ctx || !ctx->admitted) return TORII_CONTINUE; /* answered by us, or never admitted */
    if (!(c->scope & SCOPE_ROUTE)) return TORII_CONTINUE; /* targets learn from peer_result */
    int status = host->resp_status(r);
    torii_str_t addr = {"", 0}, rt;
    int went_upstream = host->var(r, TORII_STR("upstream_addr"), &addr) == TORII_OK && addr.len;
    /* A target was tried but no response head came back: connect failure, reset, timeout. */
    int no_response =
        went_upstream && host->var(r, TORII_STR("upstream_response_time"), &rt) != TORII_OK;
    int outcome;
    if (status == 499 && no_response)
        outcome = OUT_NEUTRAL; /* the client left before the upstream answered */
    else if (no_response || is_error_status(c, status))
        outcome = OUT_ERROR;
    else if (went_upstream && status > 0)
        outcome = OUT_OK;
    else
        outcome = OUT_NEUTRAL; /* not proxied: another plugin answered */

    /* A neutral outcome only matters to the route when it frees a probe's place. */
    if (outcome != OUT_NEUTRAL || ctx->probe) {
        op_t op;
        cb_id_t id;
        make_id(&id, host->req_server(r), host->req_location(r), (torii_str_t){"", 0});
        memset(&op, 0, sizeof op);
        op.c = c;
        op.id = &id;
        op.now = host->now_ms();
        op.outcome = outcome;
        op.ctx = ctx;
        if (host->shared_update((torii_str_t){id.key, id.key_len}, route_outcome_fn, &op,
                                state_ttl(c)) == TORII_OK)
            report(&op);
    }
    return TORII_CONTINUE;
}

/* ---- per-target hooks ------------------------------------------------------------------- */

static int same_id(const cb_id_t *a, const cb_id_t *b) {
    return a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len);
}

/* Gives back the probe place the request holds on a target (its attempt never happened). */
static void release_probe(const cb_conf_t *c, cb_ctx_t *ctx) {
    if (!ctx->t_probe) return;
    ctx->t_probe = 0;
    op_t op;
    memset(&op, 0, sizeof op);
    op.c = c;
    op.id = &ctx->t_id;
    op.is_target = 1;
    op.hold_gen = ctx->t_gen;
    host->shared_update((torii_str_t){ctx->t_id.key, ctx->t_id.key_len}, target_release_fn, &op,
                        state_ttl(c));
}

static int cb_peer_admit(void *instance, torii_request_t *r, torii_str_t upstream,
                         torii_str_t address) {
    (void)upstream;
    const cb_conf_t *c = instance;
    if (!c || !(c->scope & SCOPE_TARGET)) return 0;
    cb_ctx_t *ctx = live_find(c, r);
    cb_id_t id;
    make_id(&id, host->req_server(r), host->req_location(r), address);
    op_t op;
    memset(&op, 0, sizeof op);
    op.c = c;
    op.id = &id;
    op.is_target = 1;
    op.now = host->now_ms();
    if (ctx && ctx->t_probe) {
        if (same_id(&ctx->t_id, &id)) {
            op.holds = 1;
            op.hold_gen = ctx->t_gen;
        } else {
            release_probe(c, ctx); /* admitted earlier, but never tried (another plugin) */
        }
    }
    if (host->shared_update((torii_str_t){id.key, id.key_len}, access_fn, &op, state_ttl(c)) !=
        TORII_OK)
        return 0; /* the shared zone is full: fail open */
    report(&op);
    if (!op.admit) {
        count(&id, "rejected");
        return 1;
    }
    if (op.probe && ctx) {
        ctx->t_probe = 1;
        ctx->t_gen = op.gen;
        ctx->t_id = id;
    }
    return 0;
}

static void cb_peer_result(void *instance, torii_request_t *r, torii_str_t upstream,
                           torii_str_t address, torii_peer_outcome_t outcome, int status) {
    (void)upstream;
    const cb_conf_t *c = instance;
    if (!c || !(c->scope & SCOPE_TARGET)) return;
    cb_ctx_t *ctx = live_find(c, r);
    cb_id_t id;
    make_id(&id, host->req_server(r), host->req_location(r), address);
    op_t op;
    memset(&op, 0, sizeof op);
    op.c = c;
    op.id = &id;
    op.is_target = 1;
    op.now = host->now_ms();
    op.outcome = outcome != TORII_PEER_OK || is_error_status(c, status) ? OUT_ERROR : OUT_OK;
    if (ctx && ctx->t_probe && same_id(&ctx->t_id, &id)) {
        op.holds = 1; /* this attempt was the request's probe: its outcome decides */
        op.hold_gen = ctx->t_gen;
        ctx->t_probe = 0;
    }
    if (host->shared_update((torii_str_t){id.key, id.key_len}, target_result_fn, &op,
                            state_ttl(c)) == TORII_OK)
        report(&op);
}

static void cb_request_done(void *instance, torii_request_t *r, void *req_ctx) {
    (void)r;
    cb_ctx_t *ctx = req_ctx;
    if (!ctx || !ctx->inst) return;
    release_probe(instance, ctx); /* a probe that never reported: the client left */
    live_remove(ctx);
}

/* ---- admin view: GET /circuit_breakers ---------------------------------------------------- */

typedef struct {
    char key[CB_KEY_MAX + 1];
    cb_state_t s;
} seen_t;

typedef struct {
    seen_t *items;
    size_t count, cap;
} seen_list_t;

static void collect(torii_str_t key, int64_t counter, const void *value, size_t len, void *arg) {
    (void)counter;
    seen_list_t *l = arg;
    const cb_state_t *s = value;
    if (len != sizeof(cb_state_t) || s->magic != CB_MAGIC || key.len > CB_KEY_MAX) return;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        seen_t *n = realloc(l->items, cap * sizeof(seen_t));
        if (!n) return;
        l->items = n;
        l->cap = cap;
    }
    seen_t *e = &l->items[l->count++];
    memcpy(e->key, key.ptr, key.len);
    e->key[key.len] = 0;
    memcpy(&e->s, value, sizeof(cb_state_t));
}

static void put(torii_buf_t *out, const char *text) {
    host->buf_append(out, (torii_str_t){text, strlen(text)});
}

static void put_json_string(torii_buf_t *out, const char *s, size_t n) {
    char buf[8];
    put(out, "\"");
    for (size_t i = 0; i < n; ++i) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[0] = '\\';
            buf[1] = (char)ch;
            buf[2] = 0;
        } else if (ch < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", ch);
        } else {
            buf[0] = (char)ch;
            buf[1] = 0;
        }
        put(out, buf);
    }
    put(out, "\"");
}

static int64_t counter_of(const char *key, const char *event) {
    char k[CB_KEY_MAX + 16];
    int n = snprintf(k, sizeof k, "%s|%s", key, event);
    if (n <= 0 || (size_t)n > CB_KEY_MAX) return 0;
    return host->counter_get((torii_str_t){k, (size_t)n});
}

static void admin_view(void *arg, torii_buf_t *out) {
    (void)arg;
    seen_list_t l = {NULL, 0, 0};
    host->shared_each(TORII_STR("cb|"), collect, &l);
    uint64_t now = host->now_ms();
    static const char *const names[] = {"closed", "open", "half_open"};
    put(out, "{\"breakers\":[");
    for (size_t i = 0; i < l.count; ++i) {
        const cb_state_t *s = &l.items[i].s;
        /* Counts of the window as of now: buckets older than the window do not count. */
        uint64_t bucket = s->window_ms / CB_BUCKETS ? s->window_ms / CB_BUCKETS : 1;
        uint64_t now_tick = now / bucket, reqs = 0, errs = 0;
        for (uint64_t k = 0; k < CB_BUCKETS; ++k) {
            if (k > s->head_tick) break;
            uint64_t tick = s->head_tick - k;
            if (now_tick >= tick + CB_BUCKETS) break;
            reqs += s->req[tick % CB_BUCKETS];
            errs += s->err[tick % CB_BUCKETS];
        }
        char num[512];
        put(out, i ? ",{\"name\":" : "{\"name\":");
        put_json_string(out, s->name, s->name_len < CB_NAME_MAX ? s->name_len : CB_NAME_MAX);
        put(out, ",\"key\":");
        put_json_string(out, l.items[i].key, strlen(l.items[i].key));
        /* A target breaker's address: what follows the last '@' of its name. */
        size_t nl = s->name_len < CB_NAME_MAX ? s->name_len : CB_NAME_MAX, at = nl;
        while (s->is_target && at > 0 && s->name[at - 1] != '@')
            --at;
        put(out, ",\"target\":");
        if (s->is_target && at > 0)
            put_json_string(out, s->name + at, nl - at);
        else
            put(out, "null");
        /* Open: how long until it half-opens (and admits probes again). */
        uint64_t in_state = since(now, s->since_ms);
        if (s->state == CB_OPEN)
            snprintf(num, sizeof num, ",\"half_open_in_ms\":%llu",
                     (unsigned long long)(in_state < s->cool_down_ms ? s->cool_down_ms - in_state
                                                                     : 0));
        else
            snprintf(num, sizeof num, ",\"half_open_in_ms\":null");
        put(out, num);
        snprintf(num, sizeof num,
                 ",\"scope\":\"%s\",\"state\":\"%s\",\"in_state_ms\":%llu,\"window_requests\":%llu,"
                 "\"window_errors\":%llu,\"consecutive_failures\":%u,\"probes\":%u,"
                 "\"probe_successes\":%u,\"opened\":%lld,\"half_opened\":%lld,\"closed\":%lld,"
                 "\"rejected\":%lld}",
                 s->is_target ? "target" : "route", s->state < 3 ? names[s->state] : "?",
                 (unsigned long long)in_state, (unsigned long long)reqs,
                 (unsigned long long)errs, s->consecutive, s->probes, s->probe_ok,
                 (long long)counter_of(l.items[i].key, "opened"),
                 (long long)counter_of(l.items[i].key, "half_opened"),
                 (long long)counter_of(l.items[i].key, "closed"),
                 (long long)counter_of(l.items[i].key, "rejected"));
        put(out, num);
    }
    put(out, "]}\n");
    free(l.items);
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "circuit_breaker",
    .version = "1.0",
    .create = cb_create,
    .destroy = cb_destroy,
    .worker_init = NULL, /* all state is in the shared zone */
    .access = cb_access,
    .log = cb_log,
    .request_done = cb_request_done, /* the context lives in request memory; unlinks it */
    .peer_admit = cb_peer_admit,
    .peer_result = cb_peer_result,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    if (!TORII_HOST_HAS(h, shared_each)) {
        h->log(TORII_LOG_ERROR, "circuit_breaker: this torii lacks shared_update/shared_each");
        return NULL;
    }
    host = h;
    return &descriptor;
}
