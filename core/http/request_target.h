// From the request target as received to the path, query and authority that routing,
// plugins and the upstream use; the same for every protocol (HTTP/2 hands :path and
// :authority to the same function).
//
//   origin-form    "/a/b?q"             path "/a/b", query "q"
//   absolute-form  "http://h:1/a?q"     the target's authority wins over Host, which is
//                                       replaced in the working headers (RFC 9112 3.2.2)
//   asterisk-form  "*" (OPTIONS only)   path "/"
//
// The path is normalised (core/http/path_normalizer.h); the authority must be a valid
// host[:port].
#pragma once

namespace torii {

struct Request;

// Fills req.path, req.query and req.input.authority (and rewrites req.headers' Host for an
// absolute-form target). Returns 0, or 400 with *why set.
int prepare_request_target(Request &req, const char **why);

}  // namespace torii
