/* header_rewrite: set, add and remove request headers (upstream phase) and response
 * headers (response phase), with variables in values; rewrite the upstream path with a
 * regex and $1-style captures.
 *
 *   [server.location.plugins.header_rewrite]
 *   request_set     = { X-Client = "$remote_addr", X-Source = "torii" }
 *   request_add     = { X-Trace = "$http_x_request_id" }
 *   request_remove  = ["X-Internal"]
 *   response_set    = { Cache-Control = "no-store" }
 *   response_add    = { X-Served-By = "$upstream_addr" }
 *   response_remove = ["Server"]
 *   path = { regex = "^/v1/(.*)$", replace = "/api/v1/$1" }
 *
 * Order inside a phase: remove, then set, then add. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

typedef struct {
    torii_str_t name;
    torii_template_t *value;
} field_t;

typedef struct {
    field_t *items;
    size_t count;
} fields_t;

typedef struct {
    torii_str_t *items;
    size_t count;
} names_t;

typedef struct {
    fields_t request_set, request_add, response_set, response_add;
    names_t request_remove, response_remove;
    pcre2_code *path_regex;
    pcre2_match_data *match;
    char *path_replace; /* NUL-terminated for pcre2_substitute */
} rewrite_t;

static const torii_host_t *host;

static int read_fields(const torii_conf_t *conf, const char *key, fields_t *out) {
    const torii_conf_t *t = host->conf_table(conf, key);
    if (!t) return host->conf_table == NULL ? TORII_EINVAL : TORII_OK;
    size_t n = 0;
    torii_str_t k;
    while (host->conf_key_at(t, n, &k) == TORII_OK) ++n;
    out->items = calloc(n ? n : 1, sizeof(field_t));
    if (!out->items) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        host->conf_key_at(t, i, &k);
        char name[128];
        if (k.len >= sizeof name) return host->conf_error(t, NULL, "header name too long");
        memcpy(name, k.ptr, k.len);
        name[k.len] = 0;
        torii_str_t value;
        if (host->conf_string(t, name, &value) != TORII_OK)
            return host->conf_error(t, name, "expected a string value");
        field_t *f = &out->items[out->count++];
        f->name = k;
        f->value = host->template_compile(t, name, value);
        if (!f->value) return TORII_EINVAL;
    }
    return TORII_OK;
}

static int read_names(const torii_conf_t *conf, const char *key, names_t *out) {
    size_t n = host->conf_array_size(conf, key);
    if (!n) return TORII_OK;
    out->items = calloc(n, sizeof(torii_str_t));
    if (!out->items) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i)
        if (host->conf_array_string(conf, key, i, &out->items[out->count++]) != TORII_OK)
            return TORII_EINVAL;
    return TORII_OK;
}

static int read_path(const torii_conf_t *conf, rewrite_t *rw) {
    const torii_conf_t *p = host->conf_table(conf, "path");
    if (!p) return TORII_OK;
    static const char *const keys[] = {"regex", "replace", NULL};
    if (host->conf_allow_only(p, keys) != TORII_OK) return TORII_EINVAL;
    torii_str_t regex, replace;
    if (host->conf_string(p, "regex", &regex) != TORII_OK ||
        host->conf_string(p, "replace", &replace) != TORII_OK)
        return host->conf_error(p, NULL, "path needs regex and replace strings");
    int err;
    PCRE2_SIZE offset;
    rw->path_regex = pcre2_compile((PCRE2_SPTR)regex.ptr, regex.len, 0, &err, &offset, NULL);
    if (!rw->path_regex) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(err, msg, sizeof msg);
        return host->conf_error(p, "regex", "%s at offset %zu", (char *)msg, (size_t)offset);
    }
    pcre2_jit_compile(rw->path_regex, PCRE2_JIT_COMPLETE);
    rw->match = pcre2_match_data_create_from_pattern(rw->path_regex, NULL);
    rw->path_replace = malloc(replace.len + 1);
    if (!rw->match || !rw->path_replace) return TORII_EINVAL;
    memcpy(rw->path_replace, replace.ptr, replace.len);
    rw->path_replace[replace.len] = 0;
    return TORII_OK;
}

