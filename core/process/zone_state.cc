#include "core/process/zone_state.h"

#include <unistd.h>

#include "core/base/log.h"
#include "core/shm/shared_zone.h"

namespace torii {

std::string zone_state_path(const std::string &pid_file) {
    if (pid_file.empty()) return {};
    std::string base = pid_file;
    if (base.size() > 4 && base.compare(base.size() - 4, 4, ".pid") == 0)
        base.resize(base.size() - 4);
    return base + ".state";
}

void restore_zone_state(SharedZone &zone, const std::string &pid_file) {
    std::string path = zone_state_path(pid_file);
    if (path.empty()) return;
    std::string error;
    long restored = zone.load_state(path, &error);
    if (restored < 0)
        log_warn("shared state not restored: %s", error.c_str());
    else if (restored > 0)
        log_notice("restored %ld shared entries (rate-limit buckets, breaker states) from %s",
                   restored, path.c_str());
    // Used once: a later start after a crash must not go back to this older state.
    ::unlink(path.c_str());
}

void save_zone_state(const SharedZone &zone, const std::string &pid_file) {
    std::string path = zone_state_path(pid_file);
    if (path.empty()) return;
    std::string error;
    // The core's own counters ("torii|": connections since start) begin anew with the master.
    if (!zone.save_state(path, {"torii|"}, &error))
        log_error("shared state not saved: %s", error.c_str());
}

}  // namespace torii
