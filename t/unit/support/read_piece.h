// One read's bytes on their way to an Http1Parser, as a socket hands them over. From the
// input: added to `in` at once, each piece its own chain as reads are. In place: handed to
// the first feed() as `fresh` from a heap copy freed when that call returns, as the
// worker's read buffer is reused by the next read, so a view left pointing into it is a
// use after free under ASan. Shared by the parser unit tests and the HTTP/1 fuzz targets.
#pragma once

#include <event2/buffer.h>

#include <cstring>
#include <memory>
#include <string_view>

#include "core/http/http1_parser.h"

namespace torii::test {

class ReadPiece {
public:
    ReadPiece(std::string_view bytes, evbuffer *in, bool in_place) : in_(in) {
        if (!in_place) {
            evbuffer_add(in, bytes.data(), bytes.size());
            return;
        }
        copy_.reset(new char[bytes.size()]);
        std::memcpy(copy_.get(), bytes.data(), bytes.size());
        size_ = bytes.size();
    }

    ParseEvent feed(Http1Parser &p, evbuffer *body, size_t body_limit = SIZE_MAX) {
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

}  // namespace torii::test
