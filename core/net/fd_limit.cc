#include "core/net/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace torii {

long fds_needed(int worker_connections) {
    return 2L * worker_connections + kFixedFds;
}

// The clients that fit in `nofile` descriptors (see the header for the halving).
static long clients_that_fit(rlim_t nofile) {
    if (nofile == RLIM_INFINITY) return 1L << 30;
    long n = (static_cast<long>(nofile) - kFixedFds) / 2;
    return std::max(1L, n);
}

std::string raise_fd_limit(int worker_connections) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return std::string("getrlimit(RLIMIT_NOFILE): ") + strerror(errno);
    auto needed = static_cast<rlim_t>(fds_needed(worker_connections));
    auto wanted = needed + static_cast<rlim_t>(kSplicePipeFds * worker_connections);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < wanted) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, rl.rlim_max);
        if (raised.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    if (clients_that_fit(rl.rlim_cur) >= worker_connections) return {};
    return "worker_connections " + std::to_string(worker_connections) + " needs " +
           std::to_string(needed) + " open files, the limit is " +
           std::to_string(static_cast<unsigned long long>(rl.rlim_cur)) + " (hard limit " +
           (rl.rlim_max == RLIM_INFINITY
                ? std::string("unlimited")
                : std::to_string(static_cast<unsigned long long>(rl.rlim_max))) +
           "): a worker holds at most " + std::to_string(clients_that_fit(rl.rlim_cur)) +
           " client connections";
}

int client_connection_limit(int worker_connections) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return worker_connections;
    return static_cast<int>(std::min<long>(worker_connections, clients_that_fit(rl.rlim_cur)));
}

bool splice_pipes_fit(int worker_connections, long spliced) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    if (rl.rlim_cur == RLIM_INFINITY) return true;
    long reserved = fds_needed(client_connection_limit(worker_connections));
    return reserved + kSplicePipeFds * (spliced + 1) <= static_cast<long>(rl.rlim_cur);
}

}  // namespace torii
