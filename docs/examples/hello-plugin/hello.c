/* hello: the smallest useful torii plugin. Adds `X-Hello: <greeting>` to every response
 * of the locations it is enabled for, and `X-Hello-Client: <client address>` (a variable
 * resolved once, through a host function newer than ABI 1.0: see TORII_HOST_HAS below).
 *
 *   [[plugin]]
 *   name = "hello"
 *   path = "/path/to/hello.so"
 *
 *   [server.location.plugins.hello]
 *   greeting = "hi from a plugin"     # optional, default "hello"
 *
 * Build: make TORII_PREFIX=/where/torii/is/installed   (needs only <torii/plugin.h>) */
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

typedef struct {
    char *greeting;
    size_t len;
    int client_var; /* host->var_ref("remote_addr"), or -1 on a host older than 1.3 */
} hello_t;

static const torii_host_t *host; /* torii's function table, valid for the process's life */

/* One instance per table that enables the plugin. Validate here: errors name file:line. */
static void *hello_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"greeting", NULL};
    if (h->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    torii_str_t greeting = TORII_STR("hello");
    if (h->conf_string(conf, "greeting", &greeting) == TORII_EINVAL) return NULL;
    hello_t *hello = malloc(sizeof *hello);
    if (!hello) return NULL;
    hello->greeting = malloc(greeting.len + 1);
    memcpy(hello->greeting, greeting.ptr, greeting.len);
    hello->len = greeting.len;
    /* A function added in a later minor: check that this torii has it before calling. */
    hello->client_var = TORII_HOST_HAS(h, var_ref) ? h->var_ref(TORII_STR("remote_addr")) : -1;
    return hello;
}

static void hello_destroy(void *instance) {
    hello_t *hello = instance;
    free(hello->greeting);
    free(hello);
}

/* The response phase: the head is ready and can still be changed. */
static torii_action_t hello_response(void *instance, torii_request_t *r, void **req_ctx) {
    hello_t *hello = instance;
    (void)req_ctx;
    host->resp_set_header(r, TORII_STR("X-Hello"), (torii_str_t){hello->greeting, hello->len});
    torii_str_t client;
    if (hello->client_var >= 0 && host->var_get(r, hello->client_var, &client) == TORII_OK)
        host->resp_set_header(r, TORII_STR("X-Hello-Client"), client);
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "hello",
    .version = "1.0",
    .create = hello_create,
    .destroy = hello_destroy,
    .response = hello_response, /* every other hook is NULL: not used */
};

/* The one exported symbol. */
TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
