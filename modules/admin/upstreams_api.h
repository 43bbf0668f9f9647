// The admin API over the machine's target table (core/fleet/target_table.h):
//
//   GET    /upstreams                          every upstream of the config: its targets with
//   GET    /upstreams/NAME                     id, weight, health, source, in-flight, last
//                                              failure and last check; the discovery state
//   POST   /upstreams/NAME/targets             add   {"address": "10.0.0.5:8080", "weight": 2}
//   PATCH  /upstreams/NAME/targets/ADDR        change {"weight": 3} and/or {"drain": true}
//   DELETE /upstreams/NAME/targets/ADDR        remove (in-flight requests finish first)
//
// Changes land in shared memory, so every worker follows at its next pick; the fleet keeps
// them in [admin] state_file across reload and restart. Bodies are JSON; errors answer
// {"error": "..."} with 400 (bad JSON or fields), 404 (unknown upstream or target), 405,
// 409 (exists, or a discovered target, which its source owns).
#pragma once

#include <string_view>

namespace torii {

struct Config;
struct Request;

bool is_upstreams_path(std::string_view path);
// Answers the request (after reading its body, for POST and PATCH).
void serve_upstreams_api(Request &req, const Config &config);

}  // namespace torii
