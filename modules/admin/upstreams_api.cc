#include "modules/admin/upstreams_api.h"

#include <arpa/inet.h>
#include <jansson.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "core/base/log.h"
#include "core/config/config.h"
#include "core/fleet/target_table.h"
#include "core/http/request.h"
#include "core/worker/worker.h"
#include "modules/health/grpc_health.h"

namespace torii {

namespace {

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

constexpr std::string_view kPrefix = "/upstreams";
constexpr size_t kMaxBody = 16 * 1024;

void answer_json(Request &req, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    std::string out = text ? text : "{}";
    free(text);
    out += '\n';
    respond(req, status, out, "application/json");
}

void answer_error(Request &req, int status, const std::string &message) {
    JsonPtr body(json_pack("{s:s}", "error", message.c_str()));
    answer_json(req, status, body.get());
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end = nullptr;
            long v = strtol(hex, &end, 16);
            if (end == hex + 2) {
                out += static_cast<char>(v);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

// "10.0.0.5:8080" or "[::1]:8080": an IP literal with a port. Names are refused: resolving
// one here would block the worker, and a name's addresses change (that is dns discovery).
std::optional<SocketAddress> parse_target_address(const std::string &text, std::string *why) {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        *why = "address \"" + text + "\": expected \"IP:port\"";
        return std::nullopt;
    }
    std::string host = text.substr(0, colon);
    bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    unsigned char buf[16];
    bool ip = bracketed ? inet_pton(AF_INET6, host.c_str(), buf) == 1
                        : inet_pton(AF_INET, host.c_str(), buf) == 1;
    if (!ip) {
        *why = "address \"" + text +
               "\": expected an IP address with a port (IPv6 in brackets); names belong to dns "
               "discovery";
        return std::nullopt;
    }
    Result<SocketAddress> parsed = SocketAddress::parse(text);
    if (!parsed || parsed.value().port() == 0) {
        *why = "address \"" + text + "\": " + (parsed ? "port 0" : parsed.error());
        return std::nullopt;
    }
    return parsed.value();
}

const char *health_of(const TargetTable::Snapshot &t, uint64_t now, const char **reason) {
    *reason = nullptr;
    if (t.state != SlotState::live) return "leaving";  // removed: finishing its requests
    if (t.drain) return "draining";
    if (t.active_down) {
        *reason = "active check";
        return "down";
    }
    if (t.down_until_ms > now) {
        *reason = "passive (max_fails)";
        return "down";
    }
    return "up";
}

json_t *target_json(const TargetTable::Snapshot &t, uint64_t now) {
    char id[24];
    snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(t.id));
    const char *reason = nullptr;
    const char *health = health_of(t, now, &reason);
    json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:s,s:b,s:i}", "id", id, "address", t.address.c_str(),
                          "weight", t.weight, "source", target_source_name(t.source), "health",
                          health, "drain", t.drain, "in_flight", t.in_flight);
    json_object_set_new(j, "down_reason", reason ? json_string(reason) : json_null());
    if (t.down_until_ms > now)
        json_object_set_new(j, "down_for_ms",
                            json_integer(static_cast<json_int_t>(t.down_until_ms - now)));
    json_object_set_new(
        j, "last_failure",
        t.last_failure_unix_ms ? json_integer(t.last_failure_unix_ms) : json_null());
    if (t.check_result) {
        json_object_set_new(
            j, "check",
            json_pack("{s:s,s:s,s:I}", "result", t.check_result == 1 ? "passed" : "failed",
                      "message", t.check_message.c_str(), "at",
                      static_cast<json_int_t>(t.check_unix_ms)));
    } else {
        json_object_set_new(j, "check", json_null());
    }
    return j;
}

json_t *upstream_json(TargetTable &table, int index, const UpstreamConfig &u) {
    uint64_t now = Worker::now_ms();
    json_t *targets = json_array();
    for (const TargetTable::Snapshot &t : table.snapshot(index))
        json_array_append_new(targets, target_json(t, now));
    const char *protocol = u.protocol == UpstreamProtocol::h2    ? "h2"
                           : u.protocol == UpstreamProtocol::h2c ? "h2c"
                           : u.protocol == UpstreamProtocol::tcp ? "tcp"
                                                                 : "http1";
    json_t *j = json_pack("{s:s,s:s}", "balancer", u.balancer.c_str(), "protocol", protocol);
    if (u.health.enabled) {
        const std::string &type = u.health.type;
        json_t *check = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i}", "type", type.c_str(), "path",
                                  type == "http"   ? u.health.path.c_str()
                                  : type == "grpc" ? kGrpcHealthCheckPath.data()
                                                   : "",
                                  "interval_ms", static_cast<json_int_t>(u.health.interval),
                                  "timeout_ms", static_cast<json_int_t>(u.health.timeout),
                                  "healthy", u.health.healthy, "unhealthy", u.health.unhealthy);
        if (type == "grpc")
            json_object_set_new(check, "service", json_string(u.health.service.c_str()));
        json_object_set_new(j, "health_check", check);
    } else {
        json_object_set_new(j, "health_check", json_null());
    }
    if (!u.discovery.type.empty()) {
        TargetTable::SourceStatus st = table.source_status(index);
        json_object_set_new(
            j, "discovery",
            json_pack("{s:s,s:s,s:s,s:I}", "type", u.discovery.type.c_str(), "state",
                      st.failing ? "failing" : "ok", "message", st.message.c_str(), "since",
                      static_cast<json_int_t>(st.unix_ms)));
    } else {
        json_object_set_new(j, "discovery", json_null());
    }
    json_object_set_new(j, "targets", targets);
    return j;
}

