/* auth: what a JWT says. The JOSE header and the claims set are parsed by jansson, with the
 * limits a gateway needs on top: one JSON object, no repeated member names (a token whose
 * "sub" appears twice would name one consumer here and maybe another upstream), nesting at
 * most MAX_DEPTH deep, and strings of at most MAX_CLAIM bytes without control characters
 * where we read them (iss, aud, the consumer claim, alg).
 *
 * The claims are read only after the signature verified (jwt_verify.c): require_claims
 * (default exp: a token without one would be valid forever), exp and nbf (numbers, integer
 * or not, with clock_skew), iss, aud (a string or an array of strings), and the consumer
 * claim (default "sub"). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/conf.h"
#include "jwt.h"

#define MAX_DEPTH 16      /* JSON nesting below the top-level object */
#define MAX_CLAIM 1024    /* decoded length of a string we read (alg, iss, aud, sub) */
#define MAX_CLAIM_NAME 63 /* require_claims and consumer_claim names */

/* ---- JSON --------------------------------------------------------------------------- */

/* Objects and arrays nested at most MAX_DEPTH deep (a member of the top-level object is at
 * depth 1). jansson's own limit is 2048; the token length cap bounds the work. */
static int depth_ok(const json_t *v, int depth) {
    const char *name;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        if (depth > MAX_DEPTH) return 0;
        json_object_foreach((json_t *)v, name, item) {
            if (!depth_ok(item, depth + 1)) return 0;
        }
    } else if (json_is_array(v)) {
        if (depth > MAX_DEPTH) return 0;
        json_array_foreach(v, i, item) {
            if (!depth_ok(item, depth + 1)) return 0;
        }
    }
    return 1;
}

json_t *jwt_json_object(const uint8_t *doc, size_t len) {
    /* JSON_ALLOW_NUL: "\u0000" in a string we never read does not spoil the token, and in
     * one we read the control-character check refuses it. Integers are read as doubles, as
     * exp and nbf are compared: a large unread number is no reason to refuse a token. */
    json_error_t err;
    json_t *v = json_loadb((const char *)doc, len,
                           JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
    if (v && json_is_object(v) && depth_ok(v, 0)) return v;
    json_decref(v);
    return NULL;
}

int jwt_json_string(const json_t *v, torii_str_t *out) {
    if (!json_is_string(v)) return 0;
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > MAX_CLAIM) return 0;
    for (size_t i = 0; i < len; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    *out = (torii_str_t){s, len};
    return 1;
}

/* aud: a string, or an array of strings, one of which must equal the configured audience. */
static int audience_matches(const json_t *aud, const char *want) {
    torii_str_t s;
    if (json_is_string(aud)) return jwt_json_string(aud, &s) && auth_str_eq(s, want);
    if (!json_is_array(aud)) return 0;
    size_t i;
    json_t *item;
    json_array_foreach(aud, i, item) {
        if (jwt_json_string(item, &s) && auth_str_eq(s, want)) return 1;
    }
    return 0;
}

/* ---- configuration ------------------------------------------------------------------ */

/* require_claims: names that end up in error_description (RFC 6750 3: no '"' or '\\'). By
 * default ["exp"]: a token without exp would be valid forever. [] requires nothing. */
static int read_required(const torii_conf_t *conf, jwt_conf_t *j) {
    if (!pc_has_key(host, conf, "require_claims")) {
        j->nrequired = 1;
        return (j->required[0] = auth_strdup(TORII_STR("exp"))) != NULL;
    }
    size_t n = host->conf_array_size(conf, "require_claims");
    if (n > MAX_REQUIRED) {
        host->conf_error(conf, "require_claims", "at most %d claims", MAX_REQUIRED);
        return 0;
    }
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, "require_claims", i, &s) != TORII_OK) return 0;
        int ok = s.len > 0 && s.len <= MAX_CLAIM_NAME;
        for (size_t k = 0; ok && k < s.len; ++k)
            ok = s.ptr[k] > 0x20 && s.ptr[k] < 0x7f && s.ptr[k] != '"' && s.ptr[k] != '\\';
        if (!ok) {
            host->conf_error(conf, "require_claims",
                             "[%zu]: claim names are 1 to %d printable bytes without spaces, "
                             "quotes or backslashes",
                             i, MAX_CLAIM_NAME);
            return 0;
        }
        if (!(j->required[j->nrequired] = auth_strdup(s))) return 0;
        j->nrequired++;
    }
    return 1;
}

