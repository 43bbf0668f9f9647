#include "core/base/json_escape.h"

#include <doctest/doctest.h>

using namespace torii;

static std::string esc(std::string_view s) {
    std::string out;
    append_json_escaped(out, s);
    return out;
}

TEST_CASE("JSON escaping: metacharacters and control bytes") {
    CHECK(esc("plain /path?a=1") == "plain /path?a=1");
    CHECK(esc("a\"b\\c") == "a\\\"b\\\\c");
    CHECK(esc("\n\r\t\b\f") == "\\n\\r\\t\\b\\f");
    CHECK(esc(std::string_view("\x00\x01\x1f\x7f", 4)) == "\\u0000\\u0001\\u001f\\u007f");
    CHECK(esc("") == "");
    std::string quoted;
    append_json_string(quoted, "x\"y");
    CHECK(quoted == "\"x\\\"y\"");
}

TEST_CASE("JSON escaping: valid UTF-8 is kept, each invalid byte becomes U+FFFD") {
    CHECK(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK(esc("\xff") == "\\ufffd");
    CHECK(esc("a\x80z") == "a\\ufffdz");                               // a lone continuation byte
    CHECK(esc("\xc3") == "\\ufffd");                                   // truncated at the end
    CHECK(esc("\xc3(") == "\\ufffd(");                                 // truncated before ASCII
    CHECK(esc("\xc0\xaf") == "\\ufffd\\ufffd");                        // overlong '/'
    CHECK(esc("\xe0\x80\xaf") == "\\ufffd\\ufffd\\ufffd");             // overlong, 3 bytes
    CHECK(esc("\xed\xa0\x80") == "\\ufffd\\ufffd\\ufffd");             // a UTF-16 surrogate
    CHECK(esc("\xf4\x90\x80\x80") == "\\ufffd\\ufffd\\ufffd\\ufffd");  // past U+10FFFF
    CHECK(esc("\xf5\x80") == "\\ufffd\\ufffd");
    CHECK(esc("\xef\xbf\xbd") == "\xef\xbf\xbd");          // U+FFFD itself is valid
    CHECK(esc("\xf4\x8f\xbf\xbf") == "\xf4\x8f\xbf\xbf");  // U+10FFFF, the last code point
}

TEST_CASE("utf8_sequence_length follows RFC 3629") {
    CHECK(utf8_sequence_length("a") == 1);
    CHECK(utf8_sequence_length("\xc2\x80") == 2);
    CHECK(utf8_sequence_length("\xc1\xbf") == 0);
    CHECK(utf8_sequence_length("\xe0\xa0\x80") == 3);
    CHECK(utf8_sequence_length("\xed\x9f\xbf") == 3);  // U+D7FF, just below the surrogates
    CHECK(utf8_sequence_length("\xf0\x90\x80\x80") == 4);
    CHECK(utf8_sequence_length("\xf0\x8f\xbf\xbf") == 0);
    CHECK(utf8_sequence_length("") == 0);
}
