/* Test plugin: keeps every target out (peer_admit) except the one whose address is
 * `allow`, and counts the vetoes it made in a shared counter "veto:count". Used to prove
 * that a request walks an upstream of any size without picking a refused target twice.
 *
 *   [server.location.plugins.veto]
 *   allow = "127.0.0.1:9001"
 */
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

typedef struct {
    char allow[64];
    size_t len;
} veto_t;

static const torii_host_t *host;

static void *veto_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"allow", NULL};
    if (h->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    torii_str_t v;
    if (h->conf_string(conf, "allow", &v) != TORII_OK || v.len == 0 || v.len >= 64) {
        h->conf_error(conf, "allow", "an address is required");
        return NULL;
    }
    veto_t *t = calloc(1, sizeof(veto_t));
    memcpy(t->allow, v.ptr, v.len);
    t->len = v.len;
    return t;
}

static void veto_destroy(void *instance) {
    free(instance);
}

static int veto_admit(void *instance, torii_request_t *r, torii_str_t upstream,
                      torii_str_t target) {
    veto_t *t = instance;
    (void)r;
    (void)upstream;
    if (target.len == t->len && memcmp(target.ptr, t->allow, t->len) == 0) return 0;
    host->counter_add(TORII_STR("veto:count"), 1);
    return 1;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "veto",
    .version = "1.0",
    .create = veto_create,
    .destroy = veto_destroy,
    .peer_admit = veto_admit,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
