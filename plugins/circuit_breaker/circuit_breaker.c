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
 * holds on a target is remembered in the request's context (reached from the target hooks
 * through host->req_ctx) so that an attempt that never happens (another plugin kept the
 * target out, the client left) gives its place back in request_done.
 *
 * State changes are logged (opened: warn; half-open, closed: info) and counted in shared
 * counters "cb|<id>|opened", "|half_opened", "|closed", "|rejected" (fallbacks served).
 * GET /circuit_breakers on the admin listener lists every breaker as JSON. */
#include "breaker.h"

const torii_host_t *cb_host;

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
    .request_done = cb_request_done, /* gives back a target probe place never used */
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
