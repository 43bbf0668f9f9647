/* Test plugin: claims a future ABI major, which torii must refuse with both versions. */
#include <torii/plugin.h>

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = 99,
    .abi_minor = 3,
    .name = "abi_mismatch",
    .version = "0",
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *host) {
    (void)host;
    return &descriptor;
}
