// The shared zone's state file beside the pid file ("torii.pid" -> "torii.state"): written
// when the master stops, after its last worker exited, and read back at the next start
// before the first worker forks, so rate-limit buckets and breaker states survive a
// graceful stop and start as they survive a reload. No pid file, no state file.
#pragma once

#include <string>

namespace torii {

class SharedZone;

std::string zone_state_path(const std::string &pid_file);
void restore_zone_state(SharedZone &zone, const std::string &pid_file);
void save_zone_state(const SharedZone &zone, const std::string &pid_file);

}  // namespace torii
