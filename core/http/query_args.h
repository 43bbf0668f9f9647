// Query arguments ("a=1&b=2", what follows '?'), read the way forms and applications read
// them: names percent-decoded ("%XX", '+' is a space). Shared by the access log's credential
// masking (core/server/query_mask.cc) and the plugins' query functions (host_api.cc).
#pragma once

#include <string_view>

namespace torii {

// The value of a hex digit, or -1.
int hex_digit(char c);

// The next character of `raw` at `*i` decoded ("%XX" or '+'), advancing *i past it.
char form_decode_char(std::string_view raw, size_t *i);

// Whether the raw argument name decodes to exactly `name`.
bool query_arg_name_is(std::string_view raw, std::string_view name);

// Calls fn(arg, raw_name, raw_value) for each non-empty argument; stops when fn returns true.
template <class Fn>
void each_query_arg(std::string_view query, Fn fn) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view arg = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (arg.empty()) continue;
        size_t eq = arg.find('=');
        std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : arg.substr(eq + 1);
        if (fn(arg, arg.substr(0, eq), value)) return;
    }
}

}  // namespace torii
