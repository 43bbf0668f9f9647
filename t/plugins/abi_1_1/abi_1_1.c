/* Test plugin: a plugin as built against ABI 1.1, before the connect hook existed. Its
 * descriptor ends where 1.1's did (size = offsetof(torii_plugin_t, connect)), so the host
 * must not read `connect` — which is set here to a hook that refuses every connection, so
 * that a host reading past the declared size would be caught by test_tcp.py. On HTTP it adds
 * "X-Abi: 1.1" to responses: the old plugin still works unchanged. */
#include <stddef.h>
#include <torii/plugin.h>

static const torii_host_t *host;

static torii_action_t tag_response(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)ctx;
    host->resp_set_header(r, TORII_STR("X-Abi"), TORII_STR("1.1"));
    return TORII_CONTINUE;
}

static torii_action_t log_nothing(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)r;
    (void)ctx;
    return TORII_CONTINUE;
}

/* Beyond the declared size: never called by a correct host. */
static torii_action_t refuse(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)ctx;
    host->respond(r, 403, NULL, 0, TORII_STR(""));
    return TORII_RESPOND;
}

static const torii_plugin_t descriptor = {
    .size = offsetof(torii_plugin_t, connect),
    .abi_major = 1,
    .abi_minor = 1,
    .name = "abi_1_1",
    .version = "1.0",
    .response = tag_response,
    .log = log_nothing,
    .connect = refuse,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
