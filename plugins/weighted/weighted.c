/* weighted: smooth weighted round robin, as nginx does it. Every pick adds each usable
 * peer's weight to its running score, takes the highest, and subtracts the total from the
 * winner. Over sum(weights) picks each peer is chosen weight times, interleaved (5,1,1
 * gives a a b a c a a, not a a a a a b c). */
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

typedef struct {
    size_t count;
    int64_t *current; /* running score per peer */
} weighted_t;

static void *weighted_create(const torii_host_t *host, const torii_conf_t *conf) {
    (void)host;
    (void)conf;
    return calloc(1, sizeof(weighted_t));
}

static void weighted_destroy(void *instance) {
    weighted_t *w = instance;
    free(w->current);
    free(w);
}

static void weighted_peers_changed(void *instance, const torii_peer_set_t *set) {
    weighted_t *w = instance;
    free(w->current);
    w->count = set->count;
    w->current = calloc(set->count ? set->count : 1, sizeof(int64_t));
}

static int weighted_pick(void *instance, torii_request_t *r, const torii_peer_set_t *set,
                         const uint8_t *tried) {
    weighted_t *w = instance;
    (void)r;
    if (set->count != w->count || !w->current) return TORII_PEER_NONE;
    int64_t total = 0;
    int best = TORII_PEER_NONE;
    for (size_t i = 0; i < set->count; ++i) {
        if (tried[i] || !set->peers[i].healthy) continue;
        w->current[i] += set->peers[i].weight;
        total += set->peers[i].weight;
        if (best < 0 || w->current[i] > w->current[best]) best = (int)i;
    }
    if (best >= 0) w->current[best] -= total;
    return best;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "weighted",
    .version = "1.0",
    .create = weighted_create,
    .destroy = weighted_destroy,
    .peers_changed = weighted_peers_changed,
    .pick = weighted_pick,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
