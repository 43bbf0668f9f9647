/* Test plugin: appends `X-Tag: <value>` to responses (response phase) and to the upstream
 * request (upstream phase), and counts its requests in a shared counter named after the
 * value (host->counter_add), exposed as `X-Tag-Count-<value>`. Used to observe which
 * instances run for a location, in which order, and with which table.
 *
 *   [server.plugins.tag]
 *   value = "server"      # required string
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

typedef struct {
    char value[64];
    char counter[80];
} tag_t;

static const torii_host_t *host;

static void *tag_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"value", NULL};
    if (h->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    torii_str_t v;
    int rc = h->conf_string(conf, "value", &v);
    if (rc == TORII_NOT_FOUND) {
        h->conf_error(conf, NULL, "value is required");
        return NULL;
    }
    if (rc != TORII_OK) return NULL;
    if (v.len == 0 || v.len >= 64) {
        h->conf_error(conf, "value", "must be 1 to 63 characters");
        return NULL;
    }
    tag_t *t = calloc(1, sizeof(tag_t));
    memcpy(t->value, v.ptr, v.len);
    snprintf(t->counter, sizeof t->counter, "tag:%s", t->value);
    return t;
}

static void tag_destroy(void *instance) { free(instance); }

static torii_action_t tag_upstream(void *instance, torii_request_t *r, void **ctx) {
    tag_t *t = instance;
    (void)ctx;
    torii_str_t name = TORII_STR("X-Tag");
    torii_str_t value = {t->value, strlen(t->value)};
    host->req_add_header(r, name, value);
    return TORII_CONTINUE;
}

static torii_action_t tag_response(void *instance, torii_request_t *r, void **ctx) {
    tag_t *t = instance;
    (void)ctx;
    torii_str_t key = {t->counter, strlen(t->counter)};
    int64_t n = host->counter_add(key, 1);
    char header[96], count[32];
    int hl = snprintf(header, sizeof header, "X-Tag-Count-%s", t->value);
    int cl = snprintf(count, sizeof count, "%lld", (long long)n);
    torii_str_t tag = {t->value, strlen(t->value)};
    host->resp_add_header(r, TORII_STR("X-Tag"), tag);
    host->resp_set_header(r, (torii_str_t){header, (size_t)hl}, (torii_str_t){count, (size_t)cl});
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "tag",
    .version = "1.0",
    .create = tag_create,
    .destroy = tag_destroy,
    .upstream = tag_upstream,
    .response = tag_response,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
