// Durations ("250ms", "2s", "1m", "1h", "1d") and sizes ("512", "8k", "1m", "1g") as the
// config writes them. Both reject empty input, unknown suffixes, signs and overflow.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/base/result.h"

namespace torii {

// Milliseconds; every timeout in torii is kept at this resolution.
using Millis = int64_t;

Result<Millis> parse_duration(std::string_view text);
Result<uint64_t> parse_size(std::string_view text);

}  // namespace torii
