// discovery = { type = "file", path = "/etc/torii/api.targets", interval = "5s" }
//
// A file of targets, one a line:
//
//     # api pool
//     10.0.0.5:8080          # weight 1
//     10.0.0.6:8080 3
//     [2001:db8::7]:8080 2
//     localhost:9000
//
// The host is an IP literal (IPv6 in brackets) or `localhost` (127.0.0.1): names are not
// resolved, since the fleet's loop must never wait for a resolver (use type = "dns" for
// names). Every `interval` the file is stat()ed, and read again only when its inode, size or
// modification time changed. A file that cannot be read or parsed is an error naming the
// line, and the last good list stays in force until a good version appears. Writers should
// replace the file whole (write a temporary file, rename it over): a file read half-written
// may still parse, as a shorter list.
#pragma once

#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "modules/discovery/discovery_source.h"

namespace torii {

// Bigger than any sane list of targets; a bigger file is refused rather than read.
inline constexpr size_t kMaxTargetsFile = 1 << 20;

// The targets of a whole file, in file order; or "line N: why" for the first bad line.
Result<std::vector<DiscoveredTarget>> parse_targets_file(std::string_view text);

}  // namespace torii
