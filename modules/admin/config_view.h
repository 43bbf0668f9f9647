// GET /config on the admin listener: the configuration this worker serves, as JSON, for the
// dashboard: every server with its listeners and its own chain, every location with its
// upstream (or return), its plugin chain in run order per phase (each member marked own,
// inherited or switched_on, as `torii -T` marks them) and the plugins it switches off.
// Plugin settings are left out: they may hold keys and secrets.
//
//   {"generation": 3, "file": "/etc/torii/torii.toml", "servers": [{"listen": ["0.0.0.0:8080"],
//     "server_name": ["*"], "protocol": "http", "tls": false, "upstream": null,
//     "chain": {"pre_route": [], "response": [], "log": [{"plugin": "stats", "from": "own"}]},
//     "locations": [{"path": "/api/", "match": "prefix", "upstream": "api", "return": null,
//       "disabled": [], "chain": {"pre_route": [...], "access": [...], "balance":
//       {"balancer": "round_robin", "admitters": [...]}, "upstream": [...], "response": [...],
//       "log": [...]}}]}]}
#pragma once

namespace torii {

struct Request;
class Worker;

void serve_config_view(Request &req, const Worker &worker);

}  // namespace torii
