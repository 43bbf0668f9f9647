/* chash: consistent hashing on the upstream's `hash_key` (any variables, e.g.
 * "$remote_addr" or "$http_x_user"). Each peer owns 160 points per unit of weight on a
 * 64-bit ring; a key goes to the first point at or after its hash. The ring is built from
 * the configured membership, never from the healthy subset: a peer that goes down only
 * sends its own keys to the next points, and they come back when it recovers, so a flap
 * does not reshuffle everyone's keys. Adding or removing one of N peers moves about 1/N. */
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

#include "common/fnv.h"

#define POINTS_PER_WEIGHT 160

typedef struct {
    uint64_t hash;
    uint32_t peer;
} point_t;

typedef struct {
    torii_template_t *key;
    point_t *ring;
    size_t ring_len;
} chash_t;

static const torii_host_t *host;

static int by_hash(const void *a, const void *b) {
    uint64_t x = ((const point_t *)a)->hash, y = ((const point_t *)b)->hash;
    return x < y ? -1 : x > y;
}

static void *chash_create(const torii_host_t *h, const torii_conf_t *conf) {
    torii_str_t key;
    if (h->conf_string(conf, "hash_key", &key) != TORII_OK) {
        h->conf_error(conf, NULL,
                      "balancer chash needs hash_key, e.g. hash_key = \"$remote_addr\"");
        return NULL;
    }
    chash_t *c = calloc(1, sizeof(chash_t));
    if (!c) return NULL;
    c->key = h->template_compile(conf, "hash_key", key);
    if (!c->key) {
        free(c);
        return NULL;
    }
    return c;
}

static void chash_destroy(void *instance) {
    chash_t *c = instance;
    free(c->ring);
    free(c);
}

static void chash_peers_changed(void *instance, const torii_peer_set_t *set) {
    chash_t *c = instance;
    size_t len = 0;
    for (size_t i = 0; i < set->count; ++i)
        len += (size_t)set->peers[i].weight * POINTS_PER_WEIGHT;
    point_t *ring = malloc((len ? len : 1) * sizeof(point_t));
    if (!ring) return;
    size_t n = 0;
    char buf[320];
    for (size_t i = 0; i < set->count; ++i) {
        const torii_peer_t *p = &set->peers[i];
        size_t points = (size_t)p->weight * POINTS_PER_WEIGHT;
        size_t alen = p->address.len < 256 ? p->address.len : 256;
        memcpy(buf, p->address.ptr, alen);
        for (size_t v = 0; v < points; ++v) {
            /* "127.0.0.1:9001#17": the point depends on the address, not the index. */
            size_t k = alen;
            buf[k++] = '#';
            size_t x = v, start = k;
            do {
                buf[k++] = (char)('0' + x % 10);
                x /= 10;
            } while (x);
            for (size_t a = start, b = k - 1; a < b; ++a, --b) {
                char t = buf[a];
                buf[a] = buf[b];
                buf[b] = t;
            }
            ring[n].hash = pc_hash64(buf, k, 0);
            ring[n].peer = (uint32_t)i;
            ++n;
        }
    }
    qsort(ring, n, sizeof(point_t), by_hash);
    free(c->ring);
    c->ring = ring;
    c->ring_len = n;
}

static int chash_pick(void *instance, torii_request_t *r, const torii_peer_set_t *set,
                      const uint8_t *tried) {
    chash_t *c = instance;
    if (!c->ring_len) return TORII_PEER_NONE;
    torii_str_t key = {"", 0};
    host->template_expand(r, c->key, &key);
    uint64_t h = pc_hash64(key.ptr, key.len, 0);
    size_t lo = 0, hi = c->ring_len; /* first point with hash >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Walk clockwise past unusable peers (down, or already tried by this request). */
    for (size_t k = 0; k < c->ring_len; ++k) {
        uint32_t p = c->ring[(lo + k) % c->ring_len].peer;
        if (p < set->count && !tried[p] && set->peers[p].healthy) return (int)p;
    }
    return TORII_PEER_NONE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "chash",
    .version = "1.0",
    .create = chash_create,
    .destroy = chash_destroy,
    .peers_changed = chash_peers_changed,
    .pick = chash_pick,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
