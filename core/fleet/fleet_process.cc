#include "core/fleet/fleet_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/base/libevent_ptr.h"
#include "core/base/log.h"
#include "core/config/config.h"
#include "core/fleet/fleet.h"
#include "core/fleet/target_table.h"

namespace torii {

namespace {
struct SignalCtx {
    event_base *base;
    Fleet *fleet;
};
}  // namespace

static void on_signal_cb(evutil_socket_t sig, short, void *arg) {
    auto *ctx = static_cast<SignalCtx *>(arg);
    if (sig == SIGUSR1) {
        Log::reopen();
        return;
    }
    ctx->fleet->save_state();
    event_base_loopexit(ctx->base, nullptr);
}

int run_fleet_process(std::shared_ptr<const Config> config, TargetTable *table,
                      const std::map<std::string, int> &sockets) {
    pid_t master = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlives the master
    if (getppid() != master) return 0;
    prctl(PR_SET_NAME, "torii: fleet");
    for (int sig : {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2})
        signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    for (const auto &[key, fd] : sockets)
        ::close(fd);  // the fleet serves no client

    EventBasePtr base(event_base_new());
    if (!base) return 2;
    Fleet fleet(base.get(), std::move(config), *table);
    SignalCtx ctx{base.get(), &fleet};
    std::vector<EventPtr> signals;
    for (int sig : {SIGTERM, SIGQUIT, SIGINT, SIGUSR1}) {
        EventPtr ev(evsignal_new(base.get(), sig, on_signal_cb, &ctx));
        evsignal_add(ev.get(), nullptr);
        signals.push_back(std::move(ev));
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    fleet.start();
    event_base_dispatch(base.get());
    return 0;
}

}  // namespace torii
