/* JSON writers shared by the bundled plugins: see json.h. */
#include "common/json.h"

#include <stdio.h>
#include <string.h>

void pc_put(const torii_host_t *h, torii_buf_t *out, const char *text) {
    h->buf_append(out, (torii_str_t){text, strlen(text)});
}

void pc_put_json_string(const torii_host_t *h, torii_buf_t *out, const char *s, size_t n) {
    char buf[8];
    pc_put(h, out, "\"");
    for (size_t i = 0; i < n; ++i) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[0] = '\\';
            buf[1] = (char)ch;
            buf[2] = 0;
        } else if (ch < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", ch);
        } else {
            buf[0] = (char)ch;
            buf[1] = 0;
        }
        pc_put(h, out, buf);
    }
    pc_put(h, out, "\"");
}
