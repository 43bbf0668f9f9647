// Serialises HTTP/1.1 heads and frames bodies. A head is written with one reserve/commit of
// contiguous space in the output evbuffer, or where its caller has room for it (size first,
// then the bytes: Socket::write_head); body data is moved in, never copied.
#pragma once

#include <event2/buffer.h>

#include <string_view>

#include "core/http/message.h"

namespace torii {

const char *status_reason(int status);

// "GET /x HTTP/1.1\r\n" + fields + "\r\n"
void write_request_head(evbuffer *out, std::string_view method, std::string_view target,
                        const HeaderList &headers);
// "HTTP/1.1 200 OK\r\n" + fields + "\r\n"; an empty reason uses the standard phrase.
void write_response_head(evbuffer *out, HttpVersion version, int status, std::string_view reason,
                         const HeaderList &headers);
// The same heads in two steps: the exact size, then the bytes at p (returns their end).
size_t request_head_size(std::string_view method, std::string_view target,
                         const HeaderList &headers);
char *put_request_head(char *p, std::string_view method, std::string_view target,
                       const HeaderList &headers);
size_t response_head_size(int status, std::string_view reason, const HeaderList &headers);
char *put_response_head(char *p, HttpVersion version, int status, std::string_view reason,
                        const HeaderList &headers);
// Moves all of `data` into `out` as one chunk.
void write_chunk(evbuffer *out, evbuffer *data);
// "0\r\n" + trailer fields + "\r\n"
void write_last_chunk(evbuffer *out, const HeaderList *trailers);

}  // namespace torii
