#include "core/process/config_dump.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/base/json_escape.h"
#include "core/config/config.h"
#include "core/plugin/chain_origin.h"
#include "core/plugin/plugin_set.h"
#include "core/server/log_format.h"

namespace torii {

namespace {

// ---- TOML values ----------------------------------------------------------------------------

// A TOML basic string. JSON's string escapes (\" \\ \b \f \n \r \t \uXXXX) are all TOML's
// too, so the access log's escaper serves here.
std::string quoted(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string key_text(std::string_view key) {
    bool bare = !key.empty();
    for (char c : key)
        bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-');
    return bare ? std::string(key) : quoted(key);
}

// The largest unit that writes the value exactly: "2s", "250ms", "1h".
std::string duration(Millis ms) {
    static constexpr std::pair<Millis, const char *> units[] = {
        {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
    if (ms == 0) return "\"0s\"";
    for (const auto &[unit, suffix] : units)
        if (ms % unit == 0) return "\"" + std::to_string(ms / unit) + suffix + "\"";
    return "\"" + std::to_string(ms) + "ms\"";
}

std::string size(uint64_t bytes) {
    static constexpr std::pair<uint64_t, const char *> units[] = {
        {1ull << 30, "g"}, {1ull << 20, "m"}, {1ull << 10, "k"}};
    for (const auto &[unit, suffix] : units)
        if (bytes && bytes % unit == 0) return "\"" + std::to_string(bytes / unit) + suffix + "\"";
    return std::to_string(bytes);
}

std::string boolean(bool b) {
    return b ? "true" : "false";
}

std::string strings(const std::vector<std::string> &list) {
    std::string out = "[";
    for (size_t i = 0; i < list.size(); ++i)
        out += (i ? ", " : "") + quoted(list[i]);
    return out + "]";
}

// A plugin's own setting, written inline whatever its shape.
std::string node_text(const toml::node &node) {
    if (const auto *s = node.as_string()) return quoted(**s);
    if (const auto *t = node.as_table()) {
        std::string out = "{";
        bool first = true;
        for (auto &&[k, v] : *t) {
            out += first ? " " : ", ";
            out += key_text(k.str()) + " = " + node_text(v);
            first = false;
        }
        return out + (first ? "}" : " }");
    }
    if (const auto *a = node.as_array()) {
        std::string out = "[";
        for (size_t i = 0; i < a->size(); ++i)
            out += (i ? ", " : "") + node_text(*a->get(i));
        return out + "]";
    }
    std::ostringstream os;  // numbers, booleans, dates: toml++ writes them as TOML
    node.visit([&](const auto &v) { os << v; });
    return os.str();
}

// ---- the writer -----------------------------------------------------------------------------

class Dumper {
public:
    Dumper(const Config &config, const PluginSet &plugins) : config_(config), plugins_(plugins) {}
    std::string run();

private:
    void line(std::string_view text) {
        out_ += text;
        out_ += '\n';
    }
    // `key = value`, and a comment aligned after it when there is one.
    void kv(std::string_view key, const std::string &value, std::string_view comment = {}) {
        std::string text = key_text(key) + " = " + value;
        if (!comment.empty()) {
            text.resize(std::max<size_t>(text.size() + 1, 40), ' ');
            text += "# ";
            text += comment;
        }
        line(text);
    }
    // A setting that has no value ("none"): a comment, since TOML has no null.
    void none(std::string_view key, std::string_view meaning) {
        line("# " + std::string(key) + ": " + std::string(meaning));
    }

    void main_section();
    void plugin_list();
    void admin_section();
    void upstream_section(const UpstreamConfig &up);
    void health_section(const UpstreamConfig &up);
    void server_section(size_t s);
    void location_section(size_t s, size_t l);
    void plugin_table(const std::string &header, const PluginUse &use, std::string_view note);

    // The run order of a chain, one comment line per phase.
    struct Origin {
        const PhaseChain *server = nullptr;  // a member of it is inherited
        const LocationConfig *location = nullptr;
    };
    std::string member_name(const PluginInstance *inst, const Origin &origin) const;
    std::string phase_line(const char *phase, const std::vector<PhaseHook> &hooks,
                           const Origin &origin) const;
    void chain_comment(const PhaseChain &chain, const Origin &origin, const ServerConfig &server,
                       const LocationConfig *location);

    const Config &config_;
    const PluginSet &plugins_;
    std::string out_;
};

std::string Dumper::run() {
    line("# torii -T: " + (config_.file.empty() ? std::string("<config>") : config_.file) +
         " is ok. The effective configuration follows:");
    line("# every default resolved, relative paths made absolute, and the plugin chain of");
    line("# every server and location in run order per phase. What a server or location");
    line("# inherits is written as a comment. It is TOML and loads as the same configuration.");
    main_section();
    plugin_list();
    admin_section();
    for (const auto &[name, up] : config_.upstreams)
        upstream_section(up);
    for (size_t s = 0; s < config_.servers.size(); ++s)
        server_section(s);
    return out_;
}

void Dumper::main_section() {
    const MainConfig &m = config_.main;
    line("");
    line("[main]");
    kv("workers", std::to_string(m.workers));
    if (m.pid_file.empty())
        none("pid_file", "none");
    else
        kv("pid_file", quoted(m.pid_file));
    kv("error_log", quoted(m.error_log));
    kv("access_log", quoted(m.access_log));
    std::string format = m.access_log_format ? m.access_log_format->spec() : "";
    bool is_default = !m.access_log_format || format == kDefaultFormat;
    kv("access_log_format", quoted(is_default ? std::string(kDefaultFormat) : format),
       is_default ? "the default: combined + $request_time $upstream_addr" : "");
    kv("log_level", quoted(m.log_level));
    kv("shutdown_timeout", duration(m.shutdown_timeout));
    kv("tunnel_idle_timeout", duration(m.tunnel_idle_timeout));
    kv("max_draining_generations", std::to_string(m.max_draining_generations));
    kv("worker_connections", std::to_string(m.worker_connections));
    kv("plugin_dir", quoted(m.plugin_dir));
    kv("master_process", boolean(m.master_process));
}

static std::string hooks_of(const LoadedPlugin &p) {
    std::string out;
    auto add = [&](bool has, const char *name) {
        if (has) out += (out.empty() ? "" : ", ") + std::string(name);
    };
    add(TORII_PLUGIN_HOOK(p, pre_route), "pre_route");
    add(TORII_PLUGIN_HOOK(p, access), "access");
    add(TORII_PLUGIN_HOOK(p, pick), "pick");
    add(TORII_PLUGIN_HOOK(p, peer_admit), "peer_admit");
    add(TORII_PLUGIN_HOOK(p, upstream), "upstream");
    add(TORII_PLUGIN_HOOK(p, response), "response");
    add(TORII_PLUGIN_HOOK(p, log), "log");
    add(TORII_PLUGIN_HOOK(p, connect), "connect");
    add(TORII_PLUGIN_HOOK(p, peer_result), "peer_result");
    add(TORII_PLUGIN_HOOK(p, request_done), "request_done");
    return out.empty() ? "none" : out;
}

void Dumper::plugin_list() {
    auto find = [&](const std::string &name) -> const LoadedPlugin * {
        for (const auto &p : plugins_.loaded())
            if (p->name() == name) return p.get();
        return nullptr;
    };
    for (const PluginDecl &d : config_.plugins) {
        line("");
        line("[[plugin]]");
        kv("name", quoted(d.name));
        kv("path", quoted(d.path));
        if (const LoadedPlugin *p = find(d.name)) {
            const char *version = p->desc().version;
            line("# version " + std::string(version && *version ? version : "?") +
                 "; hooks: " + hooks_of(*p));
        }
    }
    // Bundled balancers an upstream names without a [[plugin]] entry load from plugin_dir.
    for (const auto &p : plugins_.loaded()) {
        bool listed = std::any_of(config_.plugins.begin(), config_.plugins.end(),
                                  [&](const PluginDecl &d) { return d.name == p->name(); });
        if (!listed) {
            line("");
            line("# balancer \"" + p->name() + "\" (no [[plugin]] entry needed): " + p->path());
        }
    }
}

void Dumper::admin_section() {
    if (!config_.admin) {
        line("");
        line("# [admin]: none (no admin listener)");
        return;
    }
    const AdminConfig &a = *config_.admin;
    line("");
    line("[admin]");
    kv("listen", quoted(a.listen_text));
    if (a.token.empty())
        none("token", "none (no Authorization needed)");
    else
        kv("token", quoted(a.token));
    if (a.state_file.empty())
        none("state_file", "none (live target changes last until restart)");
    else
        kv("state_file", quoted(a.state_file));
}

static const char *protocol_name(UpstreamProtocol p) {
    switch (p) {
        case UpstreamProtocol::h2:
            return "h2";
        case UpstreamProtocol::h2c:
            return "h2c";
        case UpstreamProtocol::tcp:
            return "tcp";
        default:
            return "http1";
    }
}

void Dumper::upstream_section(const UpstreamConfig &up) {
    line("");
    line("[upstream." + key_text(up.name) + "]");
    kv("balancer", quoted(up.balancer));
    if (up.hash_key.empty())
        none("hash_key", "none");
    else
        kv("hash_key", quoted(up.hash_key));
    kv("protocol", quoted(protocol_name(up.protocol)));
    if (up.targets.empty()) {
        kv("targets", "[]", "all from discovery");
    } else {
        line("targets = [");
        for (const TargetConfig &t : up.targets) {
            char id[40];
            snprintf(id, sizeof id, "# id %016llx", static_cast<unsigned long long>(t.id));
            std::string text = "    { address = " + quoted(t.address) +
                               ", weight = " + std::to_string(t.weight) + " },";
            text.resize(std::max<size_t>(text.size() + 1, 56), ' ');
            line(text + id);
        }
        line("]");
    }
    kv("keepalive", std::to_string(up.keepalive), "idle connections kept per target");
    kv("connect_timeout", duration(up.connect_timeout));
    kv("read_timeout", duration(up.read_timeout));
    kv("send_timeout", duration(up.send_timeout));
    if (up.protocol == UpstreamProtocol::h2 || up.protocol == UpstreamProtocol::h2c) {
        kv("http2_ping_interval", duration(up.http2_ping_interval));
        kv("http2_ping_timeout", duration(up.http2_ping_timeout));
    }
    kv("retries", std::to_string(up.retries));
    kv("slow_start", duration(up.slow_start));
    if (up.proxy_protocol == ProxyProtocolSend::none)
        none("proxy_protocol", "off");
    else
        kv("proxy_protocol", up.proxy_protocol == ProxyProtocolSend::v1 ? "\"v1\"" : "\"v2\"");
    const UpstreamTlsConfig &tls = up.tls;
    if (!tls.enabled) {
        kv("tls", "{ enabled = false }");
    } else {
        std::string t = "{ enabled = true, verify = " + boolean(tls.verify);
        if (!tls.sni.empty()) t += ", sni = " + quoted(tls.sni);
        if (!tls.ca.empty()) t += ", ca = " + quoted(tls.ca);
        if (!tls.cert.empty()) t += ", cert = " + quoted(tls.cert) + ", key = " + quoted(tls.key);
        kv("tls", t + " }",
           tls.ca.empty() ? "verified against the system's CAs" : "verified against ca");
    }
    const DiscoveryConfig &d = up.discovery;
    if (d.type.empty()) {
        none("discovery", "none (targets as listed, and the admin API's changes)");
    } else {
        std::string t = "{ type = " + quoted(d.type);
        if (d.type == "dns") {
            t += ", name = " + quoted(d.name);
            if (d.port) t += ", port = " + std::to_string(d.port);
            if (!d.resolver.empty()) t += ", resolver = " + quoted(d.resolver);
        } else if (d.type == "file") {
            t += ", path = " + quoted(d.path);
        } else {
            t += ", endpoints = " + strings(d.endpoints) + ", prefix = " + quoted(d.prefix);
        }
        if (d.type != "etcd") t += ", interval = " + duration(d.interval);
        kv("discovery", t + " }",
           d.type == "dns" && d.resolver.empty() ? "resolver: /etc/resolv.conf" : "");
    }
    PluginInstance *balancer = plugins_.balancer(up.name);
    if (balancer) line("# balancer instance: plugin \"" + balancer->plugin->name() + "\" (pick)");
    health_section(up);
}

void Dumper::health_section(const UpstreamConfig &up) {
    const HealthConfig &h = up.health;
    line("");
    line("[upstream." + key_text(up.name) + ".health]");
    kv("enabled", boolean(h.enabled),
       h.enabled ? "active checks, run once per machine" : "no active checks");
    kv("type", quoted(h.type));
    if (h.type == "http") {  // a tcp check only connects: these keys are refused there
        kv("path", quoted(h.path));
        if (h.host.empty())
            none("host", "the target's address");
        else
            kv("host", quoted(h.host));
        if (h.statuses.empty()) {
            none("statuses", "any 2xx or 3xx");
        } else {
            std::string list = "[";
            for (size_t i = 0; i < h.statuses.size(); ++i)
                list += (i ? ", " : "") + std::to_string(h.statuses[i]);
            kv("statuses", list + "]");
        }
        if (h.body_contains.empty())
            none("body_contains", "none");
        else
            kv("body_contains", quoted(h.body_contains));
    }
    if (h.type == "grpc") {
        if (h.host.empty())
            none("host", "the target's address");
        else
            kv("host", quoted(h.host));
        kv("service", quoted(h.service),
           h.service.empty() ? "grpc.health.v1.Health/Check about the whole server"
                             : "grpc.health.v1.Health/Check about this service");
    }
    kv("interval", duration(h.interval));
    kv("timeout", duration(h.timeout));
    kv("healthy", std::to_string(h.healthy), "successes to mark a target up");
    kv("unhealthy", std::to_string(h.unhealthy), "failures to mark it down");
    kv("max_fails", std::to_string(h.max_fails), "passive, across workers: failed attempts within");
    kv("fail_timeout", duration(h.fail_timeout), "this long mark a target down");
}

// "ratelimit", "auth (inherited from [[server]])".
std::string Dumper::member_name(const PluginInstance *inst, const Origin &origin) const {
    std::string name = inst->plugin->name();
    switch (chain_origin(inst, origin.server, origin.location)) {
        case ChainOrigin::own:
            return name;
        case ChainOrigin::inherited:
            return name + " (inherited from [[server]])";
        case ChainOrigin::switched_on:
            return name + " (from [[server]], switched on here)";
    }
    return name;
}

std::string Dumper::phase_line(const char *phase, const std::vector<PhaseHook> &hooks,
                               const Origin &origin) const {
    std::string text = "#   ";
    text += phase;
    text.resize(15, ' ');
    if (hooks.empty()) return text + "-";
    for (size_t i = 0; i < hooks.size(); ++i)
        text += (i ? ", " : "") + member_name(hooks[i].inst, origin);
    return text;
}

void Dumper::chain_comment(const PhaseChain &chain, const Origin &origin,
                           const ServerConfig &server, const LocationConfig *location) {
    const PhaseChain &server_chain = *origin.server;
    bool tcp = server.protocol == ServerProtocol::tcp;
    std::string upstream_name = tcp ? server.upstream : location ? location->upstream : "";
    const UpstreamConfig *up = config_.find_upstream(upstream_name);

    // The balancer, then every plugin of the chain that may veto the target it picked.
    std::string balance;
    if (up) {
        balance = "#   balance    " + up->balancer + " (upstream \"" + up->name + "\")";
        for (PluginInstance *m : chain.admitters)
            balance += ", " + member_name(m, origin) + " (peer_admit)";
    }
    if (tcp) {
        line("# Run order for each connection:");
        line(phase_line("connect", chain.phases[kPhaseConnect], {}));
        line(balance);
        line(phase_line("log", chain.phases[TORII_PHASE_LOG], {}));
        return;
    }
    if (!location) {
        line("# Plugins of every request to this server before its location is chosen, and of");
        line("# those no location takes (404) or a pre_route plugin answers:");
        line(phase_line("pre_route", chain.phases[TORII_PHASE_PRE_ROUTE], {}));
        line(phase_line("response", chain.phases[TORII_PHASE_RESPONSE], {}));
        line(phase_line("log", chain.phases[TORII_PHASE_LOG], {}));
        return;
    }
    line("# Run order for requests this location takes:");
    std::string pre = phase_line("pre_route", server_chain.phases[TORII_PHASE_PRE_ROUTE], {});
    if (!server_chain.phases[TORII_PHASE_PRE_ROUTE].empty())
        pre += "  (the server's: it runs before the location is chosen)";
    line(pre);
    line(phase_line("access", chain.phases[TORII_PHASE_ACCESS], origin));
    if (up) {
        line(balance);
        line(phase_line("upstream", chain.phases[TORII_PHASE_UPSTREAM], origin));
    } else {
        line("#   balance    - (return: no upstream)");
        line("#   upstream   - (return: no upstream)");
    }
    line(phase_line("response", chain.phases[TORII_PHASE_RESPONSE], origin));
    line(phase_line("log", chain.phases[TORII_PHASE_LOG], origin));
    // A location's own plugin with a pre_route hook: that hook never runs for it.
    for (const PhaseHook &h : chain.phases[TORII_PHASE_PRE_ROUTE]) {
        const auto &members = server_chain.members;
        if (std::find(members.begin(), members.end(), h.inst) != members.end()) continue;
        line("# note: " + h.inst->plugin->name() +
             "'s pre_route hook does not run here: pre_route runs before the location is");
        line("# chosen, with the server's plugins; enable it in [server.plugins." +
             h.inst->plugin->name() + "] for that");
    }
}

void Dumper::plugin_table(const std::string &header, const PluginUse &use, std::string_view note) {
    line("");
    std::string head = header;
    if (!note.empty()) {
        head.resize(std::max<size_t>(head.size() + 1, 40), ' ');
        head += "# ";
        head += note;
    }
    line(head);
    if (!use.enabled) {
        kv("enabled", "false");
        return;
    }
    if (!use.table) return;
    for (auto &&[k, v] : *use.table)
        kv(k.str(), node_text(v));
}

void Dumper::server_section(size_t s) {
    const ServerConfig &sc = config_.servers[s];
    line("");
    line("[[server]]");
    kv("listen", strings(sc.listen_text));
    kv("protocol", sc.protocol == ServerProtocol::tcp ? "\"tcp\"" : "\"http\"");
    if (sc.protocol == ServerProtocol::tcp) kv("upstream", quoted(sc.upstream));
    kv("server_name", strings(sc.server_name));
    if (sc.tls) {
        const ServerTlsConfig &t = *sc.tls;
        std::string text = "{ cert = " + quoted(t.cert) + ", key = " + quoted(t.key) +
                           ", alpn = " + strings(t.alpn);
        if (!t.verify_client.empty())
            text += ", client_ca = " + quoted(t.client_ca) +
                    ", verify_client = " + quoted(t.verify_client);
        kv("tls", text + " }");
    } else {
        none("tls", "none (plain)");
    }
    kv("proxy_protocol", boolean(sc.proxy_protocol));
    if (sc.tunnel_idle_timeout)
        kv("tunnel_idle_timeout", duration(sc.tunnel_idle_timeout));
    else
        line("# tunnel_idle_timeout = " + duration(config_.main.tunnel_idle_timeout) +
             "   (inherited from [main])");
    if (sc.protocol == ServerProtocol::http) {
        kv("client_max_body_size", size(sc.client_max_body_size));
        kv("client_max_header_size", size(sc.client_max_header_size));
        kv("client_header_timeout", duration(sc.client_header_timeout));
        kv("client_body_timeout", duration(sc.client_body_timeout));
        kv("send_timeout", duration(sc.send_timeout));
        kv("keepalive_timeout", duration(sc.keepalive_timeout));
        kv("keepalive_requests", std::to_string(sc.keepalive_requests));
        kv("underscores_in_headers", boolean(sc.underscores_in_headers));
        kv("http2_max_concurrent_streams", std::to_string(sc.http2_max_concurrent_streams));
    }
    const PhaseChain &chain = plugins_.server_chain(s);
    Origin origin{&chain, nullptr};
    chain_comment(chain, origin, sc, nullptr);
    for (const PluginUse &u : sc.plugins)
        plugin_table("[server.plugins." + key_text(u.name) + "]", u,
                     u.enabled ? "" : "off (enabled = false)");
    for (size_t l = 0; l < sc.locations.size(); ++l)
        location_section(s, l);
}

void Dumper::location_section(size_t s, size_t l) {
    const ServerConfig &sc = config_.servers[s];
    const LocationConfig &loc = sc.locations[l];
    line("");
    line("[[server.location]]");
    kv("path", quoted(loc.path));
    kv("match", loc.match == MatchType::exact   ? "\"exact\""
                : loc.match == MatchType::regex ? "\"regex\""
                                                : "\"prefix\"");
    if (loc.return_action) {
        const ReturnAction &r = *loc.return_action;
        std::string text = "{ status = " + std::to_string(r.status);
        if (!r.body.empty()) text += ", body = " + quoted(r.body);
        if (!r.headers.empty()) {
            text += ", headers = {";
            for (size_t i = 0; i < r.headers.size(); ++i)
                text += (i ? ", " : " ") + key_text(r.headers[i].name) + " = " +
                        quoted(r.headers[i].value);
            text += " }";
        }
        kv("return", text + " }");
    } else {
        kv("upstream", quoted(loc.upstream));
        kv("strip_prefix", boolean(loc.strip_prefix));
    }
    const PhaseChain &server_chain = plugins_.server_chain(s);
    const PhaseChain &chain = plugins_.location_chain(s, l);
    chain_comment(chain, Origin{&server_chain, &loc}, sc, &loc);

    // Every plugin this location runs or switches off, in [[plugin]] (run) order: its own
    // tables with their settings, the server's as bare tables (the same instance).
    for (const PluginDecl &d : config_.plugins) {
        auto own = std::find_if(loc.plugins.begin(), loc.plugins.end(),
                                [&](const PluginUse &u) { return u.name == d.name; });
        auto inherited =
            std::find_if(sc.plugins.begin(), sc.plugins.end(),
                         [&](const PluginUse &u) { return u.name == d.name && u.enabled; });
        std::string header = "[server.location.plugins." + key_text(d.name) + "]";
        if (own != loc.plugins.end()) {
            bool bare = !own->table || own->table->empty();
            std::string_view note =
                !own->enabled ? (inherited != sc.plugins.end() ? "off here (enabled = false)"
                                                               : "off (enabled = false)")
                : bare && inherited != sc.plugins.end() ? "from [[server]], switched on here"
                : inherited != sc.plugins.end()         ? "set here (replaces [[server]]'s)"
                                                        : "set here";
            plugin_table(header, *own, note);
        } else if (inherited != sc.plugins.end()) {
            line("");
            line("# " + header + "   (inherited from [[server]])");
        }
    }
}

}  // namespace

std::string dump_effective_config(const Config &config, const PluginSet &plugins) {
    return Dumper(config, plugins).run();
}

}  // namespace torii
