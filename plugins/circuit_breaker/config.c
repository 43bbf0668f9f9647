/* circuit_breaker: the configuration table (see circuit_breaker.c for its keys): parsing,
 * checks and defaults; create() and destroy(). */
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "common/conf.h"

/* `errors`: codes and classes as strings. The ABI reads arrays of strings only
 * (conf_array_string), so 500 must be written "500". An empty array leaves only the
 * responses that never came (connect failures, timeouts) as errors. */
static int parse_errors(const torii_conf_t *conf, cb_conf_t *c) {
    if (!pc_has_key(host, conf, "errors")) return TORII_OK;
    size_t n = host->conf_array_size(conf, "errors"); /* not an array: error recorded */
    memset(c->errors, 0, sizeof c->errors);
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "errors", i, &s) != TORII_OK) return TORII_EINVAL;
        if (s.len == 3 && s.ptr[0] >= '1' && s.ptr[0] <= '5' &&
            (s.ptr[1] == 'x' || s.ptr[1] == 'X') && (s.ptr[2] == 'x' || s.ptr[2] == 'X')) {
            int base = (s.ptr[0] - '0') * 100;
            for (int code = base; code < base + 100; ++code)
                c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
            continue;
        }
        int code = 0, ok = s.len == 3;
        for (size_t k = 0; ok && k < s.len; ++k) {
            if (s.ptr[k] < '0' || s.ptr[k] > '9')
                ok = 0;
            else
                code = code * 10 + (s.ptr[k] - '0');
        }
        if (!ok || code < 100 || code > 599)
            return host->conf_error(conf, "errors",
                                    "\"%.*s\" is not a status (100-599) or a class such as \"5xx\"",
                                    (int)(s.len > 40 ? 40 : s.len), s.ptr);
        c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
    }
    return TORII_OK;
}

static int valid_name(torii_str_t s) {
    if (!s.len) return 0;
    for (size_t i = 0; i < s.len; ++i) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch <= ' ' || ch == ':' || ch >= 0x7f) return 0;
    }
    return 1;
}

static int valid_value(torii_str_t s) {
    for (size_t i = 0; i < s.len; ++i)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == 0) return 0;
    return 1;
}

static int parse_fallback(const torii_conf_t *conf, cb_conf_t *c) {
    c->fallback_status = 503;
    if (!pc_has_key(host, conf, "fallback")) return TORII_OK;
    const torii_conf_t *f = host->conf_table(conf, "fallback");
    if (!f) return TORII_EINVAL; /* not a table: conf_table recorded the error */
    static const char *const keys[] = {"status", "body", "headers", NULL};
    if (host->conf_allow_only(f, keys) != TORII_OK) return TORII_EINVAL;
    c->custom_fallback = 1;
    int64_t status;
    int rc = host->conf_int(f, "status", &status);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_OK) {
        if (status < 200 || status > 599)
            return host->conf_error(f, "status", "must be a final status, 200 to 599");
        c->fallback_status = (int)status;
    }
    rc = host->conf_string(f, "body", &c->fallback_body);
    if (rc == TORII_EINVAL) return rc;
    if (rc == TORII_NOT_FOUND) c->fallback_body = (torii_str_t){"", 0};
    if (c->fallback_body.len && (c->fallback_status == 204 || c->fallback_status == 304))
        return host->conf_error(f, "body", "a %d answer has no body", c->fallback_status);
    if (!pc_has_key(host, f, "headers")) return TORII_OK;
    const torii_conf_t *h = host->conf_table(f, "headers");
    if (!h) return TORII_EINVAL;
    size_t n = 0;
    torii_str_t k;
    while (host->conf_key_at(h, n, &k) == TORII_OK)
        ++n;
    if (n > FALLBACK_HEADERS_MAX)
        return host->conf_error(f, "headers", "at most %d headers", FALLBACK_HEADERS_MAX);
    c->fallback_headers = calloc(n + 1, sizeof(torii_header_t));
    if (!c->fallback_headers) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        host->conf_key_at(h, i, &k);
        char name[128];
        if (k.len >= sizeof name || !valid_name(k))
            return host->conf_error(h, NULL, "\"%.*s\" is not a header name",
                                    (int)(k.len > 40 ? 40 : k.len), k.ptr);
        memcpy(name, k.ptr, k.len);
        name[k.len] = 0;
        torii_str_t v;
        if (host->conf_string(h, name, &v) != TORII_OK)
            return host->conf_error(h, name, "expected a string value");
        if (!valid_value(v))
            return host->conf_error(h, name, "a header value cannot hold CR, LF or NUL");
        c->fallback_headers[c->fallback_header_count++] = (torii_header_t){k, v};
    }
    return TORII_OK;
}

