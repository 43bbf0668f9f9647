/* circuit_breaker: the names and shared-zone keys of breakers ("server|location[@target]"),
 * and their shared counters. */
#include <stdio.h>
#include <string.h>

#include "breaker.h"
#include "common/fnv.h"

static void append(char *buf, size_t cap, size_t *len, torii_str_t s) {
    size_t n = s.len < cap - *len ? s.len : cap - *len;
    memcpy(buf + *len, s.ptr, n);
    *len += n;
}

/* "server|location" or "server|location@target"; the key is "cb|" + that when the longest
 * counter key ("cb|<id>|half_opened") fits in 64 bytes, else "cb|#" + a 64-bit hash. */
void cb_make_id(cb_id_t *id, torii_str_t server, torii_str_t location, torii_str_t target) {
    static const torii_str_t bar = {"|", 1}, at = {"@", 1};
    size_t full = server.len + 1 + location.len + (target.len ? 1 + target.len : 0);
    id->name_len = 0;
    append(id->name, CB_NAME_MAX, &id->name_len, server);
    append(id->name, CB_NAME_MAX, &id->name_len, bar);
    append(id->name, CB_NAME_MAX, &id->name_len, location);
    if (target.len) {
        append(id->name, CB_NAME_MAX, &id->name_len, at);
        append(id->name, CB_NAME_MAX, &id->name_len, target);
    }
    id->name[id->name_len] = 0;
    if (3 + full + sizeof("|half_opened") - 1 <= CB_KEY_MAX) {
        memcpy(id->key, "cb|", 3);
        memcpy(id->key + 3, id->name, id->name_len);
        id->key_len = 3 + id->name_len;
    } else {
        uint64_t h = PC_FNV64_INIT;
        h = pc_fnv64(h, server.ptr, server.len);
        h = pc_fnv64(h, bar.ptr, bar.len);
        h = pc_fnv64(h, location.ptr, location.len);
        if (target.len) {
            h = pc_fnv64(h, at.ptr, at.len);
            h = pc_fnv64(h, target.ptr, target.len);
        }
        id->key_len =
            (size_t)snprintf(id->key, sizeof id->key, "cb|#%016llx", (unsigned long long)h);
    }
    id->key[id->key_len] = 0;
}

void cb_count(const cb_id_t *id, const char *event) {
    char key[CB_KEY_MAX + 16];
    int n = snprintf(key, sizeof key, "%s|%s", id->key, event);
    if (n > 0 && (size_t)n <= CB_KEY_MAX) host->counter_add((torii_str_t){key, (size_t)n}, 1);
}
