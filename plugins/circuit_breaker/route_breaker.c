/* circuit_breaker: the route breaker, one per server + location. The access phase asks it
 * (pass, probe, or answer with the fallback); the log phase reports the exchange's outcome. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "breaker.h"

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

torii_action_t cb_access(void *instance, torii_request_t *r, void **req_ctx) {
    const cb_conf_t *c = instance;
    cb_ctx_t *ctx = host->req_alloc(r, sizeof(cb_ctx_t));
    if (!ctx) return TORII_ERROR;
    memset(ctx, 0, sizeof *ctx);
    *req_ctx = ctx; /* peer_admit/peer_result find it through host->req_ctx */
    if (!(c->scope & SCOPE_ROUTE)) {
        ctx->admitted = 1;
        return TORII_CONTINUE;
    }
    cb_id_t id;
    cb_make_id(&id, host->req_server(r), host->req_location(r), (torii_str_t){"", 0});
    op_t op;
    memset(&op, 0, sizeof op);
    op.c = c;
    op.id = &id;
    op.now = host->now_ms();
    if (host->shared_update((torii_str_t){id.key, id.key_len}, cb_access_fn, &op, state_ttl(c)) !=
        TORII_OK) {
        /* The shared zone is full: fail open, as a breaker with no state is closed. */
        ctx->admitted = 1;
        return TORII_CONTINUE;
    }
    cb_report(&op);
    if (op.admit) {
        ctx->admitted = 1;
        ctx->probe = (uint8_t)op.probe;
        ctx->gen = op.gen;
        return TORII_CONTINUE;
    }
    cb_count(&id, "rejected");
    return fallback(c, r, op.retry_after_ms);
}

torii_action_t cb_log(void *instance, torii_request_t *r, void **req_ctx) {
    const cb_conf_t *c = instance;
    const cb_ctx_t *ctx = *req_ctx;
    if (!ctx || !ctx->admitted) return TORII_CONTINUE;    /* answered by us, or never admitted */
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
        cb_make_id(&id, host->req_server(r), host->req_location(r), (torii_str_t){"", 0});
        memset(&op, 0, sizeof op);
        op.c = c;
        op.id = &id;
        op.now = host->now_ms();
        op.outcome = outcome;
        op.ctx = ctx;
        if (host->shared_update((torii_str_t){id.key, id.key_len}, cb_route_outcome_fn, &op,
                                state_ttl(c)) == TORII_OK)
            cb_report(&op);
    }
    return TORII_CONTINUE;
}
