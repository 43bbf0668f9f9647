/* Test plugin: pauses every request in the access phase and resumes it from a timer after
 * `delay`; then adds `X-Paused: <delay ms>` to the upstream request. With `deny = true`
 * the resume answers 403 instead (respond + resume(TORII_RESPOND)). After resume() it
 * checks that the request has not gone on inside that call (resume never re-enters) and
 * then adds `X-Resumed-Later: 1` to the upstream request.
 *
 *   [server.location.plugins.pause_timer]
 *   delay = "200ms"   # required duration
 *   deny = false
 */
#include <stdio.h>
#include <stdlib.h>
#include <torii/plugin.h>

typedef struct {
    int64_t delay_ms;
    int deny;
} pause_conf_t;

typedef struct {
    uint64_t token;
    const pause_conf_t *conf;
} pending_t;

static const torii_host_t *host;

static void *pt_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"delay", "deny", NULL};
    if (h->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    pause_conf_t *c = calloc(1, sizeof(pause_conf_t));
    if (h->conf_duration_ms(conf, "delay", &c->delay_ms) != TORII_OK) {
        h->conf_error(conf, "delay", "a duration is required, e.g. delay = \"200ms\"");
        free(c);
        return NULL;
    }
    if (h->conf_bool(conf, "deny", &c->deny) == TORII_EINVAL) {
        free(c);
        return NULL;
    }
    return c;
}

static void pt_destroy(void *instance) {
    free(instance);
}

static void on_timer(void *arg) {
    pending_t *p = arg;
    torii_request_t *r = host->token_request(p->token);
    if (!r) { /* the client left meanwhile: resume is harmless, and we just clean up */
        host->resume(p->token, TORII_CONTINUE);
        free(p);
        return;
    }
    if (p->conf->deny) {
        host->respond(r, 403, NULL, 0, TORII_STR("denied after a pause\n"));
        host->resume(p->token, TORII_RESPOND);
    } else {
        char v[32];
        int n = snprintf(v, sizeof v, "%lld", (long long)p->conf->delay_ms);
        host->req_set_header(r, TORII_STR("X-Paused"), (torii_str_t){v, (size_t)n});
        host->resume(p->token, TORII_CONTINUE);
        /* Had resume() run the rest of the request inside this call, its token would be
         * gone and the head already sent upstream. */
        if (host->token_request(p->token) == r)
            host->req_set_header(r, TORII_STR("X-Resumed-Later"), TORII_STR("1"));
    }
    free(p);
}

static torii_action_t pt_access(void *instance, torii_request_t *r, void **ctx) {
    (void)ctx;
    pending_t *p = malloc(sizeof(pending_t));
    p->conf = instance;
    p->token = host->pause(r);
    host->timer_add((uint64_t)p->conf->delay_ms, on_timer, p);
    return TORII_PAUSE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "pause_timer",
    .version = "1.0",
    .create = pt_create,
    .destroy = pt_destroy,
    .access = pt_access,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
