// Variables (SPEC section 4) and templates that mix them with text:
//   $remote_addr $remote_port $host $uri $args $request_method $scheme $http_<name>
//   $arg_<name> $cookie_<name> $upstream_addr $status $request_time
// plus $consumer when an auth plugin set it. A template such as "$remote_addr:$http_x_user"
// is compiled once at load and expanded per request into the request's arena.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace torii {

struct Request;

// The value of `name` (without '$'); false when the variable does not exist or has no value
// for this request (an absent header, argument or cookie).
bool get_variable(Request &req, std::string_view name, std::string_view *out);
bool is_known_variable(std::string_view name);

class Template {
public:
    // Fails on "$" not followed by a name, and on unknown variable names.
    static Result<Template> compile(std::string_view text);
    // Absent variables expand to the empty string.
    std::string_view expand(Request &req) const;
    bool constant() const { return parts_.size() <= 1 && (parts_.empty() || !parts_[0].is_var); }

private:
    struct Part {
        bool is_var;
        std::string text;  // literal text, or the variable name
    };
    std::vector<Part> parts_;
};

}  // namespace torii
