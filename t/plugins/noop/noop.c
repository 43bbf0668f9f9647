/* Test plugin: a hook in every phase that does nothing, to measure what the phase machinery
 * itself costs per request (bench: six of these enabled against none). */
#include <torii/plugin.h>

static torii_action_t noop(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)r;
    (void)ctx;
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "noop",
    .version = "1.0",
    .pre_route = noop,
    .access = noop,
    .upstream = noop,
    .response = noop,
    .log = noop,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
