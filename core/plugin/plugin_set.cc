#include "core/plugin/plugin_set.h"

#include <toml++/toml.h>

#include <algorithm>

#include "core/plugin/host_api.h"
#include "core/plugin/plugin_conf.h"

namespace torii {

PluginSet::~PluginSet() {
    deferred_.release();
    // Instances go before the code that made them is unloaded.
    for (auto &inst : instances_) {
        auto destroy = TORII_PLUGIN_HOOK(*inst->plugin, destroy);
        if (destroy && inst->instance) destroy(inst->instance);
    }
}

namespace {
PluginSet *loading_set = nullptr;  // the set whose create() calls are running
}

PluginSet *PluginSet::loading() {
    return loading_set;
}

const AdminEndpoint *PluginSet::admin_endpoint(std::string_view path) const {
    auto it = admin_endpoints_.find(path);
    return it == admin_endpoints_.end() ? nullptr : &it->second;
}

bool PluginSet::add_admin_endpoint(const std::string &path, AdminEndpoint endpoint) {
    // The core's own endpoints are not for plugins to replace.
    if (path.empty() || path[0] != '/' || path == "/status" || admin_endpoints_.count(path))
        return false;
    admin_endpoints_.emplace(path, std::move(endpoint));
    return true;
}

torii_template *PluginSet::adopt(std::unique_ptr<torii_template> t) {
    templates_.push_back(std::move(t));
    return templates_.back().get();
}

PluginInstance *PluginSet::balancer(const std::string &upstream) const {
    auto it = balancers_.find(upstream);
    return it == balancers_.end() ? nullptr : it->second;
}

// A plugin switched on for a tcp server must have something to do there: the connection
// phase, or what runs around any session (log, request_done, per-target admission and
// results). An HTTP-only plugin (header_rewrite) would silently do nothing: refused.
static bool works_on_tcp(const LoadedPlugin &p) {
    return TORII_PLUGIN_HOOK(p, connect) || TORII_PLUGIN_HOOK(p, log) ||
           TORII_PLUGIN_HOOK(p, request_done) || TORII_PLUGIN_HOOK(p, peer_admit) ||
           TORII_PLUGIN_HOOK(p, peer_result);
}

Result<PluginInstance *> PluginSet::instantiate(const LoadedPlugin &plugin,
                                                const toml::table *table, const std::string &label,
                                                const SourcePos &pos, const std::string &scope,
                                                bool tcp_server) {
    PluginConf *conf = confs_->get(table ? table : empty_table(), plugin.name());
    if (table) {
        conf->tcp_server = tcp_server;
        conf->scope = scope;
    }
    size_t errors_before = confs_->errors.size();
    void *instance = nullptr;
    if (auto create = TORII_PLUGIN_HOOK(plugin, create)) {
        instance = create(host_api(), reinterpret_cast<const torii_conf_t *>(conf));
        bool failed = !instance || confs_->errors.size() > errors_before;
        if (failed) {
            auto destroy = TORII_PLUGIN_HOOK(plugin, destroy);
            if (instance && destroy) destroy(instance);
            if (confs_->errors.size() > errors_before) {
                // Every error the table has, one per line, so a user fixes them in one go.
                std::string all = confs_->errors[errors_before];
                for (size_t i = errors_before + 1; i < confs_->errors.size(); ++i)
                    all += "\n" + confs_->errors[i];
                return make_error(all);
            }
            return make_error(pos.to_string() + ": plugin \"" + plugin.name() +
                              "\": could not be set up for " + label);
        }
    }
    auto inst = std::make_unique<PluginInstance>();
    inst->plugin = &plugin;
    inst->instance = instance;
    inst->slot = instances_.size();
    inst->where = pos.to_string();
    instances_.push_back(std::move(inst));
    return instances_.back().get();
}

std::unique_ptr<PhaseChain> PluginSet::build_chain(const std::vector<PluginInstance *> &members) {
    auto chain = std::make_unique<PhaseChain>();
    all_chains_.push_back(chain.get());
    chain->members = members;
    std::stable_sort(chain->members.begin(), chain->members.end(),
                     [&](PluginInstance *a, PluginInstance *b) {
                         return order_.at(a->plugin->name()) < order_.at(b->plugin->name());
                     });
    for (PluginInstance *m : chain->members) {
        const LoadedPlugin &p = *m->plugin;
        torii_phase_hook_t hooks[kPhaseSlots] = {
            TORII_PLUGIN_HOOK(p, pre_route),
            TORII_PLUGIN_HOOK(p, access),
            nullptr,  // balance: the upstream's balancer, not a chain
            TORII_PLUGIN_HOOK(p, upstream),
            TORII_PLUGIN_HOOK(p, response),
            TORII_PLUGIN_HOOK(p, log),
            TORII_PLUGIN_HOOK(p, connect)};
        for (int ph = 0; ph < kPhaseSlots; ++ph)
            if (hooks[ph]) chain->phases[ph].push_back({hooks[ph], m});
        if (TORII_PLUGIN_HOOK(p, request_done)) chain->finishers.push_back(m);
        if (TORII_PLUGIN_HOOK(p, peer_admit)) chain->admitters.push_back(m);
        if (TORII_PLUGIN_HOOK(p, peer_result)) chain->reporters.push_back(m);
    }
    return chain;
}

Result<std::unique_ptr<PluginSet>> PluginSet::load(const Config &config) {
    std::unique_ptr<PluginSet> set(new PluginSet());
    struct LoadingScope {  // host->admin_register reaches the set under construction
        explicit LoadingScope(PluginSet *s) { loading_set = s; }
        ~LoadingScope() { loading_set = nullptr; }
    } scope(set.get());
    set->confs_ = std::make_unique<PluginConfStore>();
    set->confs_->dir = config.dir;
    const torii_host_t *host = host_api();

    size_t position = 0;
    for (const PluginDecl &d : config.plugins) {
        auto lp = load_plugin(d.name, d.path, d.pos.to_string(), host);
        if (!lp) return make_error(lp.error());
        set->by_name_[d.name] = lp.value().get();
        set->order_[d.name] = position++;
        set->loaded_.push_back(std::move(lp.value()));
    }

    // Balancers. A bundled one named by an upstream but not listed loads from plugin_dir, so
    // `balancer = "round_robin"` works without a [[plugin]] entry.
    for (const auto &[name, up] : config.upstreams) {
        if (!set->by_name_.count(up.balancer)) {
            std::string path = config.main.plugin_dir + "/" + up.balancer + ".so";
            auto lp = load_plugin(up.balancer, path, up.pos.to_string(), host);
            if (!lp) return make_error(lp.error());
            set->by_name_[up.balancer] = lp.value().get();
            set->order_[up.balancer] = position++;
            set->loaded_.push_back(std::move(lp.value()));
        }
        const LoadedPlugin &lp = *set->by_name_[up.balancer];
        if (!TORII_PLUGIN_HOOK(lp, pick))
            return make_error(up.pos.to_string() + ": upstream \"" + name + "\": plugin \"" +
                              up.balancer + "\" is not a balancer (it has no pick hook)");
        auto inst =
            set->instantiate(lp, up.table, "upstream \"" + name + "\"", up.pos, "upstream " + name);
        if (!inst) return make_error(inst.error());
        set->balancers_[name] = inst.value();
    }

    for (const ServerConfig &sc : config.servers) {
        bool tcp = sc.protocol == ServerProtocol::tcp;
        // host->conf_scope: the server's first address and name, stable across reloads.
        std::string server_scope = "server " + (sc.listen_text.empty() ? "" : sc.listen_text[0]) +
                                   " " + (sc.server_name.empty() ? "*" : sc.server_name[0]);
        std::map<std::string, PluginInstance *> server_uses;
        for (const PluginUse &u : sc.plugins) {
            if (!u.enabled) continue;
            auto it = set->by_name_.find(u.name);
            if (it == set->by_name_.end() || !set->order_.count(u.name))
                return make_error(u.pos.to_string() + ": plugin \"" + u.name +
                                  "\" is not listed under [[plugin]]");
            if (tcp && !works_on_tcp(*it->second))
                return make_error(u.pos.to_string() + ": plugin \"" + u.name +
                                  "\" has no connect or log hook: it has nothing to do on a "
                                  "tcp server");
            auto inst = set->instantiate(*it->second, u.table, tcp ? "tcp server" : "server", u.pos,
                                         server_scope, tcp);
            if (!inst) return make_error(inst.error());
            server_uses[u.name] = inst.value();
        }
        std::vector<PluginInstance *> members;
        for (auto &[n, inst] : server_uses)
            members.push_back(inst);
        set->server_chains_.push_back(set->build_chain(members));

        std::vector<std::unique_ptr<PhaseChain>> loc_chains;
        for (const LocationConfig &loc : sc.locations) {
            std::map<std::string, PluginInstance *> uses = server_uses;
            for (const PluginUse &u : loc.plugins) {
                if (!u.enabled) {
                    uses.erase(u.name);  // `enabled = false`: the inherited plugin is off here
                    continue;
                }
                auto it = set->by_name_.find(u.name);
                if (it == set->by_name_.end() || !set->order_.count(u.name))
                    return make_error(u.pos.to_string() + ": plugin \"" + u.name +
                                      "\" is not listed under [[plugin]]");
                // A table with nothing but `enabled = true` switches the server's instance
                // back on rather than making a new one with no settings.
                bool bare = !u.table || u.table->empty();
                auto inherited = server_uses.find(u.name);
                if (bare && inherited != server_uses.end()) {
                    uses[u.name] = inherited->second;
                    continue;
                }
                auto inst = set->instantiate(*it->second, u.table, "location \"" + loc.path + "\"",
                                             u.pos, server_scope + " location " + loc.path);
                if (!inst) return make_error(inst.error());
                uses[u.name] = inst.value();
            }
            members.clear();
            for (auto &[n, inst] : uses)
                members.push_back(inst);
            loc_chains.push_back(set->build_chain(members));
        }
        set->location_chains_.push_back(std::move(loc_chains));
    }
    // Every request gets one context slot per instance, whichever chains it passes.
    for (PhaseChain *c : set->all_chains_)
        c->total_slots = set->instances_.size();
    return set;
}

Result<void> PluginSet::worker_init() {
    deferred_.arm();  // what create() asked of a loop that did not exist yet
    for (auto &inst : instances_) {
        auto init = TORII_PLUGIN_HOOK(*inst->plugin, worker_init);
        if (init && init(inst->instance) != 0)
            return make_error(inst->where + ": plugin \"" + inst->plugin->name() +
                              "\": worker_init failed");
    }
    return {};
}

std::string PluginSet::describe(const Config &config) const {
    std::string out;
    for (size_t s = 0; s < config.servers.size(); ++s) {
        const ServerConfig &sc = config.servers[s];
        std::string server = sc.listen_text.empty() ? "server" : "server " + sc.listen_text[0];
        if (sc.protocol == ServerProtocol::tcp) {  // no locations: the server's own chain
            out += server + " (tcp, upstream " + sc.upstream + "):";
            const PhaseChain &chain = *server_chains_[s];
            if (chain.members.empty()) out += " (no plugins)";
            for (size_t i = 0; i < chain.members.size(); ++i)
                out += (i ? ", " : " ") + chain.members[i]->plugin->name();
            out += "\n";
            continue;
        }
        for (size_t l = 0; l < sc.locations.size(); ++l) {
            out += server + " location " + sc.locations[l].path + ":";
            const PhaseChain &chain = *location_chains_[s][l];
            if (chain.members.empty()) out += " (no plugins)";
            for (size_t i = 0; i < chain.members.size(); ++i)
                out += (i ? ", " : " ") + chain.members[i]->plugin->name();
            out += "\n";
        }
    }
    return out;
}

}  // namespace torii