void *cb_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {"window",
                                       "min_requests",
                                       "error_ratio",
                                       "consecutive_failures",
                                       "errors",
                                       "cool_down",
                                       "half_open_requests",
                                       "probe_timeout",
                                       "fallback",
                                       "scope",
                                       NULL};
    (void)h;
    cb_conf_t *c = calloc(1, sizeof(cb_conf_t));
    if (!c) return NULL;
    /* Defaults: every 5xx is an error. */
    for (int code = 500; code < 600; ++code)
        c->errors[code / 8] |= (uint8_t)(1u << (code % 8));
    c->scope = SCOPE_ROUTE;
    c->error_ratio = 0.5;
    int bad = host->conf_allow_only(conf, keys) != TORII_OK;
    bad |= pc_get_duration(host, conf, "window", 10000, CB_BUCKETS, 3600000, &c->window_ms) !=
           TORII_OK;
    bad |= pc_get_int(host, conf, "min_requests", 20, 1, 1000000000, &c->min_requests) != TORII_OK;
    bad |= pc_get_int(host, conf, "consecutive_failures", 5, 0, 1000000000,
                      &c->consecutive_failures) != TORII_OK;
    bad |= pc_get_int(host, conf, "half_open_requests", 1, 1, 1000, &c->half_open_requests) !=
           TORII_OK;
    bad |=
        pc_get_duration(host, conf, "cool_down", 30000, 1, 86400000, &c->cool_down_ms) != TORII_OK;
    bad |= pc_get_duration(host, conf, "probe_timeout", 30000, 1, 86400000, &c->probe_timeout_ms) !=
           TORII_OK;
    int rc = host->conf_float(conf, "error_ratio", &c->error_ratio);
    if (rc == TORII_EINVAL)
        bad = 1;
    else if (rc == TORII_OK && !(c->error_ratio >= 0 && c->error_ratio <= 1))
        bad = host->conf_error(conf, "error_ratio", "must be between 0 (off) and 1") != TORII_OK;
    torii_str_t scope;
    rc = host->conf_string(conf, "scope", &scope);
    if (rc == TORII_EINVAL)
        bad = 1;
    else if (rc == TORII_OK) {
        if (scope.len == 5 && !memcmp(scope.ptr, "route", 5))
            c->scope = SCOPE_ROUTE;
        else if (scope.len == 6 && !memcmp(scope.ptr, "target", 6))
            c->scope = SCOPE_TARGET;
        else if (scope.len == 4 && !memcmp(scope.ptr, "both", 4))
            c->scope = SCOPE_ROUTE | SCOPE_TARGET;
        else
            bad = host->conf_error(conf, "scope", "must be \"route\", \"target\" or \"both\"") !=
                  TORII_OK;
    }
    bad |= parse_errors(conf, c) != TORII_OK;
    bad |= parse_fallback(conf, c) != TORII_OK;
    if (!bad && c->error_ratio == 0 && c->consecutive_failures == 0)
        bad = host->conf_error(conf, NULL,
                               "error_ratio = 0 and consecutive_failures = 0: the "
                               "breaker could never open") != TORII_OK;
    if (bad) {
        cb_destroy(c);
        return NULL;
    }
    c->bucket_ms = c->window_ms / CB_BUCKETS;
    /* One view for every instance: taken already (another instance, another config) is fine. */
    host->admin_register("/circuit_breakers", "application/json", cb_admin_view, NULL);
    return c;
}

void cb_destroy(void *instance) {
    cb_conf_t *c = instance;
    if (!c) return;
    free(c->fallback_headers);
    free(c);
}
