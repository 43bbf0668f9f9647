#include "core/config/pending_features.h"

namespace torii {

std::vector<std::string> pending_feature_warnings(const Config &config) {
    std::vector<std::string> out;
    auto warn = [&](const SourcePos &pos, const std::string &what) {
        out.push_back(pos.to_string() + ": " + what);
    };
    // Anyone who reaches a non-loopback admin port without a token may change the targets.
    if (config.admin && !config.admin->listen.is_loopback() && config.admin->token.empty())
        warn(config.admin->pos,
             "[admin] listen \"" + config.admin->listen_text +
                 "\" is not a loopback address and [admin] token is not set: the "
                 "admin API is reachable from the network without "
                 "authentication, and it can change the targets; set a token, "
                 "listen on 127.0.0.1 or [::1], or firewall the port");
    return out;
}

}  // namespace torii
