/* random: a uniformly random usable peer, ignoring weights. Each worker seeds its own
 * generator (xorshift64*), so workers do not pick in lockstep. */
#include <stdlib.h>
#include <time.h>
#include <torii/plugin.h>
#include <unistd.h>

typedef struct {
    uint64_t state;
} random_t;

static uint64_t next_random(random_t *rnd) {
    uint64_t x = rnd->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rnd->state = x;
    return x * 2685821657736338717ull;
}

static void *random_create(const torii_host_t *host, const torii_conf_t *conf) {
    (void)host;
    (void)conf;
    random_t *rnd = calloc(1, sizeof(random_t));
    if (rnd) rnd->state = 88172645463325252ull;
    return rnd;
}

static void random_destroy(void *instance) { free(instance); }

static int random_worker_init(void *instance) {
    random_t *rnd = instance;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rnd->state ^= ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
    if (!rnd->state) rnd->state = 1;
    return 0;
}

static int random_pick(void *instance, torii_request_t *r, const torii_peer_set_t *set,
                       const uint8_t *tried) {
    (void)r;
    size_t usable = 0;
    for (size_t i = 0; i < set->count; ++i) usable += !tried[i] && set->peers[i].healthy;
    if (!usable) return TORII_PEER_NONE;
    size_t k = (size_t)(next_random(instance) % usable);
    for (size_t i = 0; i < set->count; ++i) {
        if (tried[i] || !set->peers[i].healthy) continue;
        if (k-- == 0) return (int)i;
    }
    return TORII_PEER_NONE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "random",
    .version = "1.0",
    .create = random_create,
    .destroy = random_destroy,
    .worker_init = random_worker_init,
    .pick = random_pick,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