// The fields of a `targets` entry plus drain; anything else is refused by name.
struct TargetFields {
    std::optional<std::string> address;
    std::optional<int> weight;
    std::optional<bool> drain;
};

bool parse_fields(std::string_view body, TargetFields *out, std::string *why) {
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), 0, &err));
    if (!root) {
        *why = "invalid JSON: " + std::string(err.text) + " (line " + std::to_string(err.line) +
               ", column " + std::to_string(err.column) + ")";
        return false;
    }
    if (!json_is_object(root.get())) {
        *why = "expected a JSON object with the fields of a targets entry";
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root.get(), key, v) {
        std::string_view k = key;
        if (k == "address") {
            if (!json_is_string(v)) {
                *why = "\"address\" must be a string";
                return false;
            }
            out->address = json_string_value(v);
        } else if (k == "weight") {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 1'000'000) {
                *why = "\"weight\" must be an integer from 1 to 1000000";
                return false;
            }
            out->weight = static_cast<int>(json_integer_value(v));
        } else if (k == "drain") {
            if (!json_is_boolean(v)) {
                *why = "\"drain\" must be true or false";
                return false;
            }
            out->drain = json_is_true(v);
        } else {
            *why = "unknown field \"" + std::string(k) + "\" (expected address, weight, drain)";
            return false;
        }
    }
    return true;
}

struct Route {
    std::string upstream;  // empty: all
    bool targets = false;  // .../targets
    std::string address;   // .../targets/ADDR
};

std::optional<Route> parse_route(std::string_view path) {
    Route r;
    std::string_view rest = path.substr(kPrefix.size());
    if (rest.empty() || rest == "/") return r;
    rest.remove_prefix(1);
    size_t slash = rest.find('/');
    r.upstream = percent_decode(rest.substr(0, slash));
    if (r.upstream.empty()) return std::nullopt;
    if (slash == std::string_view::npos) return r;
    rest.remove_prefix(slash + 1);
    if (rest.starts_with("targets")) {
        rest.remove_prefix(7);
        r.targets = true;
        if (rest.empty() || rest == "/") return r;
        if (rest[0] != '/') return std::nullopt;
        r.address = percent_decode(rest.substr(1));
        if (r.address.empty() || r.address.find('/') != std::string::npos) return std::nullopt;
        return r;
    }
    return std::nullopt;
}

