/* circuit_breaker: what the plugin's files share. The types of a breaker (its state in the
 * shared zone, the config, its name and key, the per-request context), the operation a
 * state-machine step works on, and the functions each file gives the others. See
 * circuit_breaker.c for what the plugin does. */
#ifndef TORII_CIRCUIT_BREAKER_BREAKER_H
#define TORII_CIRCUIT_BREAKER_BREAKER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <torii/plugin.h>

/* Everything below is internal to this plugin's .so: hidden, so that the files reach each
 * other's globals directly rather than through the GOT (one load less per host-> call). */
#pragma GCC visibility push(hidden)

extern const torii_host_t *cb_host;
#define host cb_host

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
    uint32_t consecutive;  /* errors in a row (closed) */
    uint32_t gen;          /* half-open round; probes of older rounds no longer count */
    uint64_t since_ms;     /* when the current state began */
    uint64_t probe_at;     /* half-open: when the last probe was admitted */
    uint64_t head_tick;    /* tick (now / bucket width) of the newest bucket */
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
    uint8_t admitted; /* let through (not answered with the fallback) */
    uint8_t probe;    /* a half-open probe of the route's round `gen` */
    uint32_t gen;
    uint8_t t_probe; /* holds a probe place of round t_gen on target breaker t_id */
    uint32_t t_gen;
    cb_id_t t_id;
} cb_ctx_t;

/* ---- a state-machine step (breaker_state.c) ---------------------------------------------- */

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
static inline uint64_t since(uint64_t now, uint64_t then) {
    return now > then ? now - then : 0;
}

/* Idle breakers are forgotten (a closed breaker with an empty window is the same as none). */
static inline uint64_t state_ttl(const cb_conf_t *c) {
    int64_t t = c->cool_down_ms + c->probe_timeout_ms;
    if (c->window_ms > t) t = c->window_ms;
    return (uint64_t)t + 600000;
}

static inline int is_error_status(const cb_conf_t *c, int status) {
    return status >= 0 && status < 600 && (c->errors[status / 8] & (1u << (status % 8)));
}

static inline int same_id(const cb_id_t *a, const cb_id_t *b) {
    return a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len);
}

/* shared_update callbacks of the state machine; they run under the zone's lock (breaker_state.c) */
void cb_access_fn(void *value, size_t *len, void *arg);
void cb_route_outcome_fn(void *value, size_t *len, void *arg);
void cb_target_result_fn(void *value, size_t *len, void *arg);
void cb_target_release_fn(void *value, size_t *len, void *arg);
/* Logs and counts the transitions an operation made, outside the lock (breaker_state.c). */
void cb_report(const op_t *op);

/* names.c */
void cb_make_id(cb_id_t *id, torii_str_t server, torii_str_t location, torii_str_t target);
void cb_count(const cb_id_t *id, const char *event); /* shared counter "<key>|<event>" += 1 */

/* the hooks: config.c, route_breaker.c, target_breaker.c */
void *cb_create(const torii_host_t *h, const torii_conf_t *conf);
void cb_destroy(void *instance);
torii_action_t cb_access(void *instance, torii_request_t *r, void **req_ctx);
torii_action_t cb_log(void *instance, torii_request_t *r, void **req_ctx);
int cb_peer_admit(void *instance, torii_request_t *r, torii_str_t upstream, torii_str_t address);
void cb_peer_result(void *instance, torii_request_t *r, torii_str_t upstream, torii_str_t address,
                    torii_peer_outcome_t outcome, int status);
void cb_request_done(void *instance, torii_request_t *r, void *req_ctx);

/* GET /circuit_breakers (admin_view.c) */
void cb_admin_view(void *arg, torii_buf_t *out);

#pragma GCC visibility pop

#endif /* TORII_CIRCUIT_BREAKER_BREAKER_H */
