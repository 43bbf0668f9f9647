// Chooses a server's location for a request path, the way nginx does:
//   1. an exact location (`match = "exact"`) equal to the path wins at once;
//   2. otherwise regex locations (`match = "regex"`, PCRE2 with JIT) are tried in config
//      order and the first that matches wins;
//   3. otherwise the longest prefix location that the path starts with.
// Built once per configuration; match() allocates nothing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/base/result.h"
#include "core/config/config.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;

namespace torii {

class Router {
public:
    Router() = default;
    ~Router();
    Router(const Router &) = delete;
    Router &operator=(const Router &) = delete;

    static Result<std::unique_ptr<Router>> build(const std::vector<LocationConfig> &locations);

    const LocationConfig *match(std::string_view path) const;

private:
    struct Regex {
        const LocationConfig *location;
        pcre2_real_code_8 *code;
    };
    std::unordered_map<std::string_view, const LocationConfig *> exact_;
    std::vector<const LocationConfig *> prefixes_;  // longest first
    std::vector<Regex> regexes_;
    pcre2_real_match_data_8 *match_data_ = nullptr;
};

}  // namespace torii