int jwt_claims_read(const torii_conf_t *conf, jwt_conf_t *j) {
    torii_str_t s;
    int rc = host->conf_string(conf, "issuer", &s);
    if (rc == TORII_EINVAL) return 0;
    if (rc == TORII_OK && !(j->issuer = auth_strdup(s))) return 0;
    rc = host->conf_string(conf, "audience", &s);
    if (rc == TORII_EINVAL) return 0;
    if (rc == TORII_OK && !(j->audience = auth_strdup(s))) return 0;
    s = TORII_STR("sub");
    if (host->conf_string(conf, "consumer_claim", &s) == TORII_EINVAL) return 0;
    if (s.len == 0 || s.len > MAX_CLAIM_NAME) {
        host->conf_error(conf, "consumer_claim", "must be 1 to %d bytes", MAX_CLAIM_NAME);
        return 0;
    }
    if (!(j->consumer_claim = auth_strdup(s))) return 0;
    int64_t skew_ms = 0;
    if (host->conf_duration_ms(conf, "clock_skew", &skew_ms) == TORII_EINVAL) return 0;
    if (skew_ms < 0) {
        host->conf_error(conf, "clock_skew", "must not be negative");
        return 0;
    }
    j->skew_s = (skew_ms + 999) / 1000;
    return read_required(conf, j);
}

void jwt_claims_free(jwt_conf_t *j) {
    free(j->issuer);
    free(j->audience);
    free(j->consumer_claim);
    for (size_t i = 0; i < j->nrequired; ++i)
        free(j->required[i]);
}

/* ---- checks ------------------------------------------------------------------------- */

/* A required claim that is absent or null: *why names it (request memory). */
static int has_required(const jwt_conf_t *j, torii_request_t *r, const json_t *c,
                        const char **why) {
    for (size_t i = 0; i < j->nrequired; ++i) {
        const json_t *v = json_object_get(c, j->required[i]);
        if (v && !json_is_null(v)) continue;
        size_t n = strlen(j->required[i]) + 32;
        char *msg = host->req_alloc(r, n);
        *why = "the token lacks a required claim";
        if (msg) {
            snprintf(msg, n, "the token has no %s claim", j->required[i]);
            *why = msg;
        }
        return 0;
    }
    return 1;
}

static int check(const jwt_conf_t *j, torii_request_t *r, const json_t *c, torii_str_t *consumer,
                 const char **why) {
    if (!has_required(j, r, c, why)) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    const json_t *v;
    if ((v = json_object_get(c, "exp"))) {
        *why = "the token's exp is not a number";
        if (!json_is_number(v)) return 0;
        *why = "the token has expired";
        if (!(now < json_number_value(v) + (double)j->skew_s)) return 0;
    }
    if ((v = json_object_get(c, "nbf"))) {
        *why = "the token's nbf is not a number";
        if (!json_is_number(v)) return 0;
        *why = "the token is not valid yet";
        if (!(now >= json_number_value(v) - (double)j->skew_s)) return 0;
    }
    torii_str_t s;
    if (j->issuer) {
        *why = "the token's issuer is not accepted";
        if (!jwt_json_string(json_object_get(c, "iss"), &s) || !auth_str_eq(s, j->issuer)) return 0;
    }
    if (j->audience) {
        *why = "the token's audience is not accepted";
        if (!audience_matches(json_object_get(c, "aud"), j->audience)) return 0;
    }
    *why = "the token has no usable consumer claim";
    if (!jwt_json_string(json_object_get(c, j->consumer_claim), &s) || s.len == 0) return 0;
    char *copy = host->req_alloc(r, s.len + 1); /* the document is freed on return */
    if (!copy) return 0;
    memcpy(copy, s.ptr, s.len);
    copy[s.len] = 0;
    *consumer = (torii_str_t){copy, s.len};
    *why = NULL;
    return 1;
}

int jwt_check_claims(const jwt_conf_t *j, torii_request_t *r, const uint8_t *payload, size_t len,
                     torii_str_t *consumer, const char **why) {
    json_t *c = jwt_json_object(payload, len);
    *why = "the token's claims are not a JSON object";
    if (!c) return 0;
    int ok = check(j, r, c, consumer, why);
    json_decref(c);
    return ok;
}
