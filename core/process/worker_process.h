// What a worker process does after the master forks it: drop the master's signal
// dispositions, die with the master, keep only its generation's listening sockets, and run
// a Worker loop until told to stop.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace torii {

struct Config;
class PluginSet;
class MasterStatus;
struct WorkerSlot;

struct WorkerProcessArgs {
    std::shared_ptr<const Config> config;
    std::shared_ptr<PluginSet> plugins;
    const std::map<std::string, int> *sockets;  // every listening socket the master holds
    uint32_t generation;
    MasterStatus *status;
    std::string config_file;
    WorkerSlot *slot;  // where this worker leaves its last request line; may be null
};

// The worker process's exit code.
// The worker takes the references in `args`: with the master's own dropped (see
// Master::do_spawn), its config and plugins are freed in this process before it exits.
int run_worker_process(WorkerProcessArgs &&args);

}  // namespace torii