static void rewrite_destroy(void *instance);

static void *rewrite_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"request_set",  "request_add",  "request_remove",
                                       "response_set", "response_add", "response_remove",
                                       "path",         NULL};
    (void)h;
    rewrite_t *rw = calloc(1, sizeof(rewrite_t));
    if (!rw) return NULL;
    if (host->conf_allow_only(conf, keys) != TORII_OK ||
        read_fields(conf, "request_set", &rw->request_set) != TORII_OK ||
        read_fields(conf, "request_add", &rw->request_add) != TORII_OK ||
        read_fields(conf, "response_set", &rw->response_set) != TORII_OK ||
        read_fields(conf, "response_add", &rw->response_add) != TORII_OK ||
        read_names(conf, "request_remove", &rw->request_remove) != TORII_OK ||
        read_names(conf, "response_remove", &rw->response_remove) != TORII_OK ||
        read_path(conf, rw) != TORII_OK) {
        rewrite_destroy(rw);
        return NULL;
    }
    return rw;
}

static void rewrite_destroy(void *instance) {
    rewrite_t *rw = instance;
    free(rw->request_set.items);
    free(rw->request_add.items);
    free(rw->response_set.items);
    free(rw->response_add.items);
    free(rw->request_remove.items);
    free(rw->response_remove.items);
    if (rw->match) pcre2_match_data_free(rw->match);
    if (rw->path_regex) pcre2_code_free(rw->path_regex);
    free(rw->path_replace);
    free(rw);
}

typedef int (*set_fn)(torii_request_t *, torii_str_t, torii_str_t);
typedef int (*remove_fn)(torii_request_t *, torii_str_t);

static void apply(torii_request_t *r, const names_t *remove, const fields_t *set,
                  const fields_t *add, remove_fn do_remove, set_fn do_set, set_fn do_add) {
    for (size_t i = 0; i < remove->count; ++i) do_remove(r, remove->items[i]);
    for (size_t i = 0; i < set->count; ++i) {
        torii_str_t v;
        if (host->template_expand(r, set->items[i].value, &v) == TORII_OK)
            do_set(r, set->items[i].name, v);
    }
    for (size_t i = 0; i < add->count; ++i) {
        torii_str_t v;
        if (host->template_expand(r, add->items[i].value, &v) == TORII_OK)
            do_add(r, add->items[i].name, v);
    }
}

static torii_action_t rewrite_upstream(void *instance, torii_request_t *r, void **ctx) {
    rewrite_t *rw = instance;
    (void)ctx;
    apply(r, &rw->request_remove, &rw->request_set, &rw->request_add, host->req_remove_header,
          host->req_set_header, host->req_add_header);
    if (rw->path_regex) {
        torii_str_t path = host->req_path(r);
        PCRE2_UCHAR out[4096];
        PCRE2_SIZE out_len = sizeof out;
        int rc = pcre2_substitute(rw->path_regex, (PCRE2_SPTR)path.ptr, path.len, 0, 0, rw->match,
                                  NULL, (PCRE2_SPTR)rw->path_replace, PCRE2_ZERO_TERMINATED, out,
                                  &out_len);
        if (rc > 0) {
            torii_str_t rewritten = {(const char *)out, out_len};
            if (host->req_set_path(r, rewritten) != TORII_OK)
                host->log(TORII_LOG_WARN, "header_rewrite: rewritten path is not a path");
        }
    }
    return TORII_CONTINUE;
}

static torii_action_t rewrite_response(void *instance, torii_request_t *r, void **ctx) {
    rewrite_t *rw = instance;
    (void)ctx;
    apply(r, &rw->response_remove, &rw->response_set, &rw->response_add, host->resp_remove_header,
          host->resp_set_header, host->resp_add_header);
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "header_rewrite",
    .version = "1.0",
    .create = rewrite_create,
    .destroy = rewrite_destroy,
    .worker_init = NULL, /* nothing per worker */
    .pre_route = NULL,   /* the path rewrite changes what goes upstream, not the routing */
    .access = NULL,
    .upstream = rewrite_upstream,
    .response = rewrite_response,
    .log = NULL,
    .request_done = NULL, /* no per-request state */
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
