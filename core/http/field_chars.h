// What may appear in a header field (RFC 9110 5.1, 5.5), by table: a plugin's or the config's
// header is checked on every request that sets it, so one load per byte, no branches on
// character classes.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace torii {

namespace field_chars_detail {

enum : uint8_t { kTchar = 1, kValueChar = 2 };

constexpr std::array<uint8_t, 256> make_table() {
    std::array<uint8_t, 256> t{};
    for (int c = 0x21; c < 0x7f; ++c) {  // VCHAR
        t[c] = kValueChar;
        bool delimiter = false;
        for (char d : std::string_view("\"(),/:;<=>?@[\\]{}"))
            if (c == d) delimiter = true;
        if (!delimiter) t[c] |= kTchar;
    }
    for (int c = 0x80; c < 0x100; ++c)  // obs-text: allowed in values, never in names
        t[c] = kValueChar;
    t[' '] = t['\t'] = kValueChar;
    return t;
}

inline constexpr std::array<uint8_t, 256> kTable = make_table();

}  // namespace field_chars_detail

// A field name: one or more tchar (no white space, colon, delimiter, control or non-ASCII).
inline bool valid_field_name(std::string_view name) {
    if (name.empty()) return false;
    uint8_t all = field_chars_detail::kTchar;
    for (unsigned char c : name)
        all &= field_chars_detail::kTable[c];
    return all != 0;
}

// A field value: visible characters, obs-text, spaces and tabs; no CR, LF, NUL or other
// control character (a backend could end the field there, or read it differently).
inline bool valid_field_value(std::string_view value) {
    uint8_t all = field_chars_detail::kValueChar;
    for (unsigned char c : value)
        all &= field_chars_detail::kTable[c];
    return all != 0;
}

}  // namespace torii
