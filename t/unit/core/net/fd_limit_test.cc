#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/net/fd_limit.h"

using namespace torii;

// Runs fn in a child (limits are per process) and returns its exit code: 0 when every
// check there passed, else the number of the first that failed.
template <typename Fn>
static int in_child(Fn fn) {
    pid_t pid = fork();
    if (pid == 0) _exit(fn());
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

TEST_CASE("a worker holds what its fd limit allows, clients and upstreams alike") {
    CHECK(fds_needed(1024) == 2112);
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    CHECK(in_child([] {
              rlimit low{256, 256};
              if (setrlimit(RLIMIT_NOFILE, &low) != 0) return 1;
              if (client_connection_limit(1024) != 96) return 2;
              if (client_connection_limit(50) != 50) return 3;
              std::string w = raise_fd_limit(1024);
              if (w.find("needs 2112 open files, the limit is 256") == std::string::npos) return 4;
              if (w.find("at most 96 client connections") == std::string::npos) return 5;
              rlimit tiny{10, 10};
              if (setrlimit(RLIMIT_NOFILE, &tiny) != 0) return 6;
              if (client_connection_limit(1024) != 1) return 7;  // never 0
              return 0;
          }) == 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096) return;
    CHECK(in_child([] {
              rlimit soft_low{256, 4096};
              if (setrlimit(RLIMIT_NOFILE, &soft_low) != 0) return 1;
              if (!raise_fd_limit(1024).empty()) return 2;  // raised toward the hard limit
              rlimit now{};
              getrlimit(RLIMIT_NOFILE, &now);
              // 2112 needed, splice pipes for as many sessions wanted: up to the hard limit
              if (now.rlim_cur != 4096 || now.rlim_max != 4096) return 3;
              if (client_connection_limit(1024) != 1024) return 4;
              if (!raise_fd_limit(16).empty()) return 5;  // never lowered
              getrlimit(RLIMIT_NOFILE, &now);
              if (now.rlim_cur != 4096) return 6;
              return 0;
          }) == 0);
}

TEST_CASE("splice pipes only take the fds the client budget leaves over") {
    CHECK(in_child([] {
              rlimit low{256, 256};  // 96 clients x 2 + 64: nothing left for pipes
              if (setrlimit(RLIMIT_NOFILE, &low) != 0) return 1;
              if (splice_pipes_fit(1024, 0)) return 2;
              if (!splice_pipes_fit(50, 0)) return 3;  // 50 x 2 + 64 = 164: 23 tunnels fit
              if (!splice_pipes_fit(50, 22) || splice_pipes_fit(50, 23)) return 4;
              return 0;
          }) == 0);
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096) return;
    CHECK(in_child([] {
              rlimit mid{4096, 4096};  // 2112 for 1024 clients: (4096 - 2112) / 4 = 496
              if (setrlimit(RLIMIT_NOFILE, &mid) != 0) return 1;
              if (!splice_pipes_fit(1024, 495)) return 2;
              if (splice_pipes_fit(1024, 496)) return 3;
              return 0;
          }) == 0);
}
