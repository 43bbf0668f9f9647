// The file-descriptor budget of a worker (nginx's worker_connections against RLIMIT_NOFILE).
//
// A client connection that is proxied needs a second fd for its upstream connection, and a
// worker needs a few more for itself (listening sockets, logs, the event loop, plugins'
// files, DNS, health probes). So a worker holds at most half of what its limit leaves after
// that fixed share: a worker full of clients can still connect upstream for each of them
// instead of running out of fds mid-request.
#pragma once

#include <string>

namespace torii {

// fds a worker keeps for itself besides client and upstream connections.
inline constexpr long kFixedFds = 64;

// fds worker_connections needs: a client and an upstream fd each, plus the fixed share.
long fds_needed(int worker_connections);

// Raises the soft RLIMIT_NOFILE toward fds_needed(worker_connections), never above the hard
// limit and never lowering it. Returns a warning to log when the limit stays short, else "".
// Called before workers are forked, so they inherit the limit.
std::string raise_fd_limit(int worker_connections);

// The client connections a worker may hold under the current soft RLIMIT_NOFILE: at most
// worker_connections, at least 1.
int client_connection_limit(int worker_connections);

}  // namespace torii
