#include "core/base/wall_clock.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace torii {

namespace {
time_t cached_second = -1;
char local_buf[40];
char iso_buf[40];
size_t local_len = 0;
size_t iso_len = 0;
}  // namespace

WallClockText wall_clock_text() {
    time_t now = ::time(nullptr);  // vDSO: no syscall
    if (now != cached_second) {
        struct tm tm;
        localtime_r(&now, &tm);
        local_len = strftime(local_buf, sizeof local_buf, "%d/%b/%Y:%H:%M:%S %z", &tm);
        // strftime's %z has no colon ("+0200"); ISO 8601 as nginx writes it has one.
        size_t n = strftime(iso_buf, sizeof iso_buf, "%Y-%m-%dT%H:%M:%S", &tm);
        long off = tm.tm_gmtoff / 60;
        int len = snprintf(iso_buf + n, sizeof iso_buf - n, "%c%02ld:%02ld", off < 0 ? '-' : '+',
                           std::labs(off) / 60, std::labs(off) % 60);
        iso_len = n + (len > 0 ? static_cast<size_t>(len) : 0);
        cached_second = now;
    }
    return {{local_buf, local_len}, {iso_buf, iso_len}};
}

}  // namespace torii
