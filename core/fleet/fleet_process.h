// What the fleet process does after the master forks it: die with the master, hold no
// listening socket, and run the Fleet (core/fleet/fleet.h) on its own loop until SIGTERM,
// saving unsaved admin changes on the way out.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace torii {

struct Config;
class TargetTable;

// The process's exit code.
int run_fleet_process(std::shared_ptr<const Config> config, TargetTable *table,
                      const std::map<std::string, int> &sockets);

}  // namespace torii
