#include "core/process/listen_sockets.h"

#include <set>

#include "core/net/listener.h"

namespace torii {

static constexpr std::string_view kAdminPrefix = "admin|";

std::vector<std::pair<std::string, const SocketAddress *>> listen_keys(const Config &c) {
    std::vector<std::pair<std::string, const SocketAddress *>> keys;
    std::set<std::string> seen;
    for (const ServerConfig &s : c.servers) {
        for (const SocketAddress &a : s.listen)
            if (seen.insert(a.to_string()).second) keys.emplace_back(a.to_string(), &a);
    }
    if (c.admin)
        keys.emplace_back(std::string(kAdminPrefix) + c.admin->listen.to_string(),
                          &c.admin->listen);
    return keys;
}

Result<void> open_missing_sockets(const Config &config, std::map<std::string, int> &open) {
    for (auto &[key, addr] : listen_keys(config)) {
        if (open.count(key)) continue;  // kept across reloads: its queue is never dropped
        auto fd = open_listen_socket(*addr);
        if (!fd) return make_error(fd.error());
        open[key] = fd.value();
    }
    return {};
}

std::vector<ListenSocket> sockets_for(const Config &config,
                                      const std::map<std::string, int> &open) {
    std::vector<ListenSocket> out;
    for (auto &[key, addr] : listen_keys(config)) {
        auto it = open.find(key);
        if (it == open.end()) continue;
        bool admin = key.starts_with(kAdminPrefix);
        out.push_back({admin ? key.substr(kAdminPrefix.size()) : key, it->second, admin});
    }
    return out;
}

}  // namespace torii
