#include "core/process/worker_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/config/config.h"
#include "core/plugin/plugin_set.h"
#include "core/process/listen_sockets.h"
#include "core/server/access_log.h"
#include "core/worker/worker.h"

namespace torii {

int run_worker_process(WorkerProcessArgs &&args) {
    pid_t master = getppid();
    // A worker never outlives its master: no orphan keeps serving an old configuration.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) return 0;
    // Signals are still blocked (see Master::do_spawn): drop the master's dispositions now,
    // and unblock once the worker's loop handles them.
    for (int sig : {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1})
        signal(sig, SIG_DFL);

    const Config &config = *args.config;
    std::vector<ListenSocket> mine = sockets_for(config, *args.sockets);
    for (const auto &[key, fd] : *args.sockets) {
        bool used = false;
        for (const ListenSocket &l : mine)
            used |= l.fd == fd;
        // Another generation's socket: holding it would keep its queue alive unserved.
        if (!used) ::close(fd);
    }
    std::string error;
    if (!access_log_open(config.main.access_log, config.main.access_log_format, &error)) {
        log_error("%s", error.c_str());
        return 2;
    }
    int rc;
    {
        Worker worker(std::move(args.config), std::move(args.plugins), std::move(mine),
                      args.config_file);
        worker.set_process(args.generation, args.status, args.slot);
        auto ok = worker.init();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);  // pending signals are delivered now
        if (!ok) {
            log_error("worker: %s", ok.error().c_str());
            return 2;
        }
        rc = worker.run();
    }
    access_log_flush();
    return rc;
}

}  // namespace torii
