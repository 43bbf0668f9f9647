/* circuit_breaker: the per-target breakers (scope "target" or "both"), driven by the core's
 * target hooks: peer_admit keeps a target out while its breaker is open, peer_result reports
 * every attempt, request_done gives back a probe place an attempt never used. */
#include <string.h>

#include "breaker.h"

/* The request's context, which the access phase put in this instance's slot: host->req_ctx
 * (ABI 1.3) reaches it from the target hooks too, so no table keyed by request handles
 * (requests are pooled and reused) is needed. */
static cb_ctx_t *ctx_of(torii_request_t *r) {
    void **slot = host->req_ctx(r);
    return slot ? *slot : NULL;
}

/* An operation on the breaker of the request's target `address`: fills *id and *op. */
static void target_op(op_t *op, cb_id_t *id, const cb_conf_t *c, torii_request_t *r,
                      torii_str_t address) {
    cb_make_id(id, host->req_server(r), host->req_location(r), address);
    memset(op, 0, sizeof *op);
    op->c = c;
    op->id = id;
    op->is_target = 1;
    op->now = host->now_ms();
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
    host->shared_update((torii_str_t){ctx->t_id.key, ctx->t_id.key_len}, cb_target_release_fn, &op,
                        state_ttl(c));
}

int cb_peer_admit(void *instance, torii_request_t *r, torii_str_t upstream, torii_str_t address) {
    (void)upstream;
    const cb_conf_t *c = instance;
    if (!c || !(c->scope & SCOPE_TARGET)) return 0;
    cb_ctx_t *ctx = ctx_of(r);
    cb_id_t id;
    op_t op;
    target_op(&op, &id, c, r, address);
    if (ctx && ctx->t_probe) {
        if (same_id(&ctx->t_id, &id)) {
            op.holds = 1;
            op.hold_gen = ctx->t_gen;
        } else {
            release_probe(c, ctx); /* admitted earlier, but never tried (another plugin) */
        }
    }
    if (host->shared_update((torii_str_t){id.key, id.key_len}, cb_access_fn, &op, state_ttl(c)) !=
        TORII_OK)
        return 0; /* the shared zone is full: fail open */
    cb_report(&op);
    if (!op.admit) {
        cb_count(&id, "rejected");
        return 1;
    }
    if (op.probe && ctx) {
        ctx->t_probe = 1;
        ctx->t_gen = op.gen;
        ctx->t_id = id;
    }
    return 0;
}

void cb_peer_result(void *instance, torii_request_t *r, torii_str_t upstream, torii_str_t address,
                    torii_peer_outcome_t outcome, int status) {
    (void)upstream;
    const cb_conf_t *c = instance;
    if (!c || !(c->scope & SCOPE_TARGET)) return;
    cb_ctx_t *ctx = ctx_of(r);
    cb_id_t id;
    op_t op;
    target_op(&op, &id, c, r, address);
    op.outcome = outcome != TORII_PEER_OK || is_error_status(c, status) ? OUT_ERROR : OUT_OK;
    if (ctx && ctx->t_probe && same_id(&ctx->t_id, &id)) {
        op.holds = 1; /* this attempt was the request's probe: its outcome decides */
        op.hold_gen = ctx->t_gen;
        ctx->t_probe = 0;
    }
    if (host->shared_update((torii_str_t){id.key, id.key_len}, cb_target_result_fn, &op,
                            state_ttl(c)) == TORII_OK)
        cb_report(&op);
}

void cb_request_done(void *instance, torii_request_t *r, void *req_ctx) {
    (void)r;
    cb_ctx_t *ctx = req_ctx;
    if (!ctx) return;
    release_probe(instance, ctx); /* a probe that never reported: the client left */
}
