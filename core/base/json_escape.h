// JSON string escaping for text torii does not control (request targets, headers): the
// access log's JSON lines. The output is always valid JSON in UTF-8 (RFC 8259):
//   "  \  -> \"  \\            control bytes -> \n \r \t \b \f, else \u00XX (DEL too)
//   valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF) is
//   copied as is; every byte that is not part of such a sequence becomes \ufffd (U+FFFD,
//   the replacement character), one per byte, so a line always parses and its length in
//   characters still tells how many bytes were bad.
#pragma once

#include <string>
#include <string_view>

namespace torii {

// Appends the escaped contents of `s`, without quotes.
void append_json_escaped(std::string &out, std::string_view s);
// Appends `s` as a quoted JSON string.
void append_json_string(std::string &out, std::string_view s);
// The length of the valid UTF-8 sequence starting at s[0] (1 to 4), or 0 when s[0] does
// not start one (a continuation byte, an overlong or surrogate form, a truncated sequence).
size_t utf8_sequence_length(std::string_view s);

}  // namespace torii
