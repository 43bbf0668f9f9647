#include "core/server/http_server.h"

#include "core/http/headers.h"

namespace torii {

static std::string_view host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {  // [::1]:8080
        size_t close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(0, close + 1);
    }
    size_t colon = host.rfind(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool HttpServer::matches_name(std::string_view host) const {
    host = host_without_port(host);
    for (const std::string &name : config_.server_name) {
        if (name == "*") return true;
        if (name.starts_with("*.")) {
            std::string_view suffix = std::string_view(name).substr(1);  // ".example.com"
            if (host.size() > suffix.size() &&
                iequals(host.substr(host.size() - suffix.size()), suffix))
                return true;
        } else if (name.starts_with(".")) {
            if (iequals(host, std::string_view(name).substr(1))) return true;
            if (host.size() > name.size() && iequals(host.substr(host.size() - name.size()), name))
                return true;
        } else if (iequals(host, name)) {
            return true;
        }
    }
    return false;
}

HttpServer *ServerGroup::find(std::string_view host) const {
    if (servers.size() == 1 || host.empty()) return servers.front();
    // Exact and wildcard names first; a catch-all "*" only when nothing more specific fits.
    HttpServer *catch_all = nullptr;
    for (HttpServer *s : servers) {
        bool wildcard_only =
            s->config().server_name.size() == 1 && s->config().server_name[0] == "*";
        if (wildcard_only) {
            if (!catch_all) catch_all = s;
            continue;
        }
        if (s->matches_name(host)) return s;
    }
    return catch_all ? catch_all : servers.front();
}

}  // namespace torii
