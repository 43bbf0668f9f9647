/* A growable text buffer: see strbuf.h. */
#include "common/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_sb_add(pc_sb_t *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void pc_sb_str(pc_sb_t *b, const char *s) {
    pc_sb_add(b, s, strlen(s));
}

void pc_sb_int(pc_sb_t *b, int64_t v) {
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    pc_sb_add(b, num, (size_t)n);
}
