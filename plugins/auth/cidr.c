/* auth: allow/deny address lists. Entries are "10.0.0.0/8", "192.168.1.7" (a /32),
 * "2001:db8::/32", "::1" (a /128). An IPv4-mapped IPv6 entry ("::ffff:10.0.0.0/104") is
 * stored as its IPv4 form, and so is a mapped client address, so one IPv4 rule covers a
 * client whether it arrived over IPv4 or on a dual-stack IPv6 socket. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses "addr[/prefix]" into *out; returns NULL or a message. */
static const char *parse_cidr(torii_str_t text, cidr_t *out) {
    char buf[64];
    if (text.len == 0) return "empty entry";
    if (text.len >= sizeof buf) return "not an address or CIDR block";
    memcpy(buf, text.ptr, text.len);
    buf[text.len] = 0;
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = 0;
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3) return "bad prefix length";
        prefix = 0;
        for (; *p; ++p) {
            if (*p < '0' || *p > '9') return "bad prefix length";
            prefix = prefix * 10 + (*p - '0');
        }
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->v6 = 0;
        if (prefix > 32) return "prefix length over 32 for an IPv4 address";
        out->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->v6 = 1;
        if (prefix > 128) return "prefix length over 128 for an IPv6 address";
        out->prefix = prefix < 0 ? 128 : (unsigned)prefix;
        if (out->prefix >= 96 && memcmp(out->addr, v4_mapped_prefix, 12) == 0) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->v6 = 0;
            out->prefix -= 96;
        }
    } else {
        return "not an address or CIDR block";
    }
    /* Host bits under the prefix are almost always a typo ("10.1.2.3/8"). */
    unsigned bytes = out->v6 ? 16 : 4;
    for (unsigned bit = out->prefix; bit < bytes * 8; ++bit)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return "address has bits set past the prefix length";
    return NULL;
}

int cidr_read_list(const torii_conf_t *conf, const char *key, cidr_list_t *out) {
    size_t n = host->conf_array_size(conf, key);
    if (n == 0) return TORII_OK; /* absent or empty; a non-array was already reported */
    out->items = calloc(n, sizeof(cidr_t));
    if (!out->items) return TORII_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        torii_str_t s;
        if (host->conf_array_string(conf, key, i, &s) != TORII_OK) return TORII_EINVAL;
        const char *why = parse_cidr(s, &out->items[out->count]);
        if (why)
            return host->conf_error(conf, key, "[%zu] = \"%.*s\": %s", i, (int)s.len, s.ptr, why);
        out->count++;
    }
    return TORII_OK;
}

void cidr_free_list(cidr_list_t *list) {
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

int cidr_parse_addr(torii_str_t text, cidr_t *out) {
    if (memchr(text.ptr, '/', text.len)) return 0;
    /* %zone suffixes (fe80::1%eth0) are not part of the address. */
    const char *pct = memchr(text.ptr, '%', text.len);
    if (pct) text.len = (size_t)(pct - text.ptr);
    return parse_cidr(text, out) == NULL;
}

int cidr_match(const cidr_list_t *list, const cidr_t *addr) {
    for (size_t i = 0; i < list->count; ++i) {
        const cidr_t *c = &list->items[i];
        if (c->v6 != addr->v6) continue;
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(c->addr, addr->addr, full) != 0) continue;
        if (rest) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((c->addr[full] & mask) != (addr->addr[full] & mask)) continue;
        }
        return 1;
    }
    return 0;
}
