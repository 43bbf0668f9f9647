// The wall clock as log lines write it. Formatting local time (localtime_r, strftime) costs
// more than the rest of a log line, so the text is made at most once a second per process,
// as nginx caches its time strings.
#pragma once

#include <string_view>

namespace torii {

struct WallClockText {
    std::string_view local;    // "10/Oct/2000:13:55:36 -0700" (nginx's $time_local)
    std::string_view iso8601;  // "2000-10-10T13:55:36-07:00" (nginx's $time_iso8601)
};

// Now, to the second; the views stay valid until the next call.
WallClockText wall_clock_text();

}  // namespace torii
