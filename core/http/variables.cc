#include "core/http/variables.h"

#include <cstdio>
#include <cstring>

#include "core/config/config.h"
#include "core/http/request.h"
#include "core/net/socket.h"
#include "core/worker/worker.h"
#include "modules/tls/tls_variables.h"

namespace torii {

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// "$http_x_user" looks up X-User: '_' stands for '-', compared without case.
static bool header_matches(std::string_view header, std::string_view var) {
    if (header.size() != var.size()) return false;
    for (size_t i = 0; i < header.size(); ++i) {
        char h = header[i], v = var[i];
        if (v == '_') v = '-';
        if (h >= 'A' && h <= 'Z') h = char(h | 0x20);
        if (v >= 'A' && v <= 'Z') v = char(v | 0x20);
        if (h != v) return false;
    }
    return true;
}

static bool find_arg(std::string_view query, std::string_view name, std::string_view *out) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            *out = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
            return true;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return false;
}

static bool find_cookie(const HeaderList &headers, std::string_view name, std::string_view *out) {
    for (const Header &h : headers) {
        if (!iequals(h.name, "cookie")) continue;
        std::string_view v = h.value;
        while (!v.empty()) {
            size_t semi = v.find(';');
            std::string_view pair = v.substr(0, semi);
            while (!pair.empty() && pair.front() == ' ')
                pair.remove_prefix(1);
            size_t eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
                *out = pair.substr(eq + 1);
                return true;
            }
            if (semi == std::string_view::npos) break;
            v.remove_prefix(semi + 1);
        }
    }
    return false;
}

static std::string_view number(Request &req, long long n) {
    char *p = req.arena.alloc(24);
    int len = snprintf(p, 24, "%lld", n);
    return {p, static_cast<size_t>(len)};
}

bool get_variable(Request &req, std::string_view name, std::string_view *out) {
    if (!name.empty() && name.front() == '$') name.remove_prefix(1);
    if (name.starts_with("http_")) {
        std::string_view want = name.substr(5);
        for (const Header &h : req.headers) {
            if (header_matches(h.name, want)) {
                *out = h.value;
                return true;
            }
        }
        return false;
    }
    if (name.starts_with("arg_")) return find_arg(req.query, name.substr(4), out);
    if (name.starts_with("cookie_")) return find_cookie(req.headers, name.substr(7), out);
    if (name == "remote_addr")
        *out = req.remote_addr;
    else if (name == "remote_port")
        *out = number(req, req.remote.port());
    else if (name == "host") {
        std::string_view host = req.input.authority;
        size_t colon = host.rfind(':');
        if (colon != std::string_view::npos && host.find(']') == std::string_view::npos)
            host = host.substr(0, colon);
        else if (!host.empty() && host.front() == '[')
            host = host.substr(0, host.find(']') + 1);
        *out = host;
    } else if (name == "uri")
        *out = req.path;
    else if (name == "args")
        *out = req.query;
    else if (name == "request_method")
        *out = req.input.method;
    else if (name == "scheme")
        *out = req.input.scheme;
    else if (name == "upstream_addr") {
        if (req.upstream_addr.empty()) return false;
        *out = req.upstream_addr;
    } else if (name == "status") {
        if (!req.response.status) return false;
        *out = number(req, req.response.status);
    } else if (name == "request_time") {
        uint64_t ms = Worker::now_ms() - req.start_ms;
        char *p = req.arena.alloc(24);
        int len = snprintf(p, 24, "%llu.%03llu", static_cast<unsigned long long>(ms / 1000),
                           static_cast<unsigned long long>(ms % 1000));
        *out = {p, static_cast<size_t>(len)};
    } else if (name == "bytes_sent") {
        *out = number(req, static_cast<long long>(req.bytes_sent));
    } else if (name == "request_length") {
        *out = number(req, static_cast<long long>(req.body_received));
    } else if (name == "upstream_response_time") {
        if (!req.upstream_latency_us) return false;
        char *p = req.arena.alloc(24);
        uint64_t ms = req.upstream_latency_us / 1000;
        int len = snprintf(p, 24, "%llu.%03llu", static_cast<unsigned long long>(ms / 1000),
                           static_cast<unsigned long long>(ms % 1000));
        *out = {p, static_cast<size_t>(len)};
    } else if (name == "consumer") {
        if (req.consumer.empty()) return false;
        *out = req.consumer;
    } else if (name == "server_protocol") {
        if (req.tcp_server) {
            *out = "TCP";
            return true;
        }
        *out = req.input.version == HttpVersion::http2    ? "HTTP/2.0"
               : req.input.version == HttpVersion::http10 ? "HTTP/1.0"
                                                          : "HTTP/1.1";
    } else if (name == "grpc_status") {
        // In the head for a trailers-only answer (torii's own among them), else in the
        // upstream's trailers once the response has ended (the log phase).
        bool found = false;
        *out = req.response.headers.get("grpc-status", &found);
        if (!found) *out = req.upstream_response.trailers.get("grpc-status", &found);
        return found;
    } else if (name == "proxy_protocol_addr") {
        // The client address a PROXY header gave (it became $remote_addr as well).
        if (!req.client || !req.client->proxied()) return false;
        *out = req.remote_addr;
    } else if (name.starts_with("ssl_")) {
        return tls_variable(req.ssl, name, req.arena, out);
    } else {
        return false;
    }
    return true;
}

