/* A growable text buffer in plugin (malloc) memory, for output built before it is handed
 * to the host in one piece (e.g. stats' /metrics page). Shared by the bundled plugins
 * (plugins/common/strbuf.c). A failed allocation sets `failed` and ignores later appends, so
 * the caller checks once at the end. */
#ifndef TORII_PLUGINS_COMMON_STRBUF_H
#define TORII_PLUGINS_COMMON_STRBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p; /* free() it when done */
    size_t len, cap;
    int failed;
} pc_sb_t;

void pc_sb_add(pc_sb_t *b, const char *s, size_t n);
void pc_sb_str(pc_sb_t *b, const char *s); /* NUL-terminated */
void pc_sb_int(pc_sb_t *b, int64_t v);     /* decimal */

#endif /* TORII_PLUGINS_COMMON_STRBUF_H */
