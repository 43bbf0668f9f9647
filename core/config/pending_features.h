// Settings the config vocabulary (SPEC section 2) accepts but this build does not act on
// yet. Each is reported as a warning with its place, at `torii -t`, at start and on
// reload, so nobody believes a listener is TLS or an upstream is HTTP/2 when it is not.
// Also an [admin] listen off loopback: an open admin API with no token to protect it.
#pragma once

#include <string>
#include <vector>

#include "core/config/config.h"

namespace torii {

// "conf/torii.toml:40:1: [[server]] tls: TLS termination is not available yet; this
// listener serves plain HTTP"
std::vector<std::string> pending_feature_warnings(const Config &config);

}  // namespace torii
