#include "core/config/pending_features.h"

namespace torii {

std::vector<std::string> pending_feature_warnings(const Config &config) {
    std::vector<std::string> out;
    auto warn = [&](const SourcePos &pos, const std::string &what) {
        out.push_back(pos.to_string() + ": " + what);
    };
    for (const auto &[name, u] : config.upstreams) {
        std::string who = "upstream \"" + name + "\": ";
        if (!u.discovery.type.empty())
            warn(u.pos, who + "discovery is not available yet; only `targets` are used");
        if (u.health.enabled)
            warn(u.pos, who +
                            "active health probes are not available yet; max_fails and "
                            "fail_timeout (passive marking) apply");
    }
    // Belongs here because the remedy, admin.token (SPEC), is itself not available yet:
    // until it is, anyone who reaches a non-loopback admin port may use it.
    if (config.admin && !config.admin->listen.is_loopback())
        warn(config.admin->pos, "[admin] listen \"" + config.admin->listen_text +
                                    "\" is not a loopback address: the admin API is reachable "
                                    "from the network without authentication (admin.token is "
                                    "not available yet); listen on 127.0.0.1 or [::1], or "
                                    "firewall the port");
    return out;
}

}  // namespace torii
