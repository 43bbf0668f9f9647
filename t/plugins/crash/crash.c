/* Test plugin: kills its worker on a marked request, to test that the master replaces a
 * crashed worker at once and logs the crash with the worker's last request line.
 *
 *   [server.plugins.crash]
 *   at = "request"             # default; "worker_init": abort in every worker's start
 *
 * A request with `X-Crash: abort` (or any other value) calls abort(): SIGABRT.
 * `X-Crash: segv` dies of SIGSEGV with the default disposition restored first, so an
 * AddressSanitizer build dies of the signal too instead of printing a report.
 * `X-Crash: kill` raises SIGKILL (what the OOM killer sends).
 * Requests without the header pass untouched. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

static const torii_host_t *host;
static int instance_tag; /* a non-NULL instance for create() to return */

static void *crash_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"at", NULL};
    static int at_worker_init;
    if (h->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    torii_str_t at;
    int rc = h->conf_string(conf, "at", &at);
    if (rc == TORII_EINVAL) return NULL;
    if (rc == TORII_NOT_FOUND) return &instance_tag;
    if (at.len == 7 && memcmp(at.ptr, "request", 7) == 0) return &instance_tag;
    if (at.len == 11 && memcmp(at.ptr, "worker_init", 11) == 0) return &at_worker_init;
    h->conf_error(conf, "at", "expected \"request\" or \"worker_init\"");
    return NULL;
}

static void crash_destroy(void *instance) {
    (void)instance;
}

static int crash_worker_init(void *instance) {
    if (instance != &instance_tag) abort();
    return 0;
}

static int is(torii_str_t v, const char *word) {
    size_t n = strlen(word);
    return v.len == n && memcmp(v.ptr, word, n) == 0;
}

static torii_action_t crash_pre_route(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)ctx;
    torii_str_t v;
    if (host->req_header(r, TORII_STR("X-Crash"), &v) != TORII_OK) return TORII_CONTINUE;
    if (is(v, "segv")) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    } else if (is(v, "kill")) {
        raise(SIGKILL);
    }
    abort();
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "crash",
    .version = "1.0",
    .create = crash_create,
    .destroy = crash_destroy,
    .worker_init = crash_worker_init,
    .pre_route = crash_pre_route,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
