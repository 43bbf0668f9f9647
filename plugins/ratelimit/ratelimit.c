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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const torii_host_t *rl_host;

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
    return rl_local_access(in, r, ctx, key);
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
