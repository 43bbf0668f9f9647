// Variables (SPEC section 4) and templates that mix them with text:
//   $remote_addr $remote_port $host $uri $args $request_method $scheme $http_<name>
//   $arg_<name> $cookie_<name> $upstream_addr $status $request_time
// and, as protocols arrived: $server_protocol $request_id $upstream_response_time
// $bytes_sent $request_length $ssl_protocol $ssl_cipher $ssl_server_name $ssl_client_s_dn
// $grpc_status $proxy_protocol_addr $consumer (set by auth), plus nginx's log words
// $request $request_uri $body_bytes_sent $time_local $time_iso8601 $msec.
//
// A name is resolved once, when a template or log format is compiled, to a VarRef (an id and,
// for the families, the header, argument or cookie name); a request then looks it up with a
// switch, not by comparing names. A template such as "$remote_addr:$http_x_user" is compiled
// once at load and expanded per request into the request's arena.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace torii {

struct Request;

enum class VarId : uint8_t {
    http,    // $http_<name>: a request header ('_' stands for '-')
    arg,     // $arg_<name>: a query argument
    cookie,  // $cookie_<name>
    ssl,     // $ssl_*: modules/tls/tls_variables.h
    remote_addr,
    remote_port,
    host,
    uri,
    args,
    request_method,
    scheme,
    upstream_addr,
    status,
    request_time,
    bytes_sent,
    body_bytes_sent,
    request_length,
    upstream_response_time,
    consumer,
    server_protocol,
    grpc_status,
    proxy_protocol_addr,
    request_id,
    request,       // "GET /x?a=1 HTTP/1.1", or "TCP <listen>" for a TCP session
    request_uri,   // the target as received
    time_local,    // "10/Oct/2000:13:55:36 -0700" (common log format)
    time_iso8601,  // "2000-10-10T13:55:36-07:00"
    msec,          // "971211336.123": seconds since the epoch, millisecond resolution
};

struct VarRef {
    VarId id = VarId::remote_addr;
    std::string name;  // without '$': "http_x_user"; the whole name for messages and ssl_*
    std::string key;   // the header, argument or cookie name for the families
};

// The variable called `name` (without '$'); false for an unknown name.
bool resolve_variable(std::string_view name, VarRef *out);
bool is_known_variable(std::string_view name);
// True for variables whose value is always a number (status, sizes, times): JSON access
// logs write them without quotes.
bool numeric_variable(VarId id);

// The value for this request; false when the variable has no value for it (an absent
// header, argument or cookie; no upstream yet; not TLS).
bool get_variable(Request &req, const VarRef &var, std::string_view *out);
// A numeric variable's value without the text: times in microseconds ($request_time,
// $upstream_response_time, $msec), sizes in bytes, $status, $remote_port, $grpc_status.
// `absent` when the request has none (where get_variable says false), `not_numeric` for a
// variable that is text.
enum class NumberResult { ok, absent, not_numeric };
NumberResult get_variable_number(Request &req, const VarRef &var, int64_t *out);
// The same by name (with or without '$'); false also for an unknown name.
bool get_variable(Request &req, std::string_view name, std::string_view *out);

// A template cut into its pieces: literal text and variables, in order.
struct TemplatePart {
    bool is_var = false;
    std::string text;  // literal text (empty for a variable)
    VarRef var;
};
// Fails on "$" not followed by a name, an unclosed "${", and unknown variable names.
Result<std::vector<TemplatePart>> parse_template(std::string_view text);

class Template {
public:
    static Result<Template> compile(std::string_view text);
    // Absent variables expand to the empty string.
    std::string_view expand(Request &req) const;
    bool constant() const { return parts_.size() <= 1 && (parts_.empty() || !parts_[0].is_var); }

private:
    std::vector<TemplatePart> parts_;
};

}  // namespace torii
