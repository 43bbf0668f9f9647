// `torii -T`: the effective configuration, as nginx -T dumps its files, plus what no peer
// shows: each server's and location's plugin chain in run order per phase, with inherited and
// switched-off plugins marked.
//
// The dump is TOML: every key with its value after defaults and inheritance are resolved
// (relative paths made absolute, [main]'s tunnel_idle_timeout written into each server),
// "none" written as a comment, plugin settings as written. An inherited plugin appears in a
// location as a bare table (which switches the server's instance on, the same instance), so
// loading the dump gives the same configuration. Secrets (the admin token, plugin keys) are
// printed as configured, as nginx -T prints its files.
#pragma once

#include <string>

namespace torii {

struct Config;
class PluginSet;

std::string dump_effective_config(const Config &config, const PluginSet &plugins);

}  // namespace torii