void do_change(Request &req, const Config &config, const Route &route, std::string_view body) {
    TargetTable *table = TargetTable::instance();
    const UpstreamConfig *u = config.find_upstream(route.upstream);
    int index = u && table ? table->find_upstream(route.upstream) : -1;
    if (index < 0) {
        answer_error(req, 404, "no upstream \"" + route.upstream + "\"");
        return;
    }
    std::string_view method = req.input.method;
    TargetFields f;
    std::string why;
    if (method != "DELETE" && !parse_fields(body, &f, &why)) {
        answer_error(req, 400, why);
        return;
    }
    std::string address_text = method == "POST" ? f.address.value_or("") : route.address;
    if (method == "POST" && !f.address) {
        answer_error(req, 400, "\"address\" is required");
        return;
    }
    std::optional<SocketAddress> address = parse_target_address(address_text, &why);
    if (!address) {
        answer_error(req, method == "POST" ? 400 : 404, why);
        return;
    }
    if (method == "PATCH" && f.address && *f.address != route.address) {
        auto other = parse_target_address(*f.address, &why);
        if (!other || !(other->same_host(*address) && other->port() == address->port())) {
            answer_error(req, 400,
                         "\"address\" cannot change; add the new target and delete "
                         "this one");
            return;
        }
    }
    if (method == "PATCH" && !f.weight && !f.drain) {
        answer_error(req, 400, "nothing to change: give \"weight\" and/or \"drain\"");
        return;
    }
    TargetTable::Change change;
    if (method == "POST")
        change = table->admin_add(index, *address, f.weight.value_or(1), f.drain.value_or(false));
    else if (method == "PATCH")
        change = table->admin_patch(index, *address, f.weight, f.drain);
    else
        change = table->admin_remove(index, *address);
    std::string canonical = address->to_string();
    switch (change) {
        case TargetTable::Change::ok:
            break;
        case TargetTable::Change::not_found:
            answer_error(req, 404,
                         "upstream \"" + route.upstream + "\" has no target " + canonical);
            return;
        case TargetTable::Change::exists:
            answer_error(req, 409,
                         "upstream \"" + route.upstream + "\" has target " + canonical +
                             " already; PATCH it to change it");
            return;
        case TargetTable::Change::full:
            answer_error(req, 503, "the target table is full");
            return;
        case TargetTable::Change::discovered:
            answer_error(req, 409,
                         "target " + canonical + " comes from " + u->discovery.type +
                             " discovery: remove it there (PATCH drain works here)");
            return;
    }
    log_notice("admin: %.*s upstream \"%s\" target %s%s%s", static_cast<int>(method.size()),
               method.data(), route.upstream.c_str(), canonical.c_str(),
               f.weight ? (" weight " + std::to_string(*f.weight)).c_str() : "",
               f.drain ? (*f.drain ? " drain" : " undrain") : "");
    if (method == "DELETE") {
        JsonPtr j(json_pack("{s:s,s:b}", "address", canonical.c_str(), "deleted", 1));
        answer_json(req, 200, j.get());
        return;
    }
    uint64_t now = Worker::now_ms();
    for (const TargetTable::Snapshot &t : table->snapshot(index)) {
        if (t.state != SlotState::live || t.address != canonical) continue;
        JsonPtr j(target_json(t, now));
        answer_json(req, method == "POST" ? 201 : 200, j.get());
        return;
    }
    answer_error(req, 500, "the change was made but the target is gone");
}

// Collects a POST or PATCH body (bounded), then makes the change.
class BodyReader final : public RequestHandler {
public:
    BodyReader(const Config &config, Route route) : config_(config), route_(std::move(route)) {}
    void on_request_body(Request &req) noexcept override {
        size_t n = evbuffer_get_length(req.body.get());
        if (body_.size() + n > kMaxBody) {
            answer_error(req, 413, "body over " + std::to_string(kMaxBody) + " bytes");
            return;
        }
        size_t at = body_.size();
        body_.resize(at + n);
        evbuffer_remove(req.body.get(), body_.data() + at, n);
        if (!req.body_done) {
            req.downstream->resume_body(req);
            return;
        }
        do_change(req, config_, route_, body_);
    }

private:
    const Config &config_;
    Route route_;
    std::string body_;
};

}  // namespace

bool is_upstreams_path(std::string_view path) {
    return path == kPrefix || (path.starts_with(kPrefix) && path[kPrefix.size()] == '/');
}

void serve_upstreams_api(Request &req, const Config &config) {
    std::optional<Route> route = parse_route(req.path);
    if (!route) {
        answer_error(req, 404, "no such endpoint; see GET /upstreams");
        return;
    }
    std::string_view method = req.input.method;
    const char *allowed =
        route->targets ? (route->address.empty() ? "POST" : "PATCH, DELETE") : "GET, HEAD";
    bool ok = route->targets ? (route->address.empty() ? method == "POST"
                                                       : method == "PATCH" || method == "DELETE")
                             : method == "GET" || method == "HEAD";
    if (!ok) {
        answer_error(req, 405, std::string("use ") + allowed);
        return;
    }
    TargetTable *table = TargetTable::instance();
    if (!table) {
        answer_error(req, 503, "no target table in this process");
        return;
    }
    if (!route->targets) {
        JsonPtr ups(json_object());
        for (const auto &[name, u] : config.upstreams) {
            if (!route->upstream.empty() && name != route->upstream) continue;
            int index = table->find_upstream(name);
            if (index >= 0)
                json_object_set_new(ups.get(), name.c_str(), upstream_json(*table, index, u));
        }
        if (!route->upstream.empty()) {
            json_t *one = json_object_get(ups.get(), route->upstream.c_str());
            if (!one) {
                answer_error(req, 404, "no upstream \"" + route->upstream + "\"");
                return;
            }
            answer_json(req, 200, one);
            return;
        }
        JsonPtr root(json_object());
        json_object_set(root.get(), "upstreams", ups.get());
        answer_json(req, 200, root.get());
        return;
    }
    if (method == "DELETE") {
        do_change(req, config, *route, {});
        return;
    }
    if (req.body_done && evbuffer_get_length(req.body.get()) == 0 && !req.input.has_body()) {
        do_change(req, config, *route, {});
        return;
    }
    if (req.input.expect_continue) req.downstream->send_continue(req);
    req.handler = std::make_unique<BodyReader>(config, std::move(*route));
    req.handler->on_request_body(req);
}

}  // namespace torii
