// TOML basic strings for the targets that write a config around fuzzed text.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace torii::fuzz {

// "text" with every byte TOML does not take literally escaped. Bytes from 0x80 become
// \u0080..\u00ff, so any input gives a valid string.
inline std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c >= 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

}  // namespace torii::fuzz
