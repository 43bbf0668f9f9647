#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/router/router.h"

#include <pcre2.h>

#include <algorithm>

namespace torii {

Router::~Router() {
    for (Regex &r : regexes_)
        pcre2_code_free(r.code);
    if (match_data_) pcre2_match_data_free(match_data_);
}

Result<std::unique_ptr<Router>> Router::build(const std::vector<LocationConfig> &locations) {
    auto router = std::make_unique<Router>();
    for (const LocationConfig &loc : locations) {
        switch (loc.match) {
            case MatchType::exact:
                router->exact_.emplace(loc.path, &loc);
                break;
            case MatchType::prefix:
                router->prefixes_.push_back(&loc);
                break;
            case MatchType::regex: {
                int err;
                PCRE2_SIZE offset;
                pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(loc.path.data()),
                                                 loc.path.size(), 0, &err, &offset, nullptr);
                if (!code) {
                    PCRE2_UCHAR msg[160];
                    pcre2_get_error_message(err, msg, sizeof msg);
                    return make_error(loc.pos.to_string() + ": location \"" + loc.path +
                                      "\": bad regex: " + reinterpret_cast<char *>(msg));
                }
                pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter
                router->regexes_.push_back({&loc, code});
                break;
            }
        }
    }
    std::stable_sort(router->prefixes_.begin(), router->prefixes_.end(),
                     [](const LocationConfig *a, const LocationConfig *b) {
                         return a->path.size() > b->path.size();
                     });
    router->match_data_ = pcre2_match_data_create(16, nullptr);
    return router;
}

const LocationConfig *Router::match(std::string_view path) const {
    if (!exact_.empty()) {
        auto it = exact_.find(path);
        if (it != exact_.end()) return it->second;
    }
    for (const Regex &r : regexes_) {
        int rc = pcre2_match(r.code, reinterpret_cast<PCRE2_SPTR>(path.data()), path.size(), 0, 0,
                             match_data_, nullptr);
        if (rc >= 0) return r.location;
    }
    for (const LocationConfig *loc : prefixes_) {
        if (path.starts_with(loc->path)) return loc;
    }
    return nullptr;
}

}  // namespace torii
