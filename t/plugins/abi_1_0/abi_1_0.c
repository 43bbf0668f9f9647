/* Test plugin: built against a frozen copy of the ABI 1.0 header (include/torii/plugin.h in
 * this folder, as it was when 1.0 shipped), to prove that torii keeps loading 1.0 plugins
 * unchanged as minors are added. It uses the 1.0 functions a typical plugin does:
 *   create: conf_string/conf_int/conf_allow_only ("tag", "deny_header", "limit")
 *   access: var, req_header, req_set_header, counter_add, req_alloc + *req_ctx, respond
 *   response: resp_set_header;  log + request_done: the ctx comes back and is released.
 * t/integration/test_plugin_abi.py drives it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

#if TORII_PLUGIN_ABI_MINOR != 0
#error "this plugin must be built against the frozen 1.0 header of its folder"
#endif

static const torii_host_t *host;

typedef struct {
    char tag[32];
    char deny[32];
    int64_t limit;
} inst_t;

typedef struct {
    int64_t number; /* this request's number on the machine */
} ctx_t;

static void counters(void *arg, torii_buf_t *out) {
    (void)arg;
    char text[160];
    int n = snprintf(text, sizeof text, "{\"requests\":%lld,\"logged\":%lld,\"done\":%lld}",
                     (long long)host->counter_get(TORII_STR("abi10|requests")),
                     (long long)host->counter_get(TORII_STR("abi10|logged")),
                     (long long)host->counter_get(TORII_STR("abi10|done")));
    host->buf_append(out, (torii_str_t){text, (size_t)n});
}

static void *create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"tag", "deny_header", "limit", NULL};
    (void)h;
    if (host->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    inst_t *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    torii_str_t s;
    snprintf(in->tag, sizeof in->tag, "1.0");
    if (host->conf_string(conf, "tag", &s) == TORII_OK)
        snprintf(in->tag, sizeof in->tag, "%.*s", (int)s.len, s.ptr);
    snprintf(in->deny, sizeof in->deny, "X-Deny");
    if (host->conf_string(conf, "deny_header", &s) == TORII_OK)
        snprintf(in->deny, sizeof in->deny, "%.*s", (int)s.len, s.ptr);
    /* Once per configuration: a second table's call finds the path taken (TORII_EINVAL). */
    (void)host->admin_register("/abi10", "application/json", counters, NULL);
    in->limit = 1000000;
    if (host->conf_int(conf, "limit", &in->limit) == TORII_EINVAL) {
        free(in);
        return NULL;
    }
    return in;
}

static void destroy(void *instance) {
    free(instance);
}

static torii_action_t access(void *instance, torii_request_t *r, void **ctx) {
    inst_t *in = instance;
    torii_str_t v;
    if (host->req_header(r, (torii_str_t){in->deny, strlen(in->deny)}, &v) == TORII_OK) {
        torii_header_t why = {TORII_STR("X-Denied-By"), TORII_STR("abi_1_0")};
        host->respond(r, 403, &why, 1, TORII_STR("denied by a 1.0 plugin\n"));
        return TORII_RESPOND;
    }
    ctx_t *c = host->req_alloc(r, sizeof *c);
    if (!c) return TORII_ERROR;
    c->number = host->counter_add(TORII_STR("abi10|requests"), 1);
    if (c->number > in->limit) {
        host->respond(r, 429, NULL, 0, TORII_STR("over the 1.0 plugin's limit\n"));
        return TORII_RESPOND;
    }
    *ctx = c;
    if (host->var(r, TORII_STR("remote_addr"), &v) == TORII_OK)
        host->req_set_header(r, TORII_STR("X-Abi10-Client"), v);
    return TORII_CONTINUE;
}

static torii_action_t response(void *instance, torii_request_t *r, void **ctx) {
    inst_t *in = instance;
    const ctx_t *c = *ctx;
    host->resp_set_header(r, TORII_STR("X-Abi"), (torii_str_t){in->tag, strlen(in->tag)});
    if (c) {
        char num[24];
        int n = snprintf(num, sizeof num, "%lld", (long long)c->number);
        host->resp_set_header(r, TORII_STR("X-Abi10-Number"), (torii_str_t){num, (size_t)n});
    }
    return TORII_CONTINUE;
}

static torii_action_t log_hook(void *instance, torii_request_t *r, void **ctx) {
    (void)instance;
    (void)r;
    if (*ctx) host->counter_add(TORII_STR("abi10|logged"), 1);
    return TORII_CONTINUE;
}

static void request_done(void *instance, torii_request_t *r, void *ctx) {
    (void)instance;
    (void)r;
    if (ctx) host->counter_add(TORII_STR("abi10|done"), 1); /* req_alloc memory: nothing to free */
}

static int worker_init(void *instance) {
    (void)instance;
    return 0;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t), /* 1.0's size: the host reads no further */
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "abi_1_0",
    .version = "1.0",
    .create = create,
    .destroy = destroy,
    .worker_init = worker_init,
    .access = access,
    .response = response,
    .log = log_hook,
    .request_done = request_done,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
