/* circuit_breaker: the admin listener's GET /circuit_breakers, every breaker of the shared
 * zone as JSON (state, window counts, counters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "common/grow.h"
#include "common/json.h"

typedef struct {
    char key[CB_KEY_MAX + 1];
    cb_state_t s;
} seen_t;

typedef struct {
    seen_t *items;
    size_t count, cap;
} seen_list_t;

static void collect(torii_str_t key, int64_t counter, const void *value, size_t len, void *arg) {
    (void)counter;
    seen_list_t *l = arg;
    const cb_state_t *s = value;
    if (len != sizeof(cb_state_t) || s->magic != CB_MAGIC || key.len > CB_KEY_MAX) return;
    seen_t *items = pc_grow(l->items, &l->cap, l->count, sizeof *items, 16);
    if (!items) return;
    l->items = items;
    seen_t *e = &l->items[l->count++];
    memcpy(e->key, key.ptr, key.len);
    e->key[key.len] = 0;
    memcpy(&e->s, value, sizeof(cb_state_t));
}

static int64_t counter_of(const char *key, const char *event) {
    char k[CB_KEY_MAX + 16];
    int n = snprintf(k, sizeof k, "%s|%s", key, event);
    if (n <= 0 || (size_t)n > CB_KEY_MAX) return 0;
    return host->counter_get((torii_str_t){k, (size_t)n});
}

void cb_admin_view(void *arg, torii_buf_t *out) {
    (void)arg;
    seen_list_t l = {NULL, 0, 0};
    host->shared_each(TORII_STR("cb|"), collect, &l);
    uint64_t now = host->now_ms();
    static const char *const names[] = {"closed", "open", "half_open"};
    pc_put(host, out, "{\"breakers\":[");
    for (size_t i = 0; i < l.count; ++i) {
        const cb_state_t *s = &l.items[i].s;
        /* Counts of the window as of now: buckets older than the window do not count. */
        uint64_t bucket = s->window_ms / CB_BUCKETS ? s->window_ms / CB_BUCKETS : 1;
        uint64_t now_tick = now / bucket, reqs = 0, errs = 0;
        for (uint64_t k = 0; k < CB_BUCKETS; ++k) {
            if (k > s->head_tick) break;
            uint64_t tick = s->head_tick - k;
            if (now_tick >= tick + CB_BUCKETS) break;
            reqs += s->req[tick % CB_BUCKETS];
            errs += s->err[tick % CB_BUCKETS];
        }
        char num[512];
        pc_put(host, out, i ? ",{\"name\":" : "{\"name\":");
        pc_put_json_string(host, out, s->name,
                           s->name_len < CB_NAME_MAX ? s->name_len : CB_NAME_MAX);
        pc_put(host, out, ",\"key\":");
        pc_put_json_string(host, out, l.items[i].key, strlen(l.items[i].key));
        /* A target breaker's address: what follows the last '@' of its name. */
        size_t nl = s->name_len < CB_NAME_MAX ? s->name_len : CB_NAME_MAX, at = nl;
        while (s->is_target && at > 0 && s->name[at - 1] != '@')
            --at;
        pc_put(host, out, ",\"target\":");
        if (s->is_target && at > 0)
            pc_put_json_string(host, out, s->name + at, nl - at);
        else
            pc_put(host, out, "null");
        /* Open: how long until it half-opens (and admits probes again). */
        uint64_t in_state = since(now, s->since_ms);
        if (s->state == CB_OPEN)
            snprintf(
                num, sizeof num, ",\"half_open_in_ms\":%llu",
                (unsigned long long)(in_state < s->cool_down_ms ? s->cool_down_ms - in_state : 0));
        else
            snprintf(num, sizeof num, ",\"half_open_in_ms\":null");
        pc_put(host, out, num);
        snprintf(num, sizeof num,
                 ",\"scope\":\"%s\",\"state\":\"%s\",\"in_state_ms\":%llu,\"window_requests\":%llu,"
                 "\"window_errors\":%llu,\"consecutive_failures\":%u,\"probes\":%u,"
                 "\"probe_successes\":%u,\"opened\":%lld,\"half_opened\":%lld,\"closed\":%lld,"
                 "\"rejected\":%lld}",
                 s->is_target ? "target" : "route", s->state < 3 ? names[s->state] : "?",
                 (unsigned long long)in_state, (unsigned long long)reqs, (unsigned long long)errs,
                 s->consecutive, s->probes, s->probe_ok,
                 (long long)counter_of(l.items[i].key, "opened"),
                 (long long)counter_of(l.items[i].key, "half_opened"),
                 (long long)counter_of(l.items[i].key, "closed"),
                 (long long)counter_of(l.items[i].key, "rejected"));
        pc_put(host, out, num);
    }
    pc_put(host, out, "]}\n");
    free(l.items);
}
