/* Writing JSON into a host buffer (admin views), shared by the bundled plugins
 * (plugins/common/json.c). */
#ifndef TORII_PLUGINS_COMMON_JSON_H
#define TORII_PLUGINS_COMMON_JSON_H

#include <stddef.h>
#include <torii/plugin.h>

/* Appends a NUL-terminated text as is. */
void pc_put(const torii_host_t *h, torii_buf_t *out, const char *text);

/* Appends n bytes as a JSON string: quotes, '"' and '\\' escaped, control bytes as \u00XX.
 * Other bytes go as they are (names in torii's config are UTF-8 already). */
void pc_put_json_string(const torii_host_t *h, torii_buf_t *out, const char *s, size_t n);

#endif /* TORII_PLUGINS_COMMON_JSON_H */
