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

// fds a splice tunnel (a plain TCP session of a tcp server) holds besides its two sockets: a
// pipe per direction.
inline constexpr long kSplicePipeFds = 4;

// Raises the soft RLIMIT_NOFILE toward fds_needed(worker_connections) plus splice pipes for
// as many sessions, never above the hard limit and never lowering it. Returns a warning to
// log when the limit stays short of fds_needed, else "". Called before workers are forked,
// so they inherit the limit.
std::string raise_fd_limit(int worker_connections);

// Whether a new splice tunnel's pipes fit beside `spliced` live ones. Pipes only use what
// the limit leaves above fds_needed for the clients a worker may hold, so they never take
// the upstream fd a later client was promised: short of that the session copies through
// user space instead (core/tunnel/tunnel.h), which needs no extra fd.
bool splice_pipes_fit(int worker_connections, long spliced);

// The client connections a worker may hold under the current soft RLIMIT_NOFILE: at most
// worker_connections, at least 1.
int client_connection_limit(int worker_connections);

}  // namespace torii
