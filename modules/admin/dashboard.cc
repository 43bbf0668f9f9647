#include "modules/admin/dashboard.h"

#include "core/http/request.h"
#include "core/server/http_server.h"
#include "modules/admin/dashboard_assets.h"

namespace torii {

namespace {

const char *content_type(std::string_view name) {
    if (name.ends_with(".html")) return "text/html; charset=utf-8";
    if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
    if (name.ends_with(".css")) return "text/css; charset=utf-8";
    return "application/octet-stream";
}

const DashboardAsset *find_asset(std::string_view path) {
    std::string_view name;
    if (path == "/" || path == "/dashboard" || path == "/dashboard/")
        name = "index.html";
    else if (path.starts_with("/dashboard/"))
        name = path.substr(sizeof("/dashboard/") - 1);
    else
        return nullptr;
    for (size_t i = 0; i < kDashboardAssetCount; ++i)
        if (name == kDashboardAssets[i].name) return &kDashboardAssets[i];
    return nullptr;
}

}  // namespace

bool serve_dashboard(Request &req, std::string_view path) {
    const DashboardAsset *asset = find_asset(path);
    if (!asset) return false;
    if (req.input.method != "GET" && req.input.method != "HEAD") {
        respond_error(req, 405);
        return true;
    }
    req.response.clear();
    req.response.status = 200;
    req.response.headers.add("Server", "torii");
    req.response.headers.add("Content-Type", content_type(asset->name));
    // The files change only with the binary; a reload of the page after an upgrade must not
    // mix old and new ones, so the browser revalidates every time (they are small).
    req.response.headers.add("Cache-Control", "no-cache");
    req.response.headers.add("X-Content-Type-Options", "nosniff");
    req.response.headers.add("X-Frame-Options", "DENY");
    req.response.headers.add("Referrer-Policy", "no-referrer");
    req.response.headers.add("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                             "base-uri 'none'; form-action 'none'");
    send_local_response(req,
                        std::string_view(reinterpret_cast<const char *>(asset->data), asset->size),
                        BodyBytes::borrowed);
    return true;
}

}  // namespace torii
