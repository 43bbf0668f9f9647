/* stats: request counters and latency histograms per server, location, upstream and target,
 * kept in torii's shared memory zone (so every worker adds to the same numbers) and served
 * as Prometheus text (format 0.0.4) on the admin listener's `GET /metrics`.
 *
 *   [server.plugins.stats]                  # every location of the server is counted
 *   buckets = ["5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms",
 *              "1s", "2.5s", "5s", "10s"]   # optional; the same in every stats table
 *
 *   [server.location.plugins.stats]
 *   enabled = false                         # ... except this location
 *
 * What is recorded for every exchange the plugin is enabled for:
 *   route series {server, location, upstream}, in the log phase: requests by status class,
 *     request and response body bytes, a histogram of $request_time, and a gauge of requests
 *     in flight (incremented in the access phase, decremented in the log phase);
 *   upstream series {upstream, target}, in peer_result, once per attempt on a target
 *     (retries included): attempts by the class of the target's status ("none" when it sent
 *     no response head) and a histogram of $upstream_response_time (attempts with a head);
 *   gRPC series, the route's labels, in the log phase of gRPC calls only: calls by
 *     $grpc_status (0-16, "other" for anything else, "none" for a call that ended without
 *     one: cancelled or cut).
 * On a tcp server ([server.plugins.stats]) each session counts as one exchange of the route
 * {server, "", upstream}: from its connect hook to its end, its status (200 for a session
 * that ran), the bytes each way and its duration; each connect attempt is an upstream
 * attempt with status 0 (class "other") and the connect time as its latency.
 * Rendered too, read at scrape time: the core's counters "torii|connections" and
 * "torii|accepted" (every client connection of every worker, admin ones included).
 *
 * Shared zone layout (keys are at most 64 bytes, values at most 256): each label set is
 * identified by a 64-bit FNV-1a hash of its full label values, H as 16 hex digits.
 *   "stats|H|l"  the label values (kind byte, then length-prefixed fields), written once
 *   "stats|H|r"  a route_val_t, updated per exchange
 *   "stats|H|u"  an upstream_val_t, updated once per attempt
 *   "stats|H|g"  a grpc_val_t beside a route's "r", updated once per gRPC call
 *   "stats|H|e"  an error_val_t beside a route's "r": 4xx/5xx answers by code
 * The values are updated in place with atomic adds (host->shared_slot: each worker finds a
 * value's address once and keeps it), with no lock: every counter is exact, and a scrape
 * that races with an exchange may see its bucket and not yet its sum, or the other way
 * round; the next scrape sees both. */
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

#include "stats.h"

const torii_host_t *stats_host;
/* The instance that registered /metrics for the configuration being loaded: every stats
 * table of one configuration must agree with its buckets. Only used while loading. */
static stats_t *leader;
static size_t instances; /* live ones: the last one out frees this process's label cache */

static void stats_destroy(void *instance) {
    if (instance == leader) leader = NULL;
    free(instance);
    if (--instances == 0) stats_labels_forget(); /* the plugin may be unloaded next */
}

static void *stats_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"buckets", NULL};
    (void)h;
    if (host->conf_allow_only(conf, keys) != TORII_OK || stats_resolve_vars() != TORII_OK)
        return NULL;
    stats_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    int explicit_buckets;
    if (stats_read_buckets(conf, s, &explicit_buckets) != TORII_OK) {
        free(s);
        return NULL;
    }
    /* The first stats table of a configuration takes /metrics; the others of the same
     * configuration find it taken and follow that table's buckets, since upstream series
     * are shared by every location that proxies to the upstream. */
    if (host->admin_register(METRICS_PATH, METRICS_CONTENT_TYPE, stats_render, s) == TORII_OK) {
        leader = s; /* stats_render() reads this instance's buckets */
    } else if (!leader) {
        host->log(TORII_LOG_WARN, "stats: %s is taken by another plugin; counting, not serving",
                  METRICS_PATH);
        leader = s;
    } else if (!explicit_buckets) {
        s->nbuckets = leader->nbuckets;
        memcpy(s->bounds_us, leader->bounds_us, sizeof s->bounds_us);
    } else if (!stats_same_buckets(s, leader)) {
        host->conf_error(conf, "buckets",
                         "every stats table of a configuration uses the same buckets: set them "
                         "on the first stats table only, or identically everywhere");
        free(s);
        return NULL;
    }
    s->layout = stats_layout_of(s);
    ++instances;
    return s;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "stats",
    .version = "1.0",
    .create = stats_create,
    .destroy = stats_destroy,
    .worker_init = NULL, /* all state is in the shared zone */
    .pre_route = NULL,   /* counted from the access phase: the location is known there */
    .access = stats_access,
    .upstream = NULL,
    .response = NULL,
    .log = stats_log,
    .request_done = NULL, /* per-request state lives in request memory */
    .peer_result = stats_peer_result,
    .connect = stats_access, /* tcp servers: a session counts like a request */
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    if (!TORII_HOST_HAS(h, var_int)) { /* ABI 1.4: shared slots, numbers by handle */
        h->log(TORII_LOG_ERROR,
               "stats: this torii is older than the plugin (no var_int); upgrade torii");
        return NULL;
    }
    host = h;
    return &descriptor;
}
