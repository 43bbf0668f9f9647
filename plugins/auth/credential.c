/* auth: where a key or a bearer token comes from. The configured header (Authorization
 * needs the Bearer scheme for a token; another header may carry it bare or after
 * "Bearer "), or the configured query argument. Whatever an upstream could read differently
 * is refused rather than guessed: a repeated header or argument, a credential in both the
 * header and the query, a NUL byte a C upstream would cut the credential at.
 *
 * Query argument names are compared as upstream frameworks read them: percent-decoded,
 * '+' a space, ASCII case ignored. The host's req_query_arg (ABI 1.3) does not fit: it
 * compares case-sensitively, returns the first of several, and the raw value; and this
 * plugin runs on hosts from ABI 1.0 with the traffic-control additions. */
#define _POSIX_C_SOURCE 200809L
#include "auth.h"

/* A request header that must appear at most once: 1 (found), 0 (absent), -1 (repeated: a
 * client could slip a second credential past us to an upstream that reads the other one). */
int auth_single_header(torii_request_t *r, const char *name, torii_str_t *out) {
    size_t n = host->req_header_count(r), len = strlen(name);
    int found = 0;
    torii_header_t h;
    for (size_t i = 0; i < n; ++i) {
        if (host->req_header_at(r, i, &h) != TORII_OK || h.name.len != len ||
            strncasecmp(h.name.ptr, name, len) != 0)
            continue;
        if (found++) return -1;
        *out = h.value;
    }
    return found;
}

static int hexdigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decoding as HTML forms and most upstream frameworks do it: "%XX" is a byte, '+' is
 * a space, a '%' without two hex digits after it stays as it is. One decoded byte at *pp,
 * which moves past what it read. */
static char form_byte(const char **pp, const char *end) {
    const char *c = *pp;
    int hi, lo;
    if (*c == '%' && end - c >= 3 && (hi = hexdigit(c[1])) >= 0 && (lo = hexdigit(c[2])) >= 0) {
        *pp = c + 3;
        return (char)(hi * 16 + lo);
    }
    *pp = c + 1;
    return *c == '+' ? ' ' : *c;
}

static char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Does the argument name [p, end) decode to `name`? 0: no; 1: yes; 2: yes up to a decoded
 * NUL byte, which a C upstream would stop at (so it is this argument, and malformed). ASCII
 * case is ignored: some upstreams (ASP.NET) do, so "APIKEY" may be their "apikey". */
static int arg_name_is(const char *p, const char *end, const char *name, size_t nlen) {
    size_t i = 0;
    while (p < end) {
        char c = form_byte(&p, end);
        if (c == 0) return i == nlen ? 2 : 0;
        if (i == nlen || ascii_lower(c) != ascii_lower(name[i])) return 0;
        ++i;
    }
    return i == nlen;
}

/* The `name=value` of the query, into request memory: 1 (found), 0 (absent), -1 (repeated,
 * for the same reason as headers), -2 (malformed: a NUL byte in the decoded name or value).
 * Names are compared after percent-decoding, as the upstream will read them: otherwise
 * "?apikey=A&api%6Bey=B" passes A here while the upstream may take B. */
static int query_arg(torii_request_t *r, const char *name, torii_str_t *out) {
    torii_str_t q = host->req_query(r);
    size_t nlen = strlen(name);
    const char *p = q.ptr, *end = q.ptr + q.len, *value = NULL, *value_end = NULL;
    int seen = 0, nul = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        int is = arg_name_is(p, eq ? eq : pe, name, nlen);
        if (is) {
            ++seen;
            nul |= is == 2;
            value = eq ? eq + 1 : pe;
            value_end = pe;
        }
        p = amp ? amp + 1 : end;
    }
    if (!seen) return 0;
    if (seen > 1) return -1;
    if (nul) return -2;
    char *buf = host->req_alloc(r, (size_t)(value_end - value) + 1);
    if (!buf) return 0;
    size_t n = 0;
    for (const char *c = value; c < value_end;)
        buf[n++] = form_byte(&c, value_end);
    if (memchr(buf, 0, n)) return -2;
    *out = (torii_str_t){buf, n};
    return 1;
}

/* 1 (found), 0 (absent), -1 (the header or argument is repeated, or both carry one: an
 * upstream reading the other would get a credential torii never checked), -2 (a NUL byte in
 * it, which a C upstream would cut the credential at). */
int auth_credential(const auth_t *a, torii_request_t *r, torii_str_t *out) {
    torii_str_t v, qv;
    int got = a->header ? auth_single_header(r, a->header, &v) : 0;
    if (got < 0) return -1;
    if (got) {
        v = auth_trim(v);
        if (a->type == TYPE_JWT) {
            if (auth_ieq_prefix(v, "bearer ")) {
                v = auth_trim((torii_str_t){v.ptr + 7, v.len - 7});
            } else if (strcasecmp(a->header, "authorization") == 0) {
                v.len = 0; /* another scheme: not ours */
            }
        }
        got = v.len != 0;
    }
    int qgot = a->query ? query_arg(r, a->query, &qv) : 0;
    if (qgot < 0) return qgot;
    if (qgot && qv.len) {
        if (got) return -1;
        v = qv;
        got = 1;
    }
    if (!got) return 0;
    if (memchr(v.ptr, 0, v.len)) return -2;
    *out = v;
    return 1;
}

/* Removes the query argument the credential came in: the one whose name matches `query`
 * the way query_arg() matched it (decoded, any case), removed by its own decoded spelling
 * through host->req_remove_query_arg (ABI 1.3). The access phase let through only requests
 * with at most one such argument. */
void auth_hide_query_arg(const auth_t *a, torii_request_t *r) {
    torii_str_t q = host->req_query(r);
    size_t nlen = strlen(a->query);
    const char *p = q.ptr, *end = q.ptr + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        if (arg_name_is(p, ne, a->query, nlen) == 1) {
            char name[128];
            size_t n = 0;
            for (const char *c = p; c < ne && n < sizeof name;)
                name[n++] = form_byte(&c, ne);
            host->req_remove_query_arg(r, (torii_str_t){name, n});
            return; /* q is stale now; there was only one */
        }
        p = amp ? amp + 1 : end;
    }
}
