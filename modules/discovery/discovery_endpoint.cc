#include "modules/discovery/discovery_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace torii {

Result<DiscoveryEndpoint> DiscoveryEndpoint::parse(std::string_view url) {
    auto bad = [&](const std::string &why) {
        return make_error("endpoint \"" + std::string(url) + "\": " + why);
    };
    if (!url.starts_with("http://")) return bad("expected \"http://host:port\"");
    std::string_view rest = url.substr(7);
    if (rest.ends_with('/')) rest.remove_suffix(1);
    if (rest.find('/') != std::string_view::npos) return bad("a path is not supported");
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.ends_with(']'))
        return bad("missing port (e.g. http://127.0.0.1:2379)");
    std::string host(rest.substr(0, colon));
    std::string_view port = rest.substr(colon + 1);
    std::string literal;
    in_addr v4;
    if (host == "localhost") {
        literal = "127.0.0.1:" + std::string(port);
    } else if (host.starts_with('[') || inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        literal = std::string(rest);  // SocketAddress parses bracketed IPv6 numerically
    } else {
        return bad("the host must be an IP address or localhost (a name would need a lookup)");
    }
    Result<SocketAddress> address = SocketAddress::parse(literal);
    if (!address) return bad(address.error());
    if (address->is_wildcard()) return bad("not one host");
    DiscoveryEndpoint out;
    out.url = std::string(url);
    out.host = std::string(rest);
    out.address = *address;
    return out;
}

}  // namespace torii
