// Small text helpers for messages and checks shared by the config loader and the modules
// that talk to targets (health probes, DNS discovery).
#pragma once

#include <cstring>
#include <string>
#include <string_view>

namespace torii {

// A C0 control character or DEL anywhere in `s`: what a request line, a header value or a
// log line must not carry.
inline bool has_control_chars(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
    return false;
}

// strerror(err) as the messages of logs and GET /upstreams read: "Connection refused" ->
// "connection refused".
inline std::string errno_text(int err) {
    std::string s = std::strerror(err);
    if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
    return s;
}

}  // namespace torii
