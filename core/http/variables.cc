#include "core/http/variables.h"

#include <time.h>

#include <cstring>

#include "core/base/format.h"
#include "core/base/wall_clock.h"
#include "core/config/config.h"
#include "core/http/request.h"
#include "core/http/request_id.h"
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

// Numbers are written on every logged request: format_u64, not snprintf.
static std::string_view number(Request &req, uint64_t n) {
    char *p = req.arena.alloc(20);
    size_t len = format_u64(p, n);
    return {p, len};
}

// "1.234" from milliseconds, as nginx writes times.
static std::string_view seconds(Request &req, uint64_t ms) {
    char *p = req.arena.alloc(24);
    size_t n = format_u64(p, ms / 1000);
    p[n++] = '.';
    uint64_t frac = ms % 1000;
    p[n++] = static_cast<char>('0' + frac / 100);
    p[n++] = static_cast<char>('0' + frac / 10 % 10);
    p[n++] = static_cast<char>('0' + frac % 10);
    return {p, n};
}

static std::string_view protocol_text(const Request &req) {
    if (req.tcp_server) return "TCP";
    return req.input.version == HttpVersion::http2    ? "HTTP/2.0"
           : req.input.version == HttpVersion::http10 ? "HTTP/1.0"
                                                      : "HTTP/1.1";
}

// The request line as received; a TCP session has none: "TCP <the server's address>".
static std::string_view request_line(Request &req) {
    std::string_view parts[5];
    if (req.tcp_server) {
        parts[0] = "TCP ";
        parts[1] = req.tcp_server->listen_text.front();
    } else {
        parts[0] = req.input.method;
        parts[1] = " ";
        parts[2] = req.input.target;
        parts[3] = " ";
        parts[4] = protocol_text(req);
    }
    size_t n = 0;
    for (std::string_view s : parts)
        n += s.size();
    char *p = req.arena.alloc(n);
    size_t at = 0;
    for (std::string_view s : parts) {
        if (!s.empty()) std::memcpy(p + at, s.data(), s.size());
        at += s.size();
    }
    return {p, n};
}

// The working copy of the request's fields, which plugins may change; a request refused
// before the copy was made (a head that failed to parse, logged 400 or 431) has only the
// fields as received.
static const HeaderList &client_headers(const Request &req) {
    return req.headers.empty() ? req.input.headers : req.headers;
}

namespace {
struct Fixed {
    std::string_view name;
    VarId id;
    bool numeric;
};
constexpr Fixed kFixed[] = {
    {"remote_addr", VarId::remote_addr, false},
    {"remote_port", VarId::remote_port, true},
    {"host", VarId::host, false},
    {"uri", VarId::uri, false},
    {"args", VarId::args, false},
    {"request_method", VarId::request_method, false},
    {"scheme", VarId::scheme, false},
    {"upstream_addr", VarId::upstream_addr, false},
    {"status", VarId::status, true},
    {"request_time", VarId::request_time, true},
    {"bytes_sent", VarId::bytes_sent, true},
    {"body_bytes_sent", VarId::body_bytes_sent, true},
    {"request_length", VarId::request_length, true},
    {"upstream_response_time", VarId::upstream_response_time, true},
    {"consumer", VarId::consumer, false},
    {"server_protocol", VarId::server_protocol, false},
    {"grpc_status", VarId::grpc_status, true},
    {"proxy_protocol_addr", VarId::proxy_protocol_addr, false},
    {"request_id", VarId::request_id, false},
    {"request", VarId::request, false},
    {"request_uri", VarId::request_uri, false},
    {"time_local", VarId::time_local, false},
    {"time_iso8601", VarId::time_iso8601, false},
    {"msec", VarId::msec, true},
};
}  // namespace

