/* round_robin: each pick takes the next usable peer after the last one picked, ignoring
 * weights (use `weighted` for those). Unhealthy peers and peers this request already tried
 * are skipped, so a retry always lands on a different target. */
#include <stdlib.h>
#include <torii/plugin.h>

typedef struct {
    size_t next; /* where the next search starts */
} rr_t;

static void *rr_create(const torii_host_t *host, const torii_conf_t *conf) {
    (void)host;
    (void)conf;
    return calloc(1, sizeof(rr_t));
}

static void rr_destroy(void *instance) { free(instance); }

static int rr_pick(void *instance, torii_request_t *r, const torii_peer_set_t *set,
                   const uint8_t *tried) {
    rr_t *rr = instance;
    (void)r;
    for (size_t k = 0; k < set->count; ++k) {
        size_t i = (rr->next + k) % set->count;
        if (!tried[i] && set->peers[i].healthy) {
            rr->next = i + 1;
            return (int)i;
        }
    }
    return TORII_PEER_NONE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "round_robin",
    .version = "1.0",
    .create = rr_create,
    .destroy = rr_destroy,
    .pick = rr_pick, /* no phase hooks, no feedback: the order is all it needs */
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
