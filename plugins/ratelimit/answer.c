/* ratelimit: verdicts and answers. What a bucket's tokens mean for a request (pass, delay,
 * 429), the 429/503 answers and the RateLimit-* headers of admitted ones, and the delayed
 * requests of this worker (paused, resumed from a timer). Both backends use them. */
#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>

static int64_t ceil_seconds(double ms) {
    if (!(ms > 0)) return 0;
    double s = ceil(ms / 1000.0 - 1e-9);
    return s > 1e12 ? (int64_t)1e12 : (int64_t)s;
}

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

torii_action_t rl_act(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, rl_outcome_t out) {
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

torii_action_t rl_response(void *instance, torii_request_t *r, void **req_ctx) {
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
