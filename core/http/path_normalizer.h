// Request paths as nginx sees them before choosing a location: percent-encoded unreserved
// characters decoded, slashes merged, "." and ".." segments resolved. Routing on the raw
// path lets `/%61dmin/`, `//admin/`, `/./admin/` or `/x/../admin/` walk past a location
// that protects `/admin/` while the application still serves `/admin/`.
//
// Reserved characters stay encoded (`%2F` is not a separator, `%3F` not a query), so the
// normalised path means to a backend exactly what it means to torii; it is what the
// upstream receives.
#pragma once

#include <string_view>

#include "core/base/arena.h"

namespace torii {

// Writes the normalised form of `path` (which starts with '/') to *out: `path` itself when
// nothing changes, else a copy in `arena`. Returns 0, or 400 with *why set for a path that
// climbs above the root, an encoded NUL or a malformed percent-escape.
int normalize_path(std::string_view path, Arena &arena, std::string_view *out, const char **why);

}  // namespace torii
