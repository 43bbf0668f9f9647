/* Config getters shared by the bundled plugins (plugins/common/conf.c, compiled into each
 * plugin that lists it in CMakeLists.txt). They add range checks and "is the key there" on
 * top of the host's conf_* calls, with the same error wording in every plugin. */
#ifndef TORII_PLUGINS_COMMON_CONF_H
#define TORII_PLUGINS_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <torii/plugin.h>

/* 1 when the table has `key` (whatever its type). */
int pc_has_key(const torii_host_t *h, const torii_conf_t *conf, const char *key);

/* An optional integer in [lo, hi], or `dflt` when absent. TORII_OK, or an error the host
 * recorded (wrong type, out of range). */
int pc_get_int(const torii_host_t *h, const torii_conf_t *conf, const char *key, int64_t dflt,
               int64_t lo, int64_t hi, int64_t *out);

/* An optional duration in [lo, hi] ms, or `dflt` when absent; same results as pc_get_int. */
int pc_get_duration(const torii_host_t *h, const torii_conf_t *conf, const char *key, int64_t dflt,
                    int64_t lo, int64_t hi, int64_t *out);

/* Milliseconds as a config would write them: "30s" when whole seconds, else "250ms". */
void pc_fmt_ms(char *buf, size_t cap, int64_t ms);

#endif /* TORII_PLUGINS_COMMON_CONF_H */