bool is_known_variable(std::string_view name) {
    static const char *const fixed[] = {
        "remote_addr",    "remote_port",           "host",     "uri",
        "args",           "request_method",        "scheme",   "upstream_addr",
        "status",         "request_time",          "consumer", "bytes_sent",
        "request_length", "upstream_response_time"};
    for (const char *f : fixed)
        if (name == f) return true;
    if (is_tls_variable(name) || name == "server_protocol" || name == "grpc_status" ||
        name == "proxy_protocol_addr")
        return true;
    for (std::string_view prefix : {"http_", "arg_", "cookie_"})
        if (name.size() > prefix.size() && name.starts_with(prefix)) return true;
    return false;
}

Result<Template> Template::compile(std::string_view text) {
    Template t;
    std::string literal;
    for (size_t i = 0; i < text.size();) {
        char c = text[i];
        if (c != '$') {
            literal += c;
            ++i;
            continue;
        }
        // "${name}" or "$name"
        size_t start = i + 1, end;
        bool braced = start < text.size() && text[start] == '{';
        if (braced) {
            end = text.find('}', start);
            if (end == std::string_view::npos)
                return make_error("unclosed \"${\" in \"" + std::string(text) + "\"");
            ++start;
        } else {
            end = start;
            while (end < text.size() && name_char(text[end]))
                ++end;
        }
        std::string name(text.substr(start, end - start));
        if (name.empty())
            return make_error("\"$\" without a variable name in \"" + std::string(text) + "\"");
        if (!is_known_variable(name)) return make_error("unknown variable \"$" + name + "\"");
        if (!literal.empty()) t.parts_.push_back({false, std::move(literal)});
        literal.clear();
        t.parts_.push_back({true, std::move(name)});
        i = braced ? end + 1 : end;
    }
    if (!literal.empty()) t.parts_.push_back({false, std::move(literal)});
    return t;
}

std::string_view Template::expand(Request &req) const {
    if (parts_.empty()) return {};
    if (parts_.size() == 1) {
        if (!parts_[0].is_var) return parts_[0].text;
        std::string_view v;
        return get_variable(req, parts_[0].text, &v) ? v : std::string_view{};
    }
    std::string_view out;
    for (const Part &p : parts_) {
        std::string_view v = p.text;
        if (p.is_var && !get_variable(req, p.text, &v)) v = {};
        // Each piece extends the last arena allocation in place when it can.
        if (out.empty() && !v.empty())
            out = req.arena.copy(v);
        else if (!v.empty())
            req.arena.append(out, v.data(), v.size());
    }
    return out;
}

}  // namespace torii
