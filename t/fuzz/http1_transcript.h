// What the HTTP/1 fuzz targets compare: one line per parser event with the head it
// produced, so that feeding the same bytes whole or split anywhere must give the same text.
// Split points are where llhttp hands torii half a piece of a head (http1_parser.cc copies
// pieces into the arena and rebases views); any view left on the input shows up here as a
// different transcript or, under ASan, as a use after free.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "core/http/http1_parser.h"
#include "core/http/message.h"
#include "t/fuzz/fuzz_input.h"
#include "t/unit/support/read_piece.h"

namespace torii::fuzz {

inline void append_fields(std::string &out, const char *what, const HeaderList &fields) {
    for (const Header &h : fields) {
        out += what;
        out.append(h.name);
        out += ": ";
        out.append(h.value);
        out += '\n';
    }
}

inline void append_head(std::string &out, const RequestHead &h) {
    out += "request ";
    out.append(h.method);
    out += ' ';
    out.append(h.target);
    out += h.version == HttpVersion::http10 ? " 1.0" : " 1.1";
    out += " cl=" + std::to_string(h.content_length) + (h.chunked ? " chunked" : "") +
           (h.expect_continue ? " expect" : "") + (h.upgrade ? " upgrade" : "") + " authority=";
    out.append(h.authority);
    out += '\n';
    append_fields(out, "  ", h.headers);
}

inline void append_head(std::string &out, const ResponseHead &h) {
    out += "response " + std::to_string(h.status) + " ";
    out.append(h.reason);
    out += " cl=" + std::to_string(h.content_length) + (h.chunked ? " chunked" : "") +
           (h.no_body ? " no_body" : "") + '\n';
    append_fields(out, "  ", h.headers);
}

// The transcript with control and non-ASCII bytes as \xNN, for printing a mismatch (a NUL
// would end it early, an escape sequence would garble the terminal).
inline std::string printable(std::string_view text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : text) {
        if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// Aborts, printing both, when a way of feeding the bytes gave another transcript than the
// bytes whole from the input buffer.
inline void check_same_transcript(const std::string &whole, const char *how,
                                  const std::string &other, size_t step) {
    if (other == whole) return;
    std::fprintf(stderr, "whole, from the input:\n%s\n%s (pieces of %zu bytes):\n%s\n",
                 printable(whole).c_str(), how, step, printable(other).c_str());
    FUZZ_CHECK(other == whole);
}

using Piece = test::ReadPiece;  // t/unit/support/read_piece.h

}  // namespace torii::fuzz
