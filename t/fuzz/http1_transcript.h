// What the HTTP/1 fuzz targets compare: one line per parser event with the head it
// produced, so that feeding the same bytes whole or split anywhere must give the same text.
// Split points are where llhttp hands torii half a piece of a head (http1_parser.cc copies
// pieces into the arena and rebases views); any view left on the input shows up here as a
// different transcript or, under ASan, as a use after free.
#pragma once

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "core/http/http1_parser.h"
#include "core/http/message.h"
#include "t/fuzz/fuzz_input.h"

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

// One read's bytes on their way to the parser. From the input: added to `in` at once, each
// piece its own chain as reads from a socket are. In place: handed to the first feed() as
// `fresh` from a heap copy that is freed when that call returns, as the worker's read buffer
// is reused by the next read, so a view left pointing into it is a use after free (ASan).
class Piece {
public:
    Piece(std::string_view bytes, evbuffer *in, bool in_place) : in_(in) {
        if (!in_place) {
            evbuffer_add(in, bytes.data(), bytes.size());
            return;
        }
        copy_.reset(new char[bytes.size()]);
        std::memcpy(copy_.get(), bytes.data(), bytes.size());
        size_ = bytes.size();
    }

    ParseEvent feed(Http1Parser &p, evbuffer *body, size_t body_limit) {
        if (!copy_) return p.feed(in_, body, body_limit);
        ParseEvent ev = p.feed(in_, body, body_limit, {copy_.get(), size_});
        copy_.reset();
        return ev;
    }

private:
    evbuffer *in_;
    std::unique_ptr<char[]> copy_;
    size_t size_ = 0;
};

}  // namespace torii::fuzz
