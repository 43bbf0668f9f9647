/* auth: who may use a location or a tcp server. In the access phase, in this order:
 *
 *   1. allow/deny CIDR lists (IPv4 and IPv6) on $remote_addr: 403 when a deny entry
 *      matches, or when allow is set and no allow entry matches (deny wins);
 *   2. one credential check by `type`, with 401 and a WWW-Authenticate challenge on failure:
 *        "key"    an API key from a header (X-API-Key by default) or a query argument,
 *                 each key naming its consumer;
 *        "basic"  HTTP Basic against users with salted SHA-2 hashes ({SSHA256}/{SSHA512}),
 *                 inline or from a users file;
 *        "jwt"    a bearer JSON Web Token (HS256, RS256, ES256) with exp/nbf/iss/aud
 *                 checks (jwt_verify.c, jwt_claims.c).
 *
 * The authenticated consumer's name becomes $consumer (ratelimit keys, header_rewrite
 * values). With hide_credentials = true the credential header (or query argument) is not
 * sent upstream.
 * Credentials (keys, passwords, tokens) are never logged nor echoed; files are read in
 * create(), never on the request path. Nothing is shared between workers: the instance is
 * read-only after create(), so every worker decides alike.
 *
 *   [server.location.plugins.auth]
 *   type = "key"
 *   keys = [ { key = "k-123", consumer = "alice" } ]
 *   header = "X-API-Key"            # default; "" for none
 *   query = "apikey"                # optional
 *   allow = ["10.0.0.0/8", "::1"]
 *   deny = ["10.9.0.0/16"]
 *   realm = "torii"
 *   hide_credentials = false
 *
 * On a tcp server ([server.plugins.auth], ABI 1.2) the connect hook applies the allow/deny
 * lists to each connection, before any byte is read; `type` is refused there (a byte stream
 * carries no credential torii could read).
 *
 * This file holds the descriptor and the hooks; auth.h lists the other files and their
 * roles. docs/plugins/auth.md lists every key. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "auth.h"

const torii_host_t *auth_host;

static void log_refusal(torii_request_t *r, int status, const char *why) {
    torii_str_t addr = TORII_STR("-"), loc = host->req_location(r);
    host->var(r, TORII_STR("remote_addr"), &addr);
    if (loc.len == 0) { /* a tcp server's connection: no location, name the server */
        torii_str_t server = host->req_server(r);
        host->log(TORII_LOG_INFO, "auth: connection from %.*s to tcp server %.*s refused: %s",
                  (int)addr.len, addr.ptr, (int)server.len, server.ptr, why);
        return;
    }
    host->log(TORII_LOG_INFO, "auth: %d for %.*s on location \"%.*s\": %s", status, (int)addr.len,
              addr.ptr, (int)loc.len, loc.ptr, why);
}

