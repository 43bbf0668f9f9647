/* ratelimit: what the plugin's files share: ratelimit.c (hooks, references, error log),
 * config.c, answer.c (verdicts, answers, headers, delays), local_bucket.c (the shared-zone
 * backend) and redis.c (the Redis backend). See ratelimit.c for the plugin's description. */
#ifndef TORII_RATELIMIT_H
#define TORII_RATELIMIT_H

#include <torii/plugin.h>

/* Everything below is internal to this plugin's .so: hidden, so that the files reach each
 * other's globals directly rather than through the GOT (one load less per host-> call). */
#pragma GCC visibility push(hidden)

extern const torii_host_t *rl_host;
#define host rl_host /* the name every plugin uses for the table */

#define RL_DEFAULT_MAX_KEYS 4096
#define RL_ZONE_CAPACITY 16384 /* torii's shared zone, for every plugin together */
#define RL_ZONE_KEY_MAX 64

typedef struct rl_conn rl_conn_t;

/* One configured use (a server or location table). The configuration fields are set in
 * create() and never change; the "per worker" ones are each worker's own copy (the instance
 * is made before the workers fork). */
typedef struct rl {
    double rate; /* tokens per period */
    int64_t period_ms;
    double rate_ms; /* tokens per millisecond */
    int64_t burst;  /* bucket capacity, >= 1 */
    torii_template_t *key;
    int delay;   /* delay = true: queue instead of answering 429 at once */
    int headers; /* RateLimit-* headers on */
    int64_t max_keys;
    char name[32];       /* bucket namespace */
    int redis;           /* backend = "redis" */
    char redis_host[64]; /* an IP literal, for hiredis */
    int redis_port;
    char redis_addr[80]; /* as configured, for logs */
    int64_t redis_timeout_ms;
    int deny_on_error; /* on_backend_error = "deny" */
    int64_t log_interval_ms;

    /* per worker */
    rl_conn_t *conn;      /* the Redis connection of this worker, found lazily */
    uint64_t last_log_ms; /* last backend/zone error written to the log */
    int logged;           /* last_log_ms is set */
    uint64_t suppressed;  /* errors not written since */
    int refs;             /* pending timers and Redis calls holding the instance */
    int destroyed;        /* destroy() ran; the last unref frees */
} rl_t;

/* Per request (request memory): what the response phase turns into headers. */
typedef struct rl_ctx {
    int have;
    int64_t remaining;
    int64_t reset_s;
} rl_ctx_t;

/* What a bucket decided for one request. */
typedef enum { RL_ALLOW, RL_DELAY, RL_REJECT } rl_verdict_t;

typedef struct rl_outcome {
    rl_verdict_t verdict;
    uint64_t delay_ms; /* RL_DELAY */
    int64_t retry_s;   /* RL_REJECT: Retry-After */
} rl_outcome_t;

void rl_ref(rl_t *in);
void rl_unref(rl_t *in);

/* An error of the backend or the shared zone: written to the log at most once per
 * log_interval (per instance and worker), with the count of those held back since. */
void rl_note_error(rl_t *in, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The verdict for a request from the bucket's tokens before taking (after refill) and
 * whether one was taken; fills ctx for the headers. */
rl_outcome_t rl_decide(const rl_t *in, rl_ctx_t *ctx, double before, int taken);

/* Answers 429 (with Retry-After and, when on, RateLimit-*) into r. */
void rl_respond_reject(const rl_t *in, torii_request_t *r, const rl_ctx_t *ctx, int64_t retry_s);
/* Answers 503 for on_backend_error = "deny". */
void rl_respond_unavailable(torii_request_t *r);

/* Resumes a paused request (token) after delay_ms, from a timer. */
void rl_delay_start(rl_t *in, uint64_t token, uint64_t delay_ms);

/* Carries out an outcome for a paused request: resume, answer, or delay. */
void rl_resume_with(rl_t *in, uint64_t token, rl_ctx_t *ctx, rl_outcome_t out);

/* The Redis backend (redis.c): one atomic decision per request, asynchronous. */
torii_action_t rl_redis_access(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, torii_str_t key);

/* Frees what the Redis backend keeps per process once no instance is left. */
void rl_redis_release(void);

/* Carries out an outcome in the access phase (answer.c): CONTINUE, PAUSE (delay) or RESPOND. */
torii_action_t rl_act(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, rl_outcome_t out);

/* The local backend (local_bucket.c): a bucket in the shared zone. */
torii_action_t rl_local_access(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, torii_str_t key);

/* The hooks besides access: config.c, answer.c (RateLimit-* on admitted answers). */
void *rl_create(const torii_host_t *h, const torii_conf_t *conf);
void rl_destroy(void *instance);
torii_action_t rl_response(void *instance, torii_request_t *r, void **req_ctx);

#pragma GCC visibility pop

#endif /* TORII_RATELIMIT_H */
