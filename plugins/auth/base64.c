/* auth: base64 decoding, for Basic credentials and password hashes (RFC 4648 section 4,
 * '=' padding optional) and JWT parts (base64url, section 5, canonical spelling only). */
#include "auth.h"

static int b64_value(unsigned char c, int url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

int auth_b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out, size_t *out_len) {
    int url = (flags & AUTH_B64_URL) != 0;
    if (!(flags & AUTH_B64_STRICT))
        while (len > 0 && in[len - 1] == '=')
            --len; /* padding is optional */
    if (len % 4 == 1) return 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        int v = b64_value((unsigned char)in[i], url);
        if (v < 0) return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* Strict: "...A" and "...B" must not decode alike, or one token has several spellings
     * and a list keyed on the token string (revocation, replay) is sidestepped. */
    if ((flags & AUTH_B64_STRICT) && (acc & ((1u << bits) - 1u))) return 0;
    *out_len = n;
    return 1;
}