static torii_action_t forbid(torii_request_t *r, const char *why) {
    log_refusal(r, 403, why);
    torii_header_t hdr[] = {{TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    host->respond(r, 403, hdr, 1, TORII_STR("forbidden\n"));
    return TORII_RESPOND;
}

torii_action_t auth_unauthorized(const auth_t *a, torii_request_t *r, const char *why,
                                 const char *bearer_error) {
    log_refusal(r, 401, why);
    torii_str_t challenge = {a->challenge, strlen(a->challenge)};
    if (bearer_error) { /* RFC 6750 3: error and a human-readable description */
        size_t n = strlen(a->challenge) + strlen(bearer_error) + 64;
        char *v = host->req_alloc(r, n);
        if (v) {
            int len = snprintf(v, n, "%s, error=\"invalid_token\", error_description=\"%s\"",
                               a->challenge, bearer_error);
            challenge = (torii_str_t){v, (size_t)len};
        }
    }
    torii_header_t hdr[] = {{TORII_STR("WWW-Authenticate"), challenge},
                            {TORII_STR("Content-Type"), TORII_STR("text/plain")}};
    host->respond(r, 401, hdr, 2, TORII_STR("unauthorized\n"));
    return TORII_RESPOND;
}

static torii_action_t check_jwt(const auth_t *a, torii_request_t *r) {
    torii_str_t token, consumer;
    const char *why;
    int got = auth_credential(a, r, &token);
    if (got == -2)
        return auth_unauthorized(a, r, "the token is malformed", "the token is malformed");
    if (got < 0)
        return auth_unauthorized(a, r, "the token is given more than once",
                                 "the token is given more than once");
    if (!got) return auth_unauthorized(a, r, "no bearer token", NULL);
    if (!jwt_verify(a->jwt, r, token, &consumer, &why)) return auth_unauthorized(a, r, why, why);
    if (!auth_printable_name(consumer))
        return auth_unauthorized(a, r, "the token's consumer claim is not a usable name",
                                 "the token's consumer claim is not a usable name");
    host->req_set_consumer(r, consumer);
    host->log(TORII_LOG_DEBUG, "auth: token of consumer \"%.*s\"", (int)consumer.len, consumer.ptr);
    return TORII_CONTINUE;
}

/* The allow/deny lists on $remote_addr: deny wins; with an allow list, only what it covers. */
static torii_action_t check_address(const auth_t *a, torii_request_t *r) {
    if (!a->allow.count && !a->deny.count) return TORII_CONTINUE;
    torii_str_t text;
    cidr_t addr;
    if (host->var(r, TORII_STR("remote_addr"), &text) != TORII_OK || !cidr_parse_addr(text, &addr))
        return forbid(r, "client address unknown");
    if (cidr_match(&a->deny, &addr)) return forbid(r, "address denied");
    if (a->allow.count && !cidr_match(&a->allow, &addr)) return forbid(r, "address not allowed");
    return TORII_CONTINUE;
}

/* The connection phase of a tcp server (ABI 1.2): the address lists only (create() refused
 * `type` there). A refused connection is closed and logged 403. */
static torii_action_t auth_connect(void *instance, torii_request_t *r, void **ctx) {
    (void)ctx;
    return check_address(instance, r);
}

static torii_action_t auth_access(void *instance, torii_request_t *r, void **ctx) {
    const auth_t *a = instance;
    (void)ctx;
    torii_action_t verdict = check_address(a, r);
    if (verdict != TORII_CONTINUE) return verdict;
    switch (a->type) {
        case TYPE_KEY:
            return auth_check_key(a, r);
        case TYPE_BASIC:
            return auth_check_basic(a, r);
        case TYPE_JWT:
            return check_jwt(a, r);
        default:
            return TORII_CONTINUE;
    }
}

/* hide_credentials: the upstream does not see the header or query argument the credential
 * came in. */
static torii_action_t auth_upstream(void *instance, torii_request_t *r, void **ctx) {
    const auth_t *a = instance;
    (void)ctx;
    if (a->hide_credentials && a->header)
        host->req_remove_header(r, (torii_str_t){a->header, strlen(a->header)});
    if (a->hide_credentials && a->query) auth_hide_query_arg(a, r);
    return TORII_CONTINUE;
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "auth",
    .version = "1.0",
    .create = auth_create,
    .destroy = auth_destroy,
    .worker_init = NULL, /* read-only after create: nothing per worker */
    .pre_route = NULL,
    .access = auth_access,
    .upstream = auth_upstream,
    .response = NULL,
    .log = NULL,
    .request_done = NULL, /* per-request memory comes from req_alloc */
    .connect = auth_connect,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    if (!TORII_HOST_HAS(h, req_set_consumer)) {
        h->log(TORII_LOG_ERROR,
               "auth: this torii lacks req_set_consumer (plugin ABI 1.0 with "
               "traffic-control additions): upgrade torii");
        return NULL;
    }
    host = h;
    return &descriptor;
}
