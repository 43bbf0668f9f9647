#include "core/server/log_format.h"

#include "core/base/json_escape.h"
#include "core/config/config.h"
#include "core/http/request.h"
#include "core/server/query_mask.h"

namespace torii {

void append_log_escaped(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0, n = s.size();
    while (i < n) {
        size_t start = i;
        for (; i < n; ++i) {
            auto c = static_cast<unsigned char>(s[i]);
            if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f) break;
        }
        out.append(s.data() + start, i - start);
        if (i == n) break;
        auto c = static_cast<unsigned char>(s[i++]);
        char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        out.append(esc, sizeof esc);
    }
}

// A JSON number as torii writes them ("200", "0.042"); anything else from outside (a
// gRPC status an upstream sent as "OK" or "007") is written as a string.
static bool json_number(std::string_view v) {
    if (v.empty() || v.size() > 24 || (v[0] == '0' && v.size() > 1 && v[1] != '.')) return false;
    bool dot = false;
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] >= '0' && v[i] <= '9') continue;
        if (v[i] != '.' || dot || i == 0 || i + 1 == v.size()) return false;
        dot = true;
    }
    return true;
}

static std::string_view protocol_text(const Request &req) {
    return req.input.version == HttpVersion::http2    ? "HTTP/2.0"
           : req.input.version == HttpVersion::http10 ? "HTTP/1.0"
                                                      : "HTTP/1.1";
}

// $request, $request_uri and $args as the log writes them: credentials in the query masked.
// Returns false when the variable has no value; otherwise the text is in `scratch`.
static bool masked_value(Request &req, VarId id, std::string &scratch) {
    scratch.clear();
    switch (id) {
        case VarId::request:
            if (req.tcp_server) {
                // A TCP session has no request line: "TCP <the server's address>".
                scratch += "TCP ";
                scratch += req.tcp_server->listen_text.front();
                return true;
            }
            scratch += req.input.method;
            scratch += ' ';
            append_masked_target(scratch, req.input.target);
            scratch += ' ';
            scratch += protocol_text(req);
            return true;
        case VarId::request_uri:
            if (req.tcp_server) return false;
            append_masked_target(scratch, req.input.target);
            return true;
        default:  // VarId::args
            append_masked_query(scratch, req.query);
            return true;
    }
}

static bool is_masked(VarId id) {
    return id == VarId::request || id == VarId::request_uri || id == VarId::args;
}

Result<std::shared_ptr<const LogFormat>> LogFormat::compile(std::string_view spec) {
    auto format = std::make_shared<LogFormat>();
    if (spec == "json") {
        format->spec_ = "json";
        format->json_ = true;
        bool first = true;
        for (std::string_view field : kJsonFields) {
            Op op;
            op.literal = first ? "{\"" : ",\"";
            op.literal += field;
            op.literal += "\":";
            op.has_var = true;
            resolve_variable(field, &op.var);
            op.numeric = numeric_variable(op.var.id);
            format->ops_.push_back(std::move(op));
            first = false;
        }
        format->ops_.push_back(Op{"}\n", false, false, {}});
        return std::shared_ptr<const LogFormat>(std::move(format));
    }
    std::string_view text = spec.empty()         ? kDefaultFormat
                            : spec == "combined" ? kCombinedFormat
                                                 : spec;
    format->spec_ = spec.empty() ? std::string(kDefaultFormat) : std::string(spec);
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f)
            return make_error("control characters (a newline) would split the log's lines");
    }
    auto parts = parse_template(text);
    if (!parts) return make_error(parts.error());
    for (TemplatePart &part : parts.value()) {
        if (!part.is_var) {
            format->ops_.push_back(Op{std::move(part.text), false, false, {}});
            continue;
        }
        // A variable after literal text shares its Op.
        if (format->ops_.empty() || format->ops_.back().has_var) format->ops_.push_back(Op{});
        Op &op = format->ops_.back();
        op.has_var = true;
        op.var = std::move(part.var);
    }
    format->ops_.push_back(Op{"\n", false, false, {}});
    return std::shared_ptr<const LogFormat>(std::move(format));
}

void LogFormat::append_text_value(Request &req, const Op &op, std::string &out) const {
    std::string_view v;
    if (is_masked(op.var.id)) {
        static std::string scratch;
        if (masked_value(req, op.var.id, scratch)) v = scratch;
    } else if (!get_variable(req, op.var, &v)) {
        v = {};
    }
    if (v.empty())
        out += '-';
    else
        append_log_escaped(out, v);
}

void LogFormat::append_json_value(Request &req, const Op &op, std::string &out) const {
    std::string_view v;
    bool found;
    static std::string scratch;
    if (is_masked(op.var.id)) {
        found = masked_value(req, op.var.id, scratch);
        v = scratch;
    } else {
        found = get_variable(req, op.var, &v);
    }
    if (!found)
        out += "null";
    else if (op.numeric && json_number(v))
        out += v;
    else
        append_json_string(out, v);
}

void LogFormat::append_line(Request &req, std::string &out) const {
    for (const Op &op : ops_) {
        out += op.literal;
        if (!op.has_var) continue;
        if (json_)
            append_json_value(req, op, out);
        else
            append_text_value(req, op, out);
    }
}

}  // namespace torii
