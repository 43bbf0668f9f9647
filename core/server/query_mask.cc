#include "core/server/query_mask.h"

#include "core/http/query_args.h"

#include <iterator>
#include <vector>

namespace torii {

namespace {

constexpr size_t kMaxName = 64;

// Conventional names of credentials in URLs (RFC 6750's access_token, API key and
// signed-URL conventions), masked whether or not a plugin checks them: an upstream may.
// Masking a harmless value costs a less useful log line; keeping a key costs the key.
// clang-format off
const char *const kBuiltin[] = {
    "apikey", "api_key", "api-key", "key", "token", "access_token", "refresh_token", "id_token",
    "jwt", "auth", "password", "passwd", "pwd", "secret", "client_secret", "sig", "signature",
    "x-amz-signature", "x-amz-security-token"};
// clang-format on

// Lowercase; the built-in names, then those plugins registered.
std::vector<std::string> &names() {
    static std::vector<std::string> list(std::begin(kBuiltin), std::end(kBuiltin));
    return list;
}

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Decodes an argument name as forms do ("%XX", '+' is a space) and lowercases it; a decoded
// NUL ends it (a C upstream stops there too). Empty when longer than any masked name.
std::string_view decode_name(std::string_view raw, char (&buf)[kMaxName]) {
    size_t n = 0;
    for (size_t i = 0; i < raw.size();) {
        char c = form_decode_char(raw, &i);
        if (c == 0) break;
        if (n == kMaxName) return {};
        buf[n++] = lower(c);
    }
    return {buf, n};
}

bool masked(std::string_view raw_name) {
    char buf[kMaxName];
    std::string_view name = decode_name(raw_name, buf);
    if (name.empty()) return false;
    for (const std::string &m : names())
        if (m == name) return true;
    return false;
}

}  // namespace

bool query_mask_add(std::string_view name) {
    if (name.empty() || name.size() > kMaxName) return false;
    std::string low(name);
    for (char &c : low)
        c = lower(c);
    for (const std::string &m : names())
        if (m == low) return true;
    names().push_back(std::move(low));
    return true;
}

void append_masked_query(std::string &out, std::string_view query) {
    size_t start = 0;
    for (;;) {
        size_t amp = query.find('&', start);
        std::string_view arg =
            query.substr(start, amp == std::string_view::npos ? amp : amp - start);
        size_t eq = arg.find('=');
        if (eq != std::string_view::npos && eq + 1 < arg.size() && masked(arg.substr(0, eq))) {
            out += arg.substr(0, eq + 1);
            out += "***";
        } else {
            out += arg;
        }
        if (amp == std::string_view::npos) break;
        out += '&';
        start = amp + 1;
    }
}

void append_masked_target(std::string &out, std::string_view target) {
    size_t start = target.find('?');
    if (start == std::string_view::npos) {  // the common case costs one scan
        out += target;
        return;
    }
    out += target.substr(0, start + 1);
    append_masked_query(out, target.substr(start + 1));
}

}  // namespace torii
