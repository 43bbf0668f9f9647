/* Room for one more element at the end of a growable array (items, count, cap), the
 * capacity doubling from `first`. Returns the array to use (the same or a larger one), with
 * *cap updated; NULL when memory runs out, the array and *cap then unchanged. Header-only,
 * like fnv.h:
 *
 *     seen_t *items = pc_grow(l->items, &l->cap, l->count, sizeof *items, 16);
 *     if (!items) return;
 *     l->items = items;
 */
#ifndef TORII_PLUGINS_COMMON_GROW_H
#define TORII_PLUGINS_COMMON_GROW_H

#include <stddef.h>
#include <stdlib.h>

static inline void *pc_grow(void *items, size_t *cap, size_t count, size_t size, size_t first) {
    if (count < *cap) return items;
    size_t n = *cap ? *cap * 2 : first;
    if (n < count + 1 || n > (size_t)-1 / size) return NULL;
    void *p = realloc(items, n * size);
    if (p) *cap = n;
    return p;
}

#endif
