/* auth: base64 decoding, for Basic credentials and password hashes (RFC 4648 section 4,
 * '=' padding optional) and JWT parts (base64url, section 5, canonical spelling only).
 *
 * OpenSSL's EVP_DecodeBlock does the decoding. It reads only whole, '='-padded groups of
 * the standard alphabet, and is lenient where we must not be: it skips white space around
 * the input and reads a '=' inside it as zero bits. So every character is checked here
 * first (and base64url's '-' and '_' mapped to '+' and '/'), and the padding is ours. */
#include <openssl/evp.h>

#include "auth.h"

/* The character as the standard alphabet spells it, or 0 when it is not one of ours. */
static char b64_char(unsigned char c, int url) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return (char)c;
    if (c == (url ? '-' : '+')) return '+';
    if (c == (url ? '_' : '/')) return '/';
    return 0;
}

int auth_b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out, size_t *out_len) {
    int url = (flags & AUTH_B64_URL) != 0;
    if (!(flags & AUTH_B64_STRICT))
        while (len > 0 && in[len - 1] == '=')
            --len; /* padding is optional */
    if (len % 4 == 1) return 0;
    /* A chunk at a time on the stack (a multiple of 4, so only the last one is partial),
     * with room for the padding of the last. */
    char chunk[256 + 3];
    size_t n = 0, i = 0, k = 0;
    while (i < len) {
        for (k = 0; k < 256 && i < len; ++k, ++i)
            if (!(chunk[k] = b64_char((unsigned char)in[i], url))) return 0;
        size_t pad = (4 - k % 4) % 4;
        memset(chunk + k, '=', pad);
        int got = EVP_DecodeBlock(out + n, (const unsigned char *)chunk, (int)(k + pad));
        if (got < 0) return 0;
        n += (size_t)got - pad; /* EVP_DecodeBlock counts a padded group as 3 bytes */
    }
    /* Strict: "...A" and "...B" must not decode alike, or one token has several spellings
     * and a list keyed on the token string (revocation, replay) is sidestepped. The last
     * partial group is canonical when encoding its bytes again spells it the same. */
    size_t rem = len % 4;
    if ((flags & AUTH_B64_STRICT) && rem) {
        unsigned char again[5];
        EVP_EncodeBlock(again, out + n - (rem - 1), (int)(rem - 1));
        if (memcmp(again, chunk + k - rem, rem) != 0) return 0;
    }
    *out_len = n;
    return 1;
}
