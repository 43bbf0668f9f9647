// The admin dashboard: GET / serves index.html and GET /dashboard/NAME its script and style,
// all compiled into the binary (dashboard_assets.h). The page holds no data: it reads
// /status, /config, /upstreams, /metrics and /circuit_breakers from the browser, with the
// admin token when one is set (the page asks for it), so the files themselves are served
// without the token. Same-origin only: a Content-Security-Policy forbids anything else.
#pragma once

#include <string_view>

namespace torii {

struct Request;

// Answers and returns true when `path` is one of the dashboard's files.
bool serve_dashboard(Request &req, std::string_view path);

}  // namespace torii
