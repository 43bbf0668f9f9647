// What a proxy changes in heads that cross it (RFC 9110 section 7.6): hop-by-hop fields and
// the fields named in Connection stay behind; X-Forwarded-For, X-Real-IP,
// X-Forwarded-Proto and Via record the hop.
#pragma once

#include "core/http/request.h"

namespace torii {

// True for fields that describe one connection, not the message (Trailer stays: trailers
// are passed on).
bool is_hop_by_hop(HeaderId id);

// The request head for the upstream, without framing fields (the caller adds them).
void build_upstream_request_headers(Request &req, HeaderList &out);
// Copies the upstream response's fields into req.response.headers, without hop-by-hop and
// framing fields.
void copy_response_headers(const HeaderList &from, HeaderList &to);

}  // namespace torii
