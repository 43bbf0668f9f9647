// Which Host values the admin listener answers: the defence against DNS rebinding. A page
// served from evil.example can have the browser re-resolve evil.example to 127.0.0.1; being
// same-origin, its scripts then send any request to the admin port and read the answers.
// The browser still writes "Host: evil.example", the name in the URL, so refusing every Host
// that is not the admin listener's own address or localhost stops the attack.
#pragma once

#include <string_view>

#include "core/config/config.h"

namespace torii {

// `host` is the request's Host (or absolute-form authority), present and as received.
// Allowed: "localhost"; the name `listen` was written with; the IP literal `listen` is
// bound to ("127.0.0.1", "[::1]"), or any IP literal when bound to 0.0.0.0 or [::].
// Each with or without a port (any port: a tunnel or port mapping may change it, and the
// port is not what a rebinding attack forges). Names compare case-insensitively.
bool admin_host_allowed(std::string_view host, const AdminConfig &admin);

}  // namespace torii
