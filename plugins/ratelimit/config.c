/* ratelimit: the configuration table (see ratelimit.c for its keys): parsing, checks,
 * defaults and the bucket namespace; create() and destroy(). */
#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/fnv.h"

static unsigned tables_seen; /* default names "1", "2", ... in config order */
static unsigned live_instances;

static int copy_str(torii_str_t s, char *out, size_t size) {
    if (s.len >= size) return -1;
    memcpy(out, s.ptr, s.len);
    out[s.len] = 0;
    return 0;
}

static int valid_name(torii_str_t s) {
    if (s.len == 0 || s.len > 24) return 0;
    for (size_t i = 0; i < s.len; ++i) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* "127.0.0.1:6379" or "[::1]:6379": an IP literal, so that connecting never resolves names. */
static int parse_address(torii_str_t s, char *host_out, size_t host_size, int *port) {
    char text[96];
    if (copy_str(s, text, sizeof text) != 0) return -1;
    char *colon = strrchr(text, ':');
    if (!colon || colon == text) return -1;
    *colon = 0;
    char *h = text;
    if (*h == '[') {
        size_t n = strlen(h);
        if (n < 3 || h[n - 1] != ']') return -1;
        h[n - 1] = 0;
        ++h;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, h, addr) != 1 && inet_pton(AF_INET6, h, addr) != 1) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 1 || p > 65535) return -1;
    if (strlen(h) >= host_size) return -1;
    strcpy(host_out, h);
    *port = (int)p;
    return 0;
}

static void *rl_fail(rl_t *in) {
    free(in);
    return NULL;
}

