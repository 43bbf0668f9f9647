/* ratelimit: the local backend. Token buckets of 16 bytes in torii's shared zone, changed
 * atomically with host->shared_update, and the sweep that keeps them under max_keys. See
 * ratelimit.c for the design. */
#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fnv.h"
#include "common/grow.h"

typedef struct {
    double tokens;
    uint64_t last_ms; /* host->now_ms() of the last refill */
} bucket_t;

typedef struct {
    double rate_ms, burst;
    uint64_t now;
    int created, taken;
    double before;
} take_t;

static void refill(bucket_t *b, uint64_t now, double rate_ms, double burst) {
    /* Workers read the clock before taking the lock, so `now` may trail last_ms a little. */
    if (now > b->last_ms) {
        b->tokens += (double)(now - b->last_ms) * rate_ms;
        b->last_ms = now;
    }
    if (b->tokens > burst) b->tokens = burst;
}

/* Runs under the zone's lock. */
static void take_fn(void *value, size_t *len, void *arg) {
    take_t *t = arg;
    bucket_t b;
    if (*len == sizeof b) {
        memcpy(&b, value, sizeof b);
    } else {
        b.tokens = t->burst;
        b.last_ms = t->now;
        t->created = 1;
    }
    refill(&b, t->now, t->rate_ms, t->burst);
    t->before = b.tokens;
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        t->taken = 1;
    }
    memcpy(value, &b, sizeof b);
    *len = sizeof b;
}

static torii_str_t zone_key(const rl_t *in, torii_str_t key, char *buf) {
    size_t len = strlen(in->name);
    memcpy(buf, "rl|", 3);
    memcpy(buf + 3, in->name, len);
    len += 3;
    buf[len++] = '|';
    if (len + 1 + key.len <= RL_ZONE_KEY_MAX) {
        buf[len++] = '=';
        memcpy(buf + len, key.ptr, key.len);
        len += key.len;
    } else {
        uint64_t a = pc_hash64(key.ptr, key.len, 0),
                 b = pc_hash64(key.ptr, key.len, 0x9e3779b97f4a7c15ull);
        len += (size_t)snprintf(buf + len, RL_ZONE_KEY_MAX + 1 - len, "#%016llx%016llx",
                                (unsigned long long)a, (unsigned long long)b);
    }
    return (torii_str_t){buf, len};
}

typedef struct {
    char key[RL_ZONE_KEY_MAX];
    uint8_t len;
    uint8_t full;
    uint64_t last_ms;
} seen_t;

typedef struct {
    seen_t *items;
    size_t count, cap;
    uint64_t now;
    double rate_ms, burst;
} sweep_t;

/* Runs under the zone's lock: only copies. */
static void sweep_visit(torii_str_t key, int64_t counter, const void *value, size_t len,
                        void *arg) {
    sweep_t *s = arg;
    (void)counter;
    if (len != sizeof(bucket_t) || key.len > RL_ZONE_KEY_MAX) return;
    seen_t *items = pc_grow(s->items, &s->cap, s->count, sizeof *items, 1024);
    if (!items) return;
    s->items = items;
    bucket_t b;
    memcpy(&b, value, sizeof b);
    seen_t *e = &s->items[s->count++];
    memcpy(e->key, key.ptr, key.len);
    e->len = (uint8_t)key.len;
    e->last_ms = b.last_ms; /* last used */
    refill(&b, s->now, s->rate_ms, s->burst);
    e->full = b.tokens >= s->burst;
}

static int full_then_oldest(const void *pa, const void *pb) {
    const seen_t *a = pa, *b = pb;
    if (a->full != b->full) return a->full ? -1 : 1;
    return a->last_ms < b->last_ms ? -1 : a->last_ms > b->last_ms;
}

static void lease_fn(void *value, size_t *len, void *arg) {
    int *got = arg;
    if (*len == 0) {
        *(char *)value = 1;
        *len = 1;
        *got = 1;
    }
}

/* Over max_keys: drop full buckets, then the least recently used, down to 90%. One worker at
 * a time (a lease that expires after 2 s should its holder die). */
static void sweep(rl_t *in, torii_str_t count_key) {
    char lease[RL_ZONE_KEY_MAX + 1], prefix[RL_ZONE_KEY_MAX + 1];
    int ln = snprintf(lease, sizeof lease, "rl#%s#sweep", in->name);
    int pn = snprintf(prefix, sizeof prefix, "rl|%s|", in->name);
    int got = 0;
    torii_str_t lease_key = {lease, (size_t)ln};
    if (host->shared_update(lease_key, lease_fn, &got, 2000) != TORII_OK || !got) return;

    sweep_t s = {NULL, 0, 0, host->now_ms(), in->rate_ms, (double)in->burst};
    host->shared_each((torii_str_t){prefix, (size_t)pn}, sweep_visit, &s);
    size_t target = (size_t)(in->max_keys - (in->max_keys / 10 > 0 ? in->max_keys / 10 : 1));
    qsort(s.items, s.count, sizeof(seen_t), full_then_oldest);
    size_t left = s.count, dropped = 0;
    for (size_t i = 0; i < s.count; ++i) {
        if (!s.items[i].full && left <= target) break;
        host->kv_delete((torii_str_t){s.items[i].key, s.items[i].len});
        --left;
        ++dropped;
    }
    host->counter_add(count_key, (int64_t)left - host->counter_get(count_key));
    host->log(TORII_LOG_DEBUG, "ratelimit \"%s\": %zu buckets, %zu dropped (max_keys %lld)",
              in->name, s.count, dropped, (long long)in->max_keys);
    free(s.items);
    host->kv_delete(lease_key);
}

torii_action_t rl_local_access(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, torii_str_t key) {
    char buf[RL_ZONE_KEY_MAX + 1];
    torii_str_t zkey = zone_key(in, key, buf);
    take_t t = {in->rate_ms, (double)in->burst, host->now_ms(), 0, 0, 0};
    if (host->shared_update(zkey, take_fn, &t, 0) != TORII_OK) {
        rl_note_error(in,
                      "the shared zone is full: requests go through unlimited until it has room");
        return TORII_CONTINUE;
    }
    if (t.created) {
        char cbuf[RL_ZONE_KEY_MAX + 1];
        int n = snprintf(cbuf, sizeof cbuf, "rl#%s", in->name);
        torii_str_t count_key = {cbuf, (size_t)n};
        if (host->counter_add(count_key, 1) > in->max_keys) sweep(in, count_key);
    }
    return rl_act(in, r, ctx, rl_decide(in, ctx, t.before, t.taken));
}
