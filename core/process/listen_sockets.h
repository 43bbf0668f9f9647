// The listening sockets a configuration needs, named by one key scheme shared by the master
// (which opens and keeps them across reloads), single-process mode, and worker processes
// (which pick theirs): "127.0.0.1:8080" for a [[server]] listen, "admin|127.0.0.1:9901" for
// the [admin] listener.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/base/result.h"
#include "core/config/config.h"
#include "core/worker/worker.h"

namespace torii {

// Every listen address of `config` with its key (each key once).
std::vector<std::pair<std::string, const SocketAddress *>> listen_keys(const Config &config);
// Opens the sockets of `config` that `open` (key -> fd) does not have yet.
Result<void> open_missing_sockets(const Config &config, std::map<std::string, int> &open);
// The sockets of `config`, taken from `open`, as a worker is handed them.
std::vector<ListenSocket> sockets_for(const Config &config, const std::map<std::string, int> &open);

}  // namespace torii