bool resolve_variable(std::string_view name, VarRef *out) {
    if (!name.empty() && name.front() == '$') name.remove_prefix(1);
    static constexpr std::pair<std::string_view, VarId> families[] = {
        {"http_", VarId::http}, {"arg_", VarId::arg}, {"cookie_", VarId::cookie}};
    for (const auto &[prefix, id] : families) {
        if (name.size() > prefix.size() && name.starts_with(prefix)) {
            *out = VarRef{id, std::string(name), std::string(name.substr(prefix.size()))};
            return true;
        }
    }
    if (is_tls_variable(name)) {
        *out = VarRef{VarId::ssl, std::string(name), {}};
        return true;
    }
    for (const Fixed &f : kFixed) {
        if (f.name == name) {
            *out = VarRef{f.id, std::string(name), {}};
            return true;
        }
    }
    return false;
}

bool is_known_variable(std::string_view name) {
    VarRef ignored;
    return resolve_variable(name, &ignored);
}

bool numeric_variable(VarId id) {
    for (const Fixed &f : kFixed)
        if (f.id == id) return f.numeric;
    return false;
}

bool get_variable(Request &req, std::string_view name, std::string_view *out) {
    VarRef var;
    return resolve_variable(name, &var) && get_variable(req, var, out);
}

bool get_variable(Request &req, const VarRef &var, std::string_view *out) {
    switch (var.id) {
        case VarId::http:
            for (const Header &h : client_headers(req)) {
                if (header_matches(h.name, var.key)) {
                    *out = h.value;
                    return true;
                }
            }
            return false;
        case VarId::arg:
            return find_arg(req.query, var.key, out);
        case VarId::cookie:
            return find_cookie(client_headers(req), var.key, out);
        case VarId::ssl:
            return tls_variable(req.ssl, var.name, req.arena, out);
        case VarId::remote_addr:
            *out = req.remote_addr;
            return true;
        case VarId::remote_port:
            *out = number(req, req.remote.port());
            return true;
        case VarId::host: {
            std::string_view host = req.input.authority;
            size_t colon = host.rfind(':');
            if (colon != std::string_view::npos && host.find(']') == std::string_view::npos)
                host = host.substr(0, colon);
            else if (!host.empty() && host.front() == '[')
                host = host.substr(0, host.find(']') + 1);
            *out = host;
            return true;
        }
        case VarId::uri:
            *out = req.path;
            return true;
        case VarId::args:
            *out = req.query;
            return true;
        case VarId::request_method:
            *out = req.input.method;
            return true;
        case VarId::scheme:
            *out = req.input.scheme;
            return true;
        case VarId::upstream_addr:
            if (req.upstream_addr.empty()) return false;
            *out = req.upstream_addr;
            return true;
        case VarId::status:
            if (!req.response.status) return false;
            *out = number(req, static_cast<uint64_t>(req.response.status));
            return true;
        case VarId::request_time:
            *out = seconds(req, Worker::now_ms() - req.start_ms);
            return true;
        case VarId::bytes_sent:
        case VarId::body_bytes_sent:
            // Body bytes toward the client (the head is not counted): both names, as the
            // access log has always written $bytes_sent and nginx's combined format says
            // $body_bytes_sent.
            *out = number(req, req.bytes_sent);
            return true;
        case VarId::request_length:
            *out = number(req, req.body_received);
            return true;
        case VarId::upstream_response_time:
            if (!req.upstream_latency_us) return false;
            *out = seconds(req, req.upstream_latency_us / 1000);
            return true;
        case VarId::consumer:
            if (req.consumer.empty()) return false;
            *out = req.consumer;
            return true;
        case VarId::server_protocol:
            *out = protocol_text(req);
            return true;
        case VarId::grpc_status: {
            // In the head for a trailers-only answer (torii's own among them), else in the
            // upstream's trailers once the response has ended (the log phase).
            bool found = false;
            *out = req.response.headers.get("grpc-status", &found);
            if (!found) *out = req.upstream_response.trailers.get("grpc-status", &found);
            return found;
        }
        case VarId::proxy_protocol_addr:
            // The client address a PROXY header gave (it became $remote_addr as well).
            if (!req.client || !req.client->proxied()) return false;
            *out = req.remote_addr;
            return true;
        case VarId::request_id:
            *out = request_id(req);
            return true;
        case VarId::request:
            *out = request_line(req);
            return true;
        case VarId::request_uri:
            if (req.tcp_server) return false;
            *out = req.input.target;
            return true;
        case VarId::time_local:
            *out = req.arena.copy(wall_clock_text().local);
            return true;
        case VarId::time_iso8601:
            *out = req.arena.copy(wall_clock_text().iso8601);
            return true;
        case VarId::msec: {
            timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            *out = seconds(req, static_cast<uint64_t>(ts.tv_sec) * 1000 +
                                    static_cast<uint64_t>(ts.tv_nsec) / 1'000'000);
            return true;
        }
    }
    return false;
}

