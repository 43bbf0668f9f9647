#include "core/process/process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "core/base/log.h"
#include "core/fleet/fleet.h"
#include "core/fleet/target_table.h"
#include "core/config/config.h"
#include "core/net/fd_limit.h"
#include "core/net/listener.h"
#include "core/config/pending_features.h"
#include "core/plugin/host_api.h"
#include "core/process/listen_sockets.h"
#include "core/process/config_dump.h"
#include "core/process/master.h"
#include "core/process/pid_file.h"
#include "core/plugin/plugin_set.h"
#include "core/process/zone_state.h"
#include "core/shm/shared_zone.h"
#include "core/server/access_log.h"
#include "core/worker/worker.h"

namespace torii {

int run_single_process(std::shared_ptr<const Config> config, const std::string &file);

// -t and -T: the config loaded, every plugin loaded and instantiated (which validates their
// tables); warnings and the first error on stderr. nullptr after an error.
static std::unique_ptr<PluginSet> load_checked(const std::string &file,
                                               std::shared_ptr<const Config> *out) {
    auto config = load_config(file);
    if (!config) {
        fprintf(stderr, "%s\n", config.error().c_str());
        return nullptr;
    }
    for (const std::string &w : pending_feature_warnings(*config.value()))
        fprintf(stderr, "warning: %s\n", w.c_str());
    // What the master would warn about the fd limit of this shell's environment.
    std::string fd_warning = raise_fd_limit(config.value()->main.worker_connections);
    if (!fd_warning.empty()) fprintf(stderr, "warning: %s\n", fd_warning.c_str());
    // Loading every plugin and creating every instance is what validates their tables.
    auto plugins = PluginSet::load(*config.value());
    if (!plugins) {
        fprintf(stderr, "%s\n", plugins.error().c_str());
        return nullptr;
    }
    *out = config.value();
    return std::move(plugins.value());
}

int check_config(const std::string &file) {
    std::shared_ptr<const Config> config;
    if (!load_checked(file, &config)) return 1;
    printf("ok\n");
    return 0;
}

int dump_config(const std::string &file) {
    std::shared_ptr<const Config> config;
    std::unique_ptr<PluginSet> plugins = load_checked(file, &config);
    if (!plugins) return 1;
    std::string text = dump_effective_config(*config, *plugins);
    fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

static int read_pid(const std::string &path, std::string *error) {
    std::ifstream in(path);
    long pid = 0;
    if (!(in >> pid) || pid <= 0) {
        *error = "cannot read a pid from \"" + path + "\"";
        return -1;
    }
    return static_cast<int>(pid);
}

int signal_running(const std::string &file, const std::string &name) {
    static const std::map<std::string, int> signals = {
        {"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    auto it = signals.find(name);
    if (it == signals.end()) {
        fprintf(stderr, "torii: unknown signal \"%s\" (use reload, stop, quit or reopen)\n",
                name.c_str());
        return 2;
    }
    auto config = load_config(file);
    if (!config) {
        fprintf(stderr, "%s\n", config.error().c_str());
        return 1;
    }
    const std::string &pid_file = config.value()->main.pid_file;
    if (pid_file.empty()) {
        fprintf(stderr, "torii: %s sets no pid_file\n", file.c_str());
        return 1;
    }
    std::string error;
    int pid = read_pid(pid_file, &error);
    if (pid < 0) {
        fprintf(stderr, "torii: %s\n", error.c_str());
        return 1;
    }
    if (kill(pid, it->second) != 0) {
        fprintf(stderr, "torii: kill(%d, %s): %s\n", pid, name.c_str(), strerror(errno));
        return 1;
    }
    return 0;
}

int run_foreground(const std::string &file) {
    auto loaded = load_config(file);
    if (!loaded) {
        fprintf(stderr, "%s\n", loaded.error().c_str());
        return 1;
    }
    if (loaded.value()->main.master_process) return Master(file).run();
    return run_single_process(loaded.value(), file);
}

// master_process = false: this process opens the sockets and runs the one event loop
// itself. No reload; used for profiling (callgrind) and debugging.
int run_single_process(std::shared_ptr<const Config> config, const std::string &file) {
    const MainConfig &main = config->main;

    LogLevel level = LogLevel::info;
    Log::parse_level(main.log_level, &level);
    std::string error;
    if (!Log::open(main.error_log, level, &error)) {
        fprintf(stderr, "torii: %s\n", error.c_str());
        return 1;
    }
    if (!access_log_open(main.access_log, main.access_log_format, &error)) {
        log_error("%s", error.c_str());
        return 1;
    }
    for (const std::string &w : pending_feature_warnings(*config))  // as the master does
        log_warn("%s", w.c_str());
    std::string fd_warning = raise_fd_limit(main.worker_connections);
    if (!fd_warning.empty()) log_warn("%s", fd_warning.c_str());

    // Open every listening socket before anything runs, so a taken port fails the start.
    std::map<std::string, int> open;
    auto opened = open_missing_sockets(*config, open);
    if (!opened) {
        log_error("%s", opened.error().c_str());
        fprintf(stderr, "torii: %s\n", opened.error().c_str());
        return 1;
    }
    std::vector<ListenSocket> sockets = sockets_for(*config, open);

    // Shared state outlives workers (and, with the master, reloads).
    SharedZone *zone = SharedZone::create(16384);
    if (!zone) {
        fprintf(stderr, "torii: cannot map the shared memory zone\n");
        return 1;
    }
    set_shared_zone(zone);
    restore_zone_state(*zone, main.pid_file);
    TargetTable *table = TargetTable::create();
    if (!table) {
        fprintf(stderr, "torii: cannot map the target table\n");
        return 1;
    }
    TargetTable::set_instance(table);
    if (Result<void> laid = table->apply_config(*config, true); !laid) {
        fprintf(stderr, "torii: %s\n", laid.error().c_str());
        return 1;
    }
    if (Result<void> restored = restore_admin_state(*table, *config); !restored)
        log_warn("%s", restored.error().c_str());
    auto plugins = PluginSet::load(*config);
    if (!plugins) {
        log_error("%s", plugins.error().c_str());
        fprintf(stderr, "%s\n", plugins.error().c_str());
        return 1;
    }
    std::shared_ptr<PluginSet> plugin_set(std::move(plugins.value()));

    // The worker holds the only reference, so the instances are destroyed before its loop.
    Worker worker(config, std::move(plugin_set), sockets, file);
    auto ok = worker.init();
    if (!ok) {
        log_error("%s", ok.error().c_str());
        fprintf(stderr, "torii: %s\n", ok.error().c_str());
        return 1;
    }
    if (!write_pid_file(main.pid_file)) return 1;
    log_notice("torii %s started, config %s", TORII_VERSION, file.c_str());
    // Health checks and discovery on the same loop: there is no other process to run them.
    std::unique_ptr<Fleet> fleet;
    if (fleet_needed(*config)) {
        fleet = std::make_unique<Fleet>(worker.base(), config, *table);
        fleet->start();
    }
    int rc = worker.run();
    if (fleet) fleet->save_state();
    fleet.reset();
    save_zone_state(*zone, main.pid_file);
    remove_pid_file(main.pid_file);
    log_notice("torii stopped");
    return rc;
}

}  // namespace torii
