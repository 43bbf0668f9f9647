// What a proxy changes in heads that cross it (RFC 9110 section 7.6): hop-by-hop fields and
// the fields named in Connection stay behind; X-Forwarded-For, X-Real-IP,
// X-Forwarded-Proto and Via record the hop; X-Request-Id names the request ($request_id).
#pragma once

#include "core/http/request.h"

namespace torii {

// True for fields that describe one connection, not the message (Trailer stays: trailers
// are passed on).
bool is_hop_by_hop(HeaderId id);

// The working copy of the client's request fields (req.headers), made once before any
// plugin runs. Fields the client named in Connection are hop-by-hop (RFC 9110 7.6.1) and
// are left out here, so that they can never remove a field that torii or a plugin sets
// later (Traefik's CVE-2024-45410: `Connection: X-Consumer` erasing an auth header). Names
// that carry routing, framing, forwarding or credentials are never left out that way.
void copy_client_headers(const HeaderList &in, HeaderList &out);

// A WebSocket handshake (RFC 6455 4.1): a GET asking to upgrade to "websocket". The only
// upgrade torii forwards; others are dropped like any hop-by-hop field.
bool wants_websocket(const RequestHead &in);

// The request head for the upstream from the working copy, without hop-by-hop and framing
// fields (the caller adds framing).
void build_upstream_request_headers(Request &req, HeaderList &out);
// Copies the upstream response's fields into req.response.headers, without hop-by-hop and
// framing fields.
void copy_response_headers(const HeaderList &from, HeaderList &to);
// Removes from a trailer section what may not travel there (RFC 9110 6.5.1): framing,
// routing, hop-by-hop, credentials, content format and the forwarding fields.
void drop_disallowed_trailers(HeaderList &trailers);

}  // namespace torii
