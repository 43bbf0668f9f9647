// An HTTP endpoint of a discovery service (etcd's gateway: "http://127.0.0.1:2379"). Parsed
// at config load, so that `torii -t` refuses what the source could only fail on later, and
// again by the source.
#pragma once

#include <string>
#include <string_view>

#include "core/base/result.h"
#include "core/base/socket_address.h"

namespace torii {

// "http://127.0.0.1:2379", "http://[::1]:2379", "http://localhost:2379", with or without a
// final "/". The host must be an IP literal or localhost (127.0.0.1): a name would need a
// lookup that blocks the loop.
struct DiscoveryEndpoint {
    std::string url;   // as written, for messages
    std::string host;  // the Host field: "127.0.0.1:2379"
    SocketAddress address;

    static Result<DiscoveryEndpoint> parse(std::string_view url);
};

}  // namespace torii
