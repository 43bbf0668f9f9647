// torii_conf_t: a plugin's read-only view of its TOML table, with errors that carry the
// config's file:line:col (toml++ source regions). A torii_conf_t* handed to a plugin is a
// PluginConf*; they live in a PluginConfStore as long as the instances that read them.
#pragma once

#include <torii/plugin.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
class node;
}  // namespace v3
}  // namespace toml

namespace torii {

struct PluginConfStore;

struct PluginConf {
    const toml::table *table;
    std::string plugin;  // for messages
    PluginConfStore *store;
    bool tcp_server = false;  // the table switches the plugin on for a tcp server
    std::string scope;        // host->conf_scope: "server ADDR NAME location PATH", ...
};

struct PluginConfStore {
    std::deque<PluginConf> confs;
    std::map<const toml::table *, PluginConf *> by_table;
    std::vector<std::string> errors;  // collected during create(); the loader reports them
    std::string dir;                  // the config file's folder (host->conf_dir)

    PluginConf *get(const toml::table *table, const std::string &plugin);
};

// "FILE:LINE:COL" of a node.
std::string node_position(const toml::node &node);

// The conf_* members of the host table.
void fill_conf_api(torii_host_t *host);

// An empty table for plugins used without one (a balancer on an upstream without options).
const toml::table *empty_table();

}  // namespace torii
