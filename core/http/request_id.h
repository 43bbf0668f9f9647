// $request_id: one id per request, sent to the upstream as X-Request-Id and written to the
// access log, so a line in torii's log and one in the upstream's can be matched.
//
// The id is the request's X-Request-Id when it has a non-empty one (the client's, or one a
// plugin set before the id was first used), else 32 hex digits (128 random bits, nginx's
// $request_id form) from the worker's fast PRNG. It is fixed the first time something asks
// for it: the upstream head (core/proxy/forwarded_headers.cc), the access log or a plugin.
#pragma once

#include <string_view>

#include "core/http/request.h"

namespace torii {

// Writes 32 random lowercase hex digits at `out`.
void make_request_id(char *out);

std::string_view request_id(Request &req);
// The same when the caller has already looked for the request's X-Request-Id (`sent`: its
// first non-empty value, or empty), saving another scan of the headers. Inline: every
// proxied request takes this path.
inline std::string_view request_id(Request &req, std::string_view sent) {
    if (!req.request_id.empty()) return req.request_id;
    if (!sent.empty()) return req.request_id = sent;
    make_request_id(req.request_id_buf);
    return req.request_id = std::string_view(req.request_id_buf, sizeof req.request_id_buf);
}

}  // namespace torii
