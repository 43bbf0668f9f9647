#include "core/http/query_args.h"

namespace torii {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

char form_decode_char(std::string_view raw, size_t *i) {
    char c = raw[*i];
    int hi, lo;
    if (c == '%' && *i + 2 < raw.size() && (hi = hex_digit(raw[*i + 1])) >= 0 &&
        (lo = hex_digit(raw[*i + 2])) >= 0) {
        *i += 3;
        return static_cast<char>(hi * 16 + lo);
    }
    *i += 1;
    return c == '+' ? ' ' : c;
}

bool query_arg_name_is(std::string_view raw, std::string_view name) {
    size_t i = 0, j = 0;
    while (i < raw.size()) {
        if (j >= name.size() || form_decode_char(raw, &i) != name[j]) return false;
        ++j;
    }
    return j == name.size();
}

}  // namespace torii