void *rl_create(const torii_host_t *h, const torii_conf_t *conf) {
    static const char *const keys[] = {
        "rate",          "period",           "burst",        "key",     "delay",
        "headers",       "max_keys",         "name",         "backend", "redis",
        "redis_timeout", "on_backend_error", "log_interval", NULL};
    (void)h;
    unsigned ordinal = ++tables_seen;
    if (host->conf_allow_only(conf, keys) != TORII_OK) return NULL;
    rl_t *in = calloc(1, sizeof *in);
    if (!in) return NULL;

    int rc = host->conf_float(conf, "rate", &in->rate);
    if (rc == TORII_NOT_FOUND) {
        host->conf_error(conf, NULL, "rate is required: tokens per period, e.g. rate = 100");
        return rl_fail(in);
    }
    if (rc != TORII_OK) return rl_fail(in);
    if (!(in->rate > 0) || in->rate > 1e9) {
        host->conf_error(conf, "rate", "must be a number above 0");
        return rl_fail(in);
    }
    in->period_ms = 1000;
    rc = host->conf_duration_ms(conf, "period", &in->period_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->period_ms < 1) {
        host->conf_error(conf, "period", "must be at least 1ms");
        return rl_fail(in);
    }
    in->rate_ms = in->rate / (double)in->period_ms;

    in->burst = 1;
    rc = host->conf_int(conf, "burst", &in->burst);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->burst < 1 || in->burst > 1000000000) {
        host->conf_error(conf, "burst",
                         "must be an integer from 1 to 1000000000 (the bucket's capacity)");
        return rl_fail(in);
    }

    torii_str_t key = TORII_STR("$remote_addr");
    rc = host->conf_string(conf, "key", &key);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (key.len == 0) {
        host->conf_error(conf, "key", "must not be empty, e.g. key = \"$remote_addr\"");
        return rl_fail(in);
    }
    in->key = host->template_compile(conf, "key", key);
    if (!in->key) return rl_fail(in);

    if (host->conf_bool(conf, "delay", &in->delay) == TORII_EINVAL) return rl_fail(in);
    in->headers = 1;
    if (host->conf_bool(conf, "headers", &in->headers) == TORII_EINVAL) return rl_fail(in);

    torii_str_t name;
    rc = host->conf_string(conf, "name", &name);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (rc == TORII_OK) {
        if (!valid_name(name)) {
            host->conf_error(conf, "name", "must be 1 to 24 letters, digits, '_', '-' or '.'");
            return rl_fail(in);
        }
        copy_str(name, in->name, sizeof in->name);
    } else if (TORII_HOST_HAS(host, conf_scope) && host->conf_scope(conf, &name) == TORII_OK) {
        /* Named after where the table is used ('@' is not allowed in a written name), so the
         * next generation of a reload finds the same buckets in the zone (or in Redis). */
        snprintf(in->name, sizeof in->name, "@%016llx",
                 (unsigned long long)pc_hash64(name.ptr, name.len, 0));
    } else {
        snprintf(in->name, sizeof in->name, "%u", ordinal);
    }

    in->log_interval_ms = 10000;
    rc = host->conf_duration_ms(conf, "log_interval", &in->log_interval_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->log_interval_ms < 0) {
        host->conf_error(conf, "log_interval", "must not be negative");
        return rl_fail(in);
    }

    torii_str_t backend = TORII_STR("local");
    rc = host->conf_string(conf, "backend", &backend);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (backend.len == 5 && memcmp(backend.ptr, "redis", 5) == 0) {
        in->redis = 1;
    } else if (!(backend.len == 5 && memcmp(backend.ptr, "local", 5) == 0)) {
        host->conf_error(conf, "backend", "must be \"local\" or \"redis\"");
        return rl_fail(in);
    }

    static const char *const redis_only[] = {"redis", "redis_timeout", "on_backend_error", NULL};
    if (!in->redis) {
        in->max_keys = RL_DEFAULT_MAX_KEYS;
        rc = host->conf_int(conf, "max_keys", &in->max_keys);
        if (rc == TORII_EINVAL) return rl_fail(in);
        if (in->max_keys < 1 || in->max_keys > RL_ZONE_CAPACITY) {
            host->conf_error(conf, "max_keys", "must be from 1 to %d (the shared zone's size)",
                             RL_ZONE_CAPACITY);
            return rl_fail(in);
        }
        for (const char *const *k = redis_only; *k; ++k) {
            if (pc_has_key(host, conf, *k)) {
                host->conf_error(conf, *k, "applies to backend = \"redis\" only");
                return rl_fail(in);
            }
        }
        live_instances++;
        return in;
    }

    if (pc_has_key(host, conf, "max_keys")) {
        host->conf_error(conf, "max_keys",
                         "applies to backend = \"local\" only (Redis expires idle buckets itself)");
        return rl_fail(in);
    }
    torii_str_t addr = TORII_STR("127.0.0.1:6379");
    rc = host->conf_string(conf, "redis", &addr);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (parse_address(addr, in->redis_host, sizeof in->redis_host, &in->redis_port) != 0) {
        host->conf_error(
            conf, "redis",
            "expected an IP address and port, e.g. \"127.0.0.1:6379\" or \"[::1]:6379\"");
        return rl_fail(in);
    }
    copy_str(addr, in->redis_addr, sizeof in->redis_addr);
    in->redis_timeout_ms = 100;
    rc = host->conf_duration_ms(conf, "redis_timeout", &in->redis_timeout_ms);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (in->redis_timeout_ms < 1) {
        host->conf_error(conf, "redis_timeout", "must be at least 1ms");
        return rl_fail(in);
    }
    torii_str_t policy = TORII_STR("allow");
    rc = host->conf_string(conf, "on_backend_error", &policy);
    if (rc == TORII_EINVAL) return rl_fail(in);
    if (policy.len == 4 && memcmp(policy.ptr, "deny", 4) == 0) {
        in->deny_on_error = 1;
    } else if (!(policy.len == 5 && memcmp(policy.ptr, "allow", 5) == 0)) {
        host->conf_error(conf, "on_backend_error", "must be \"allow\" or \"deny\"");
        return rl_fail(in);
    }
    live_instances++;
    return in;
}

void rl_destroy(void *instance) {
    rl_t *in = instance;
    if (!in) return;
    /* Templates belong to the host. Timers and Redis calls still pending hold references. */
    in->destroyed = 1;
    if (in->refs == 0) free(in);
    if (--live_instances == 0) rl_redis_release();
}
