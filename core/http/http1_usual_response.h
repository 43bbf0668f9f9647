// The usual upstream response head, parsed in one pass without llhttp: what nginx, h2o,
// Node, Go and most application servers send to a keep-alive proxy for an ordinary answer.
//
//   HTTP/1.1 200 OK\r\n
//   Name: value\r\n            (token names; visible ASCII, SP and HTAB in values)
//   Content-Length: 23\r\n     (exactly one; the body is that many bytes)
//   \r\n
//
// Anything else (another version, a 1xx/204/304 status, no length or chunked, Connection
// other than keep-alive, Upgrade, obs-fold, a bare LF, obs-text, white space at a value's
// end, a head not whole in the buffer) is declined, and llhttp parses the message as
// before. So this accepts a strict subset of what llhttp accepts, with the same result:
// t/fuzz/http1_response_fuzz.cc checks every input both ways. llhttp costs about 1,900
// instructions for nginx's five-field head; this about a third of that.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/base/arena.h"
#include "core/http/message.h"

namespace torii {

// Parses the head at the start of [buf, buf + len) into `resp` (its reason and headers
// copied into `arena`, one copy for the whole head; content_length set). Returns the
// head's length through the blank line, or 0 when declined; `resp` is then as it was.
// A head whose size as Http1Parser counts it (reason, names and values, 4 bytes a field)
// is over `max_counted` is declined: llhttp's path refuses it.
size_t parse_usual_response_head(const char *buf, size_t len, uint64_t max_counted,
                                 ResponseHead *resp, Arena *arena);

}  // namespace torii
