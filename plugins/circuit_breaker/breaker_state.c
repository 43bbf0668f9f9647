/* circuit_breaker: the state machine of one breaker (closed -> open -> half-open -> closed),
 * as shared_update callbacks that run under the shared zone's lock: no shared-state calls in
 * here. A step records what changed in its op_t; cb_report() logs and counts it afterwards,
 * outside the lock. */
#include <stdio.h>
#include <string.h>

#include "breaker.h"
#include "common/conf.h"

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
void cb_access_fn(void *value, size_t *len, void *arg) {
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
void cb_route_outcome_fn(void *value, size_t *len, void *arg) {
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
void cb_target_result_fn(void *value, size_t *len, void *arg) {
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
void cb_target_release_fn(void *value, size_t *len, void *arg) {
    cb_state_t *s = value;
    op_t *op = arg;
    op->now = host->now_ms();
    state_touch(s, len, op);
    if (s->state == CB_HALF_OPEN && op->hold_gen == s->gen && s->probes) s->probes--;
}

/* ---- reporting transitions (outside the lock) ------------------------------------------ */

void cb_report(const op_t *op) {
    const cb_conf_t *c = op->c;
    const char *what = op->is_target ? "target breaker" : "breaker";
    char cool[32];
    pc_fmt_ms(cool, sizeof cool, c->cool_down_ms);
    for (int i = 0; i < op->ntr; ++i) {
        const transition_t *t = &op->tr[i];
        char d[32];
        switch (t->why) {
            case WHY_RATIO:
                pc_fmt_ms(d, sizeof d, c->window_ms);
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
        cb_count(op->id, t->to == CB_OPEN        ? "opened"
                         : t->to == CB_HALF_OPEN ? "half_opened"
                                                 : "closed");
    }
    if (op->new_round) {
        pc_fmt_ms(cool, sizeof cool, c->probe_timeout_ms);
        host->log(TORII_LOG_INFO,
                  "circuit_breaker: %s \"%s\": half-open probes gave no outcome within %s; "
                  "letting new probes through",
                  what, op->id->name, cool);
    }
}