NumberResult get_variable_number(Request &req, const VarRef &var, int64_t *out) {
    switch (var.id) {
        case VarId::remote_port:
            *out = req.remote.port();
            return NumberResult::ok;
        case VarId::status:
            if (!req.response.status) return NumberResult::absent;
            *out = req.response.status;
            return NumberResult::ok;
        case VarId::request_time:
            *out = static_cast<int64_t>(Worker::now_ms() - req.start_ms) * 1000;
            return NumberResult::ok;
        case VarId::bytes_sent:
        case VarId::body_bytes_sent:
            *out = static_cast<int64_t>(req.bytes_sent);
            return NumberResult::ok;
        case VarId::request_length:
            *out = static_cast<int64_t>(req.body_received);
            return NumberResult::ok;
        case VarId::upstream_response_time:
            if (!req.upstream_latency_us) return NumberResult::absent;
            *out = static_cast<int64_t>(req.upstream_latency_us);
            return NumberResult::ok;
        case VarId::msec: {
            timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            *out = static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
            return NumberResult::ok;
        }
        case VarId::grpc_status: {
            std::string_view v;
            if (!get_variable(req, var, &v)) return NumberResult::absent;
            if (v.empty() || v.size() > 9) return NumberResult::not_numeric;
            int64_t n = 0;
            for (char c : v) {
                if (c < '0' || c > '9') return NumberResult::not_numeric;
                n = n * 10 + (c - '0');
            }
            *out = n;
            return NumberResult::ok;
        }
        default:
            return NumberResult::not_numeric;
    }
}

Result<std::vector<TemplatePart>> parse_template(std::string_view text) {
    std::vector<TemplatePart> parts;
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
        std::string_view name = text.substr(start, end - start);
        if (name.empty())
            return make_error("\"$\" without a variable name in \"" + std::string(text) + "\"");
        TemplatePart part;
        part.is_var = true;
        if (!resolve_variable(name, &part.var))
            return make_error("unknown variable \"$" + std::string(name) + "\"");
        if (!literal.empty()) parts.push_back({false, std::move(literal), {}});
        literal.clear();
        parts.push_back(std::move(part));
        i = braced ? end + 1 : end;
    }
    if (!literal.empty()) parts.push_back({false, std::move(literal), {}});
    return parts;
}

Result<Template> Template::compile(std::string_view text) {
    auto parts = parse_template(text);
    if (!parts) return make_error(parts.error());
    Template t;
    t.parts_ = std::move(parts.value());
    return t;
}

std::string_view Template::expand(Request &req) const {
    if (parts_.empty()) return {};
    if (parts_.size() == 1) {
        if (!parts_[0].is_var) return parts_[0].text;
        std::string_view v;
        return get_variable(req, parts_[0].var, &v) ? v : std::string_view{};
    }
    std::string_view out;
    for (const TemplatePart &p : parts_) {
        std::string_view v = p.text;
        if (p.is_var && !get_variable(req, p.var, &v)) v = {};
        // Each piece extends the last arena allocation in place when it can.
        if (out.empty() && !v.empty())
            out = req.arena.copy(v);
        else if (!v.empty())
            req.arena.append(out, v.data(), v.size());
    }
    return out;
}

}  // namespace torii
