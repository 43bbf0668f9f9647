// The dashboard's static files (modules/admin/dashboard/), compiled into the binary by
// cmake/embed_assets.cmake: the admin listener serves them with nothing installed beside it.
#pragma once

#include <cstddef>

namespace torii {

struct DashboardAsset {
    const char *name;  // file name: "index.html", "dashboard.js"
    const unsigned char *data;
    size_t size;
};

extern const DashboardAsset kDashboardAssets[];
extern const size_t kDashboardAssetCount;

}  // namespace torii
