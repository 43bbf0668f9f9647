/* least_conn: the usable peer with the fewest requests in flight relative to its weight
 * (in_flight / weight, compared without division). Ties go round robin, so idle peers
 * share the load evenly instead of the first one taking it all. */
#include <stdlib.h>
#include <torii/plugin.h>

typedef struct {
    size_t next; /* tie-break rotation */
} least_conn_t;

static void *lc_create(const torii_host_t *host, const torii_conf_t *conf) {
    (void)host;
    (void)conf;
    return calloc(1, sizeof(least_conn_t));
}

static void lc_destroy(void *instance) { free(instance); }

static int lc_pick(void *instance, torii_request_t *r, const torii_peer_set_t *set,
                   const uint8_t *tried) {
    least_conn_t *lc = instance;
    (void)r;
    int best = TORII_PEER_NONE;
    for (size_t k = 0; k < set->count; ++k) {
        size_t i = (lc->next + k) % set->count;
        const torii_peer_t *p = &set->peers[i];
        if (tried[i] || !p->healthy) continue;
        if (best < 0) {
            best = (int)i;
            continue;
        }
        const torii_peer_t *b = &set->peers[best];
        /* p->in_flight / p->weight < b->in_flight / b->weight */
        if ((uint64_t)p->in_flight * b->weight < (uint64_t)b->in_flight * p->weight) best = (int)i;
    }
    if (best >= 0) lc->next = (size_t)best + 1;
    return best;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "least_conn",
    .version = "1.0",
    .create = lc_create,
    .destroy = lc_destroy,
    .pick = lc_pick,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
