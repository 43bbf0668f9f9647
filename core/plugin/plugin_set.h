// Every plugin a configuration uses, loaded and instantiated once per config generation:
// the .so files of [[plugin]] (plus bundled balancers an upstream names), one instance per
// configured use, and the flattened phase chains of every server and location.
//
// Inheritance is resolved here, once (nginx's merge_conf): a location runs the server's
// plugins unless it lists the same plugin itself (its own table replaces the server's) or
// switches it off with `enabled = false`. Order is always the [[plugin]] order.
#pragma once

#include <torii/plugin.h>

#include "core/plugin/host_api.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/config/config.h"
#include "core/http/variables.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_loader.h"

// What host->buf_append writes into; plugins see only the opaque pointer.
struct torii_buf {
    std::string text;
};

// A compiled template handed to a plugin (host->template_compile); owned by the PluginSet
// whose create() calls made it, so it lives exactly as long as the instances using it.
struct torii_template {
    torii::Template t;
};

namespace torii {

struct PluginConfStore;

// An admin endpoint a plugin registered (host->admin_register), e.g. stats' /metrics.
struct AdminEndpoint {
    std::string content_type;
    void (*fn)(void *arg, torii_buf_t *out);
    void *arg;
};

struct PluginInstance {
    const LoadedPlugin *plugin = nullptr;
    void *instance = nullptr;
    size_t slot = 0;    // index into Request::plugin_ctx
    std::string where;  // "conf/torii.toml:31:1" of the table it was made from
};

struct PhaseHook {
    torii_phase_hook_t fn;
    PluginInstance *inst;
};

// What runs for one server or location, phase by phase, in [[plugin]] order.
struct PhaseChain {
    std::vector<PhaseHook> phases[kPhaseSlots];  // kPhaseConnect last (tcp servers)
    std::vector<PluginInstance *> members;       // every instance of the chain
    // The members that have these hooks, found once at load so a request never scans for
    // them: request_done, peer_admit, peer_result.
    std::vector<PluginInstance *> finishers, admitters, reporters;
    size_t total_slots = 0;  // of the whole PluginSet: per-request ctx size
};

class PluginSet {
public:
    ~PluginSet();

    // Loads and instantiates; errors carry the file:line of the offending table.
    static Result<std::unique_ptr<PluginSet>> load(const Config &config);

    // Calls worker_init of every instance (in the worker process).
    Result<void> worker_init();

    const PhaseChain &server_chain(size_t server) const { return *server_chains_[server]; }
    const PhaseChain &location_chain(size_t server, size_t location) const {
        return *location_chains_[server][location];
    }
    // The balancer instance of an upstream.
    PluginInstance *balancer(const std::string &upstream) const;
    size_t slots() const { return instances_.size(); }
    const AdminEndpoint *admin_endpoint(std::string_view path) const;
    // host->admin_register adds to the set being loaded (create() runs during load).
    static PluginSet *loading();
    // Timers and I/O watches asked for in create(), armed in each worker (host_api.h).
    DeferredHandles &deferred() { return deferred_; }
    bool add_admin_endpoint(const std::string &path, AdminEndpoint endpoint);
    torii_template *adopt(std::unique_ptr<torii_template> t);
    const std::vector<std::unique_ptr<LoadedPlugin>> &loaded() const { return loaded_; }

    // The effective chain of every location, one line each:
    //   "server 127.0.0.1:8080 location /api/: ratelimit, stats"
    std::string describe(const Config &config) const;

private:
    PluginSet() = default;
    Result<PluginInstance *> instantiate(const LoadedPlugin &plugin, const toml::table *table,
                                         const std::string &label, const SourcePos &pos,
                                         const std::string &scope, bool tcp_server = false);
    std::unique_ptr<PhaseChain> build_chain(const std::vector<PluginInstance *> &members);
    std::vector<PhaseChain *> all_chains_;

    std::vector<std::unique_ptr<LoadedPlugin>> loaded_;
    std::map<std::string, const LoadedPlugin *> by_name_;
    std::map<std::string, size_t> order_;  // [[plugin]] position of each name
    std::vector<std::unique_ptr<PluginInstance>> instances_;
    std::vector<std::unique_ptr<PhaseChain>> server_chains_;
    std::vector<std::vector<std::unique_ptr<PhaseChain>>> location_chains_;
    std::map<std::string, PluginInstance *> balancers_;
    std::unique_ptr<PluginConfStore> confs_;
    std::map<std::string, AdminEndpoint, std::less<>> admin_endpoints_;
    std::vector<std::unique_ptr<torii_template>> templates_;
    DeferredHandles deferred_;
};

}  // namespace torii
