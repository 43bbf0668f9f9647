// The access log's line format, `[main] access_log_format`: compiled once when the config is
// loaded (an unknown variable is a config error with its place), then written per request
// by walking a short list of literal pieces and variables: no parsing, no name lookups.
//
//   "combined"   nginx's combined format:
//                $remote_addr - - [$time_local] "$request" $status $body_bytes_sent
//                "$http_referer" "$http_user_agent"
//   "json"       one JSON object a line; keys are the variable names without '$' (kJsonFields)
//   a template   text and variables (core/http/variables.h), e.g. "$remote_addr $request_id"
//   (absent)     combined plus " $request_time $upstream_addr" (kDefaultFormat): the line
//                torii has always written
//
// Text lines escape what could forge a line or a field in every value: '"', '\', control
// bytes and DEL become \xHH (nginx's escape=default, which also leaves UTF-8 alone); an
// absent or empty value is written "-". JSON lines escape per core/base/json_escape.h; an
// absent value is null, numeric variables are numbers. In both, the query of $request,
// $request_uri and $args has its credentials masked (core/server/query_mask.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/http/variables.h"

namespace torii {

struct Request;

inline constexpr std::string_view kCombinedFormat =
    "$remote_addr - - [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" "
    "\"$http_user_agent\"";
inline constexpr std::string_view kDefaultFormat =
    "$remote_addr - - [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" "
    "\"$http_user_agent\" $request_time $upstream_addr";
// The fields of "json", in order.
inline constexpr std::string_view kJsonFields[] = {
    "time_iso8601",           "remote_addr",  "request_id",
    "request_method",         "host",         "request_uri",
    "server_protocol",        "status",       "body_bytes_sent",
    "request_length",         "request_time", "upstream_addr",
    "upstream_response_time", "http_referer", "http_user_agent",
    "ssl_protocol",           "grpc_status",  "consumer"};

class LogFormat {
public:
    // "combined", "json" or a template; empty means the default. Errors name what is wrong
    // ("unknown variable \"$x\""); the config loader adds the place.
    static Result<std::shared_ptr<const LogFormat>> compile(std::string_view spec);

    // Appends one line for the request, '\n' included.
    void append_line(Request &req, std::string &out) const;

    // As configured ("combined", "json", the template), or kDefaultFormat.
    const std::string &spec() const { return spec_; }
    bool json() const { return json_; }

private:
    // A piece of the line: literal text, then (when has_var) a variable's value. A JSON
    // field is `,"key":` then the value.
    struct Op {
        std::string literal;
        bool has_var = false;
        bool numeric = false;  // JSON: written as a number when it is one
        VarRef var;
    };
    void append_text_value(Request &req, const Op &op, std::string &out) const;
    void append_json_value(Request &req, const Op &op, std::string &out) const;

    std::string spec_;
    bool json_ = false;
    std::vector<Op> ops_;
};

// Text-log escaping of one value: '"', '\', bytes below 0x20 and DEL become \xHH.
void append_log_escaped(std::string &out, std::string_view s);

}  // namespace torii
