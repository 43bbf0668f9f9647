// Builds a Config from the TOML file (SPEC section 2). Reading is split by section; each
// helper checks its keys, types and values as it goes and stops at the first error with the
// file, line and column of the key at fault. Cross-references (upstream names, balancer and
// plugin names) are checked as they are met, which is why sections are read in the order
// [main], [[plugin]], [admin], [upstream.*], [[server]] whatever their order in the file.
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/base/text_checks.h"
#include "core/config/config.h"
#include "core/config/config_reader.h"
#include "core/config/target_id.h"
#include "core/http/field_chars.h"
#include "core/server/log_format.h"
#include "modules/discovery/discovery_endpoint.h"
#include "modules/tls/tls_context.h"

namespace torii {

namespace {

using config_detail::ConfigError;
using config_detail::FileContext;
using config_detail::Section;

// Balancers every build has; any other name must be a [[plugin]] in the list.
constexpr std::array<std::string_view, 5> kBuiltinBalancers = {"random", "round_robin", "weighted",
                                                               "chash", "least_conn"};

std::string in_quotes(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

bool is_plugin_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// RFC 9110 token characters: what a header name may contain.
bool is_header_name(std::string_view name) {
    return valid_field_name(name);
}

class Loader {
public:
    Loader(const FileContext &ctx, toml::table &root, Config &config)
        : ctx_(ctx), top_(ctx, root, "the top level"), config_(config) {}

    void load();

private:
    std::optional<Section> top_table(std::string_view key) const;
    // The tables of an array of tables such as [[server]]; an empty array is allowed.
    std::vector<toml::table *> table_array(const Section &parent, std::string_view key,
                                           std::string_view header) const;
    const PluginDecl *find_plugin(std::string_view name) const;

    void read_main();
    void read_log_target(const Section &s, std::string_view key, std::string &out) const;
    void read_plugin_list();
    void read_admin();

    void read_upstreams();
    UpstreamConfig read_upstream(const std::string &name, const Section &s) const;
    void read_targets(const Section &s, UpstreamConfig &up) const;
    void read_discovery(const Section &s, DiscoveryConfig &discovery) const;
    void read_health(const Section &s, UpstreamConfig &up) const;

    void read_servers();
    ServerConfig read_server(const Section &s) const;
    void read_listen(const Section &s, ServerConfig &server) const;
    LocationConfig read_location(const Section &s) const;
    ReturnAction read_return(const Section &s) const;
    void check_regex(const Section &s, const std::string &who, const std::string &pattern) const;
    std::vector<PluginUse> read_plugin_uses(const Section &owner,
                                            const std::string &header_base) const;

    const FileContext &ctx_;
    Section top_;
    Config &config_;
};

void Loader::load() {
    constexpr std::array<std::string_view, 5> known = {"main", "plugin", "admin", "upstream",
                                                       "server"};
    for (auto &&[key, value] : top_.table()) {
        if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
        std::string name(key.str());
        if (value.is_table()) ctx_.fail(top_.where(name), "unknown section [" + name + "]");
        if (value.is_array_of_tables()) {
            ctx_.fail(top_.where(name), "unknown section [[" + name + "]]");
        }
        ctx_.fail(top_.where(name), "unknown key " + in_quotes(name) + " at the top level");
    }
    read_main();
    read_plugin_list();
    read_admin();
    read_upstreams();
    read_servers();
}

std::optional<Section> Loader::top_table(std::string_view key) const {
    toml::node *node = top_.get(key);
    if (!node) return std::nullopt;
    std::string header = "[" + std::string(key) + "]";
    if (!node->is_table()) {
        ctx_.fail(top_.where(key), in_quotes(key) + " must be a " + header + " table");
    }
    return Section(ctx_, *node->as_table(), header);
}

std::vector<toml::table *> Loader::table_array(const Section &parent, std::string_view key,
                                               std::string_view header) const {
    std::vector<toml::table *> tables;
    toml::node *node = parent.get(key);
    if (!node) return tables;
    toml::array *array = node->as_array();
    if (!array || (!array->empty() && !array->is_array_of_tables())) {
        ctx_.fail(parent.where(key),
                  in_quotes(key) + " must be written as " + std::string(header) + " tables");
    }
    for (toml::node &element : *array) {
        tables.push_back(element.as_table());
    }
    return tables;
}

const PluginDecl *Loader::find_plugin(std::string_view name) const {
    for (const PluginDecl &decl : config_.plugins) {
        if (decl.name == name) return &decl;
    }
    return nullptr;
}

// ---- [main] ---------------------------------------------------------------------------------

// The format of a config without access_log_format: compiled once, shared by every load.
std::shared_ptr<const LogFormat> default_log_format() {
    static const std::shared_ptr<const LogFormat> format = LogFormat::compile({}).value();
    return format;
}

void Loader::read_main() {
    MainConfig &main = config_.main;
    // Default next to a source checkout: conf/torii.toml finds build/plugins.
    main.plugin_dir = ctx_.absolute("../build/plugins");
    main.access_log_format = default_log_format();
    std::optional<Section> s = top_table("main");
    if (!s) return;
    s->allow_only({"workers", "pid_file", "error_log", "access_log", "access_log_format",
                   "log_level", "shutdown_timeout", "plugin_dir", "master_process",
                   "worker_connections", "tunnel_idle_timeout", "max_draining_generations"});
    s->read("master_process", main.master_process);

    if (const toml::node *workers = s->get("workers")) {
        if (workers->is_integer()) {
            s->read("workers", main.workers, 1, 1024);
        } else if (workers->value<std::string>() == "auto") {
            main.workers = std::max(1u, std::thread::hardware_concurrency());
        } else {
            s->fail("workers", "expected an integer or \"auto\"");
        }
    }
    std::string pid_file;
    if (s->read("pid_file", pid_file)) {
        main.pid_file = pid_file.empty() ? std::string() : ctx_.absolute(pid_file);
    }
    read_log_target(*s, "error_log", main.error_log);
    read_log_target(*s, "access_log", main.access_log);
    std::string format;
    if (s->read("access_log_format", format)) {
        if (format.empty())
            s->fail("access_log_format", "expected \"combined\", \"json\" or a template");
        auto compiled = LogFormat::compile(format);
        if (!compiled) s->fail("access_log_format", compiled.error());
        main.access_log_format = std::move(compiled.value());
    }
    s->read_choice("log_level", main.log_level, {"debug", "info", "notice", "warn", "error"});
    s->read_duration("shutdown_timeout", main.shutdown_timeout);
    s->read_duration("tunnel_idle_timeout", main.tunnel_idle_timeout);
    s->read("worker_connections", main.worker_connections, 1, 1 << 20);
    s->read("max_draining_generations", main.max_draining_generations, 0, 64);
    s->read_path("plugin_dir", main.plugin_dir);
}

void Loader::read_log_target(const Section &s, std::string_view key, std::string &out) const {
    std::string value;
    if (!s.read(key, value)) return;
    if (value.empty()) s.fail(key, "expected a path, \"stderr\" or \"off\"");
    out = (value == "stderr" || value == "off") ? value : ctx_.absolute(value);
}

// ---- [[plugin]] and [admin] -----------------------------------------------------------------

void Loader::read_plugin_list() {
    for (toml::table *table : table_array(top_, "plugin", "[[plugin]]")) {
        Section s(ctx_, *table, "[[plugin]]");
        s.allow_only({"name", "path"});
        PluginDecl decl;
        decl.name = s.require("name");
        if (!is_plugin_name(decl.name)) {
            s.fail("name", "use letters, digits, \"_\" and \"-\", not " + in_quotes(decl.name));
        }
        if (const PluginDecl *first = find_plugin(decl.name)) {
            ctx_.fail(s.where("name"), "plugin " + in_quotes(decl.name) +
                                           " is listed twice (first at " + first->pos.to_string() +
                                           ")");
        }
        if (!s.read_path("path", decl.path)) {
            decl.path = ctx_.absolute(config_.main.plugin_dir + "/" + decl.name + ".so");
        }
        decl.pos = s.pos();
        config_.plugins.push_back(std::move(decl));
    }
}

void Loader::read_admin() {
    std::optional<Section> s = top_table("admin");
    if (!s) return;
    s->allow_only({"listen", "token", "state_file"});
    AdminConfig admin;
    // Loopback unless said otherwise: the API can change the targets.
    admin.listen_text = "127.0.0.1:9901";
    s->read("listen", admin.listen_text);
    Result<SocketAddress> address = SocketAddress::parse(admin.listen_text);
    if (!address) s->fail("listen", address.error());
    admin.listen = *address;
    // Parsed, so it is "[v6]:port" or "host:port": a name is what is neither.
    std::string_view host = admin.listen_text;
    host = host.substr(0, host.rfind(':'));
    in_addr v4;
    if (!host.starts_with('[') && host != "*" &&
        inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
        for (char c : host)
            admin.name += static_cast<char>(tolower(static_cast<unsigned char>(c)));
    }
    s->read("token", admin.token);
    if (s->has("token") && admin.token.empty()) s->fail("token", "must not be empty");
    s->read_path("state_file", admin.state_file);
    admin.pos = s->has("listen") ? s->pos("listen") : s->pos();
    config_.admin = std::move(admin);
}

// ---- [upstream.NAME] ------------------------------------------------------------------------

void Loader::read_upstreams() {
    toml::node *node = top_.get("upstream");
    if (!node) return;
    if (!node->is_table()) {
        ctx_.fail(top_.where("upstream"), "\"upstream\" must be written as [upstream.NAME] tables");
    }
    Section all(ctx_, *node->as_table(), "[upstream]");
    for (auto &&[key, value] : all.table()) {
        std::string name(key.str());
        if (!value.is_table()) all.fail(name, "expected a table: [upstream." + name + "]");
        Section s(ctx_, *value.as_table(), "[upstream." + name + "]");
        config_.upstreams.emplace(name, read_upstream(name, s));
    }
}

UpstreamConfig Loader::read_upstream(const std::string &name, const Section &s) const {
    s.allow_only({"balancer", "hash_key", "protocol", "targets", "keepalive", "connect_timeout",
                  "read_timeout", "send_timeout", "retries", "tls", "discovery", "health",
                  "slow_start", "proxy_protocol", "http2_ping_interval", "http2_ping_timeout"});
    const std::string who = "upstream " + in_quotes(name);
    UpstreamConfig up;
    up.name = name;
    up.pos = s.pos();
    up.table = &s.table();

    s.read("hash_key", up.hash_key);
    if (s.read("balancer", up.balancer)) {
        bool builtin = std::find(kBuiltinBalancers.begin(), kBuiltinBalancers.end(), up.balancer) !=
                       kBuiltinBalancers.end();
        if (!builtin && !find_plugin(up.balancer)) {
            ctx_.fail(s.where("balancer"), who + ": unknown balancer " + in_quotes(up.balancer));
        }
    }
    if (up.balancer == "chash" && up.hash_key.empty()) {
        ctx_.fail(s.where("balancer"),
                  who + ": balancer \"chash\" needs hash_key, e.g. hash_key = \"$remote_addr\"");
    }
    std::string protocol;
    if (s.read_choice("protocol", protocol, {"http1", "h2", "h2c", "tcp"})) {
        up.protocol = protocol == "h2"    ? UpstreamProtocol::h2
                      : protocol == "h2c" ? UpstreamProtocol::h2c
                      : protocol == "tcp" ? UpstreamProtocol::tcp
                                          : UpstreamProtocol::http1;
    }
    s.read("keepalive", up.keepalive, 0, 1'000'000);
    s.read_duration("connect_timeout", up.connect_timeout);
    s.read_duration("read_timeout", up.read_timeout);
    s.read_duration("send_timeout", up.send_timeout);
    s.read_duration("http2_ping_interval", up.http2_ping_interval);
    s.read_duration("http2_ping_timeout", up.http2_ping_timeout);
    if (up.http2_ping_interval > 0 && up.http2_ping_timeout <= 0)
        ctx_.fail(s.where("http2_ping_timeout"),
                  who +
                      ": http2_ping_timeout must be above 0 (http2_ping_interval = \"0s\" "
                      "turns the PING off)");
    s.read("retries", up.retries, 0, 100);
    s.read_duration("slow_start", up.slow_start);
    std::string proxy_protocol;
    if (s.read_choice("proxy_protocol", proxy_protocol, {"v1", "v2"})) {
        up.proxy_protocol = proxy_protocol == "v1" ? ProxyProtocolSend::v1 : ProxyProtocolSend::v2;
        // The header names one client for the whole connection: an HTTP/2 session
        // multiplexes many clients' streams, so it cannot carry one.
        if (up.protocol == UpstreamProtocol::h2 || up.protocol == UpstreamProtocol::h2c)
            s.fail("proxy_protocol", "not available with protocol = \"" + protocol +
                                         "\" (one connection carries many clients)");
    }

    if (s.has("tls")) {
        Section tls = s.sub("tls");
        tls.allow_only({"enabled", "sni", "verify", "ca", "cert", "key"});
        // A tls table turns TLS on unless it says enabled = false.
        up.tls.enabled = true;
        tls.read("enabled", up.tls.enabled);
        tls.read("sni", up.tls.sni);
        tls.read("verify", up.tls.verify);
        tls.read_path("ca", up.tls.ca);
        bool has_cert = tls.read_path("cert", up.tls.cert);
        bool has_key = tls.read_path("key", up.tls.key);
        if (has_cert != has_key) tls.fail(has_cert ? "key" : "cert", "cert and key go together");
        if (up.protocol == UpstreamProtocol::h2 && !up.tls.enabled)
            tls.fail("enabled", "protocol = \"h2\" is HTTP/2 over TLS (use \"h2c\" for cleartext)");
        if (up.tls.enabled) {
            std::string at;
            auto ctx = make_upstream_tls_context(up.tls, up.protocol == UpstreamProtocol::h2, &at);
            if (!ctx) tls.fail(at, ctx.error());
            up.tls.ctx = std::move(ctx.value());
        }
    } else if (up.protocol == UpstreamProtocol::h2) {
        // HTTP/2 to targets goes over TLS (ALPN h2), verified against the system's CAs.
        up.tls.enabled = true;
        std::string at;
        auto ctx = make_upstream_tls_context(up.tls, true, &at);
        if (!ctx) ctx_.fail(s.where("protocol"), ctx.error());
        up.tls.ctx = std::move(ctx.value());
    }
    if (s.has("discovery")) read_discovery(s.sub("discovery"), up.discovery);
    read_targets(s, up);
    if (up.targets.empty() && up.discovery.type.empty()) {
        ctx_.fail(s.where("targets"), who + ": no targets (set targets or discovery)");
    }
    if (s.has("health")) read_health(s, up);
    return up;
}

void Loader::read_targets(const Section &s, UpstreamConfig &up) const {
    toml::node *node = s.get("targets");
    if (!node) return;
    const char *expected =
        "expected an array of \"host:port\" strings or { address, weight } tables";
    toml::array *array = node->as_array();
    if (!array) s.fail("targets", expected);
    for (toml::node &element : *array) {
        TargetConfig target;
        toml::source_region at = element.source();
        if (element.is_string()) {
            target.address = **element.as_string();
        } else if (toml::table *table = element.as_table()) {
            Section t(ctx_, *table, s.label(), "targets.");
            t.allow_only({"address", "weight"});
            target.address = t.require("address");
            t.read("weight", target.weight, 1, 1'000'000);
            at = t.where("address");
        } else {
            s.fail("targets", expected);
        }
        Result<SocketAddress> address = SocketAddress::parse(target.address);
        if (!address) ctx_.fail(at, s.label() + " targets: " + address.error());
        target.sockaddr = *address;
        unsigned occurrence = 0;
        for (const TargetConfig &before : up.targets)
            occurrence += before.sockaddr.same_host(target.sockaddr) &&
                          before.sockaddr.port() == target.sockaddr.port();
        target.id = stable_target_id(up.name, target.sockaddr, occurrence);
        up.targets.push_back(std::move(target));
    }
}

void Loader::read_discovery(const Section &s, DiscoveryConfig &discovery) const {
    s.allow_only({"type", "name", "port", "interval", "path", "resolver", "endpoints", "prefix"});
    if (!s.read_choice("type", discovery.type, {"dns", "file", "etcd"})) s.fail_missing("type");
    discovery.pos = s.pos();
    s.read_duration("interval", discovery.interval);
    if (discovery.interval <= 0) s.fail("interval", "must be more than 0");
    auto only_for = [&](std::string_view key, std::string_view type) {
        if (s.has(key) && discovery.type != type)
            s.fail(key, "applies to type = \"" + std::string(type) + "\" only");
    };
    only_for("name", "dns");
    only_for("port", "dns");
    only_for("resolver", "dns");
    only_for("path", "file");
    only_for("endpoints", "etcd");
    only_for("prefix", "etcd");
    if (discovery.type == "dns") {
        if (!s.read("name", discovery.name)) s.fail_missing("name");
        if (discovery.name.empty()) s.fail("name", "must not be empty");
        // SRV records carry their own ports; A/AAAA addresses take `port`.
        bool srv = discovery.name[0] == '_';
        if (!s.read("port", discovery.port, 1, 65535) && !srv) s.fail_missing("port");
        if (s.read("resolver", discovery.resolver)) {
            // An IP literal: resolving the resolver's name would need a resolver.
            std::string_view host = discovery.resolver;
            host = host.substr(0, host.rfind(':'));
            in_addr v4;
            if (!host.starts_with('[') && inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1)
                s.fail("resolver", "must be an IP address with a port, e.g. \"127.0.0.1:53\"");
            Result<SocketAddress> r = SocketAddress::parse(discovery.resolver);
            if (!r) s.fail("resolver", r.error());
        }
    } else if (discovery.type == "file") {
        if (!s.read_path("path", discovery.path)) s.fail_missing("path");
    } else {
        if (!s.read_strings("endpoints", discovery.endpoints)) s.fail_missing("endpoints");
        if (discovery.endpoints.empty()) s.fail("endpoints", "must not be empty");
        // The same check the source makes (IP literal or localhost, a port, no path), so that
        // -t refuses what could only fail at run time.
        for (const std::string &e : discovery.endpoints)
            if (Result<DiscoveryEndpoint> ep = DiscoveryEndpoint::parse(e); !ep)
                s.fail("endpoints", ep.error());
        if (!s.read("prefix", discovery.prefix)) s.fail_missing("prefix");
        if (discovery.prefix.empty()) s.fail("prefix", "must not be empty");
    }
}

void Loader::read_health(const Section &up_section, UpstreamConfig &up) const {
    toml::node *node = up_section.get("health");
    if (!node->is_table()) {
        up_section.fail("health", "expected a table: [upstream." + up.name + ".health]");
    }
    Section s(ctx_, *node->as_table(), "[upstream." + up.name + ".health]");
    s.allow_only({"enabled", "type", "path", "interval", "timeout", "healthy", "unhealthy",
                  "max_fails", "fail_timeout", "host", "statuses", "body_contains", "service"});
    HealthConfig &health = up.health;
    health.enabled = true;  // writing the table switches probes on; `enabled = false` parks it
    s.read("enabled", health.enabled);
    s.read_choice("type", health.type, {"http", "tcp", "grpc"});
    if (health.type == "grpc" && up.protocol != UpstreamProtocol::h2 &&
        up.protocol != UpstreamProtocol::h2c)
        s.fail("type", "\"grpc\" needs protocol = \"h2\" or \"h2c\" in [upstream." + up.name +
                           "] (gRPC is HTTP/2)");
    if (s.read("path", health.path) && (health.path.empty() || health.path[0] != '/')) {
        s.fail("path", "must start with \"/\"");
    }
    s.read_duration("interval", health.interval);
    s.read_duration("timeout", health.timeout);
    s.read("healthy", health.healthy, 1, 1000);
    s.read("unhealthy", health.unhealthy, 1, 1000);
    s.read("max_fails", health.max_fails, 0, 1000);
    s.read_duration("fail_timeout", health.fail_timeout);
    if (health.interval <= 0) s.fail("interval", "must be more than 0");
    if (health.timeout <= 0) s.fail("timeout", "must be more than 0");
    s.read("host", health.host);
    // Refused here rather than at every check (the probe would not send them either).
    if (has_control_chars(health.path)) s.fail("path", "must not contain control characters");
    if (has_control_chars(health.host)) s.fail("host", "must not contain control characters");
    s.read("body_contains", health.body_contains);
    if (toml::node *statuses = s.get("statuses")) {
        const char *expected = "expected an array of HTTP statuses, e.g. [200, 204]";
        toml::array *array = statuses->as_array();
        if (!array || array->empty()) s.fail("statuses", expected);
        for (toml::node &element : *array) {
            std::optional<int64_t> v = element.value<int64_t>();
            if (!v || *v < 100 || *v > 599) s.fail("statuses", expected);
            health.statuses.push_back(static_cast<int>(*v));
        }
    }
    s.read("service", health.service);
    // A tcp check only connects; a grpc one sends the Check call (its own path) and judges
    // its answer, with `host` as :authority.
    for (std::string_view key : {"path", "host", "statuses", "body_contains"}) {
        const bool applies = health.type == "http" || (health.type == "grpc" && key == "host");
        if (!applies && s.has(key)) s.fail(key, "applies to type = \"http\" only");
    }
    if (health.type != "grpc" && s.has("service"))
        s.fail("service", "applies to type = \"grpc\" only");
}

// ---- [[server]] -----------------------------------------------------------------------------

void Loader::read_servers() {
    for (toml::table *table : table_array(top_, "server", "[[server]]")) {
        config_.servers.push_back(read_server(Section(ctx_, *table, "[[server]]")));
    }
    // Servers sharing an address share its listener: TLS is on for all of them or none
    // (the certificate is chosen per server by SNI, the handshake per listener).
    std::map<std::string, const ServerConfig *> first;
    for (const ServerConfig &s : config_.servers) {
        for (const SocketAddress &a : s.listen) {
            auto [it, fresh] = first.emplace(a.to_string(), &s);
            // A tcp server's listener relays every connection to its upstream: nothing
            // (no Host, no SNI routing) could tell servers sharing it apart.
            if (!fresh && (s.protocol == ServerProtocol::tcp ||
                           it->second->protocol == ServerProtocol::tcp)) {
                throw ConfigError{s.pos.to_string() + ": server " +
                                  in_quotes(s.listen_text.front()) + ": listen " +
                                  in_quotes(a.to_string()) +
                                  " is shared with another server; a tcp server needs an "
                                  "address of its own"};
            }
            if (!fresh && bool(it->second->tls) != bool(s.tls)) {
                throw ConfigError{s.pos.to_string() + ": server " +
                                  in_quotes(s.listen_text.front()) + ": listen " +
                                  in_quotes(a.to_string()) + " is shared with a server " +
                                  (s.tls ? "without" : "with") +
                                  " tls; all servers of one address use TLS or none do"};
            }
            if (!fresh && it->second->proxy_protocol != s.proxy_protocol) {
                throw ConfigError{s.pos.to_string() + ": server " +
                                  in_quotes(s.listen_text.front()) + ": listen " +
                                  in_quotes(a.to_string()) + " is shared with a server " +
                                  (s.proxy_protocol ? "without" : "with") +
                                  " proxy_protocol; all servers of one address expect the "
                                  "PROXY header or none do"};
            }
        }
    }
}

ServerConfig Loader::read_server(const Section &s) const {
    s.allow_only({"listen", "protocol", "server_name", "tls", "client_max_body_size",
                  "client_max_header_size", "client_header_timeout", "client_body_timeout",
                  "send_timeout", "keepalive_timeout", "keepalive_requests", "upstream", "plugins",
                  "location", "underscores_in_headers", "tunnel_idle_timeout",
                  "http2_max_concurrent_streams", "proxy_protocol"});
    ServerConfig server;
    server.pos = s.pos();
    read_listen(s, server);
    const std::string who = "server " + in_quotes(server.listen_text.front());

    std::string protocol;
    if (s.read_choice("protocol", protocol, {"http", "tcp"})) {
        server.protocol = protocol == "tcp" ? ServerProtocol::tcp : ServerProtocol::http;
    }
    s.read_strings("server_name", server.server_name);
    if (s.has("tls")) {
        Section t = s.sub("tls");
        t.allow_only({"cert", "key", "alpn", "client_ca", "verify_client"});
        ServerTlsConfig tls;
        if (!t.read_path("cert", tls.cert)) t.fail_missing("cert");
        if (!t.read_path("key", tls.key)) t.fail_missing("key");
        t.read_strings("alpn", tls.alpn);
        for (const std::string &p : tls.alpn)
            if (p != "h2" && p != "http/1.1")
                t.fail("alpn", "unknown protocol " + in_quotes(p) + " (h2, http/1.1)");
        bool has_ca = t.read_path("client_ca", tls.client_ca);
        if (t.read_choice("verify_client", tls.verify_client, {"on", "optional", "off"})) {
            if (tls.verify_client == "off") tls.verify_client.clear();
            if (!tls.verify_client.empty() && !has_ca) t.fail_missing("client_ca");
        } else if (has_ca) {
            tls.verify_client = "on";
        }
        if (tls.verify_client.empty()) tls.client_ca.clear();
        std::string at;
        auto ctx = make_server_tls_context(tls, &at);
        if (!ctx) t.fail(at.empty() ? "cert" : at, ctx.error());
        tls.ctx = std::move(ctx.value());
        server.tls = std::move(tls);
    }
    s.read_size("client_max_body_size", server.client_max_body_size);
    s.read_size("client_max_header_size", server.client_max_header_size);
    s.read_duration("client_header_timeout", server.client_header_timeout);
    s.read_duration("client_body_timeout", server.client_body_timeout);
    s.read_duration("send_timeout", server.send_timeout);
    s.read_duration("keepalive_timeout", server.keepalive_timeout);
    s.read("keepalive_requests", server.keepalive_requests, 1, INT_MAX);
    s.read("underscores_in_headers", server.underscores_in_headers);
    s.read("proxy_protocol", server.proxy_protocol);
    s.read_duration("tunnel_idle_timeout", server.tunnel_idle_timeout);
    s.read("http2_max_concurrent_streams", server.http2_max_concurrent_streams, 1, 65536);
    server.plugins = read_plugin_uses(s, "[server.plugins.");

    // A tcp server forwards the stream to one upstream; an http server routes by location.
    bool has_upstream = s.read("upstream", server.upstream);
    if (server.protocol == ServerProtocol::tcp) {
        if (!has_upstream) ctx_.fail(s.where(), who + ": a tcp server needs upstream = \"NAME\"");
        const UpstreamConfig *up = config_.find_upstream(server.upstream);
        if (!up) {
            ctx_.fail(s.where("upstream"),
                      who + ": unknown upstream " + in_quotes(server.upstream));
        }
        if (up->protocol == UpstreamProtocol::h2 || up->protocol == UpstreamProtocol::h2c) {
            ctx_.fail(s.where("upstream"),
                      who + ": upstream " + in_quotes(server.upstream) +
                          " speaks HTTP/2; a tcp server relays bytes (protocol = \"tcp\")");
        }
        if (s.has("location")) {
            ctx_.fail(s.where("location"), who + ": a tcp server takes no [[server.location]]");
        }
        return server;
    }
    if (has_upstream) {
        ctx_.fail(s.where("upstream"),
                  who + ": upstream is for tcp servers; http servers use [[server.location]]");
    }
    for (toml::table *table : table_array(s, "location", "[[server.location]]")) {
        server.locations.push_back(read_location(Section(ctx_, *table, "[[server.location]]")));
    }
    if (server.locations.empty()) {
        ctx_.fail(s.where(), who + ": an http server needs at least one [[server.location]]");
    }
    return server;
}

void Loader::read_listen(const Section &s, ServerConfig &server) const {
    if (!s.read_strings("listen", server.listen_text)) s.fail_missing("listen");
    const toml::array *array = s.get("listen")->as_array();
    for (size_t i = 0; i < server.listen_text.size(); ++i) {
        Result<SocketAddress> address = SocketAddress::parse(server.listen_text[i]);
        if (!address) {
            // In an array, point at the element at fault rather than at `listen`.
            ctx_.fail(array ? (*array)[i].source() : s.where("listen"),
                      s.label() + " listen: " + address.error());
        }
        server.listen.push_back(*address);
    }
}

// ---- [[server.location]] --------------------------------------------------------------------

LocationConfig Loader::read_location(const Section &s) const {
    s.allow_only({"path", "match", "upstream", "strip_prefix", "return", "plugins"});
    LocationConfig location;
    location.pos = s.pos();
    location.path = s.require("path");
    const std::string who = "location " + in_quotes(location.path);

    std::string match;
    if (s.read_choice("match", match, {"prefix", "exact", "regex"})) {
        location.match = match == "exact"   ? MatchType::exact
                         : match == "regex" ? MatchType::regex
                                            : MatchType::prefix;
    }
    if (location.match == MatchType::regex) {
        check_regex(s, who, location.path);
    } else if (location.path.empty() || location.path[0] != '/') {
        ctx_.fail(s.where("path"), who + ": path must start with \"/\" (or set match = \"regex\")");
    }

    bool has_upstream = s.read("upstream", location.upstream);
    s.read("strip_prefix", location.strip_prefix);
    if (s.has("return")) location.return_action = read_return(s.sub("return"));
    if (has_upstream && location.return_action) {
        ctx_.fail(s.where("return"), who + ": has both upstream and return; keep one");
    }
    if (!has_upstream && !location.return_action) {
        ctx_.fail(s.where(), who + ": needs upstream = \"NAME\" or return = { ... }");
    }
    if (has_upstream && !config_.find_upstream(location.upstream)) {
        ctx_.fail(s.where("upstream"), who + ": unknown upstream " + in_quotes(location.upstream));
    }
    if (has_upstream &&
        config_.find_upstream(location.upstream)->protocol == UpstreamProtocol::tcp) {
        ctx_.fail(s.where("upstream"), who + ": upstream " + in_quotes(location.upstream) +
                                           " has protocol = \"tcp\": it serves tcp servers only");
    }
    location.plugins = read_plugin_uses(s, "[server.location.plugins.");
    return location;
}

ReturnAction Loader::read_return(const Section &s) const {
    s.allow_only({"status", "body", "headers"});
    ReturnAction action;
    s.read("status", action.status, 100, 599);
    s.read("body", action.body);
    if (!s.has("headers")) return action;
    Section headers = s.sub("headers");
    for (auto &&[key, value] : headers.table()) {
        std::string name(key.str());
        if (!is_header_name(name)) headers.fail(name, "not a valid header name");
        if (!value.is_string()) headers.fail(name, "expected a string");
        std::string text = **value.as_string();
        if (text.find_first_of("\r\n", 0, 3) != std::string::npos) {
            headers.fail(name, "header values may not contain CR, LF or NUL");
        }
        action.headers.push_back(HeaderPair{std::move(name), std::move(text)});
    }
    return action;
}

// Regex locations are compiled by the router; compiling once here turns a typo into a config
// error with a line number instead of a failure at startup.
void Loader::check_regex(const Section &s, const std::string &who,
                         const std::string &pattern) const {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0,
                                   &code, &offset, nullptr);
    if (re) {
        pcre2_code_free(re);
        return;
    }
    PCRE2_UCHAR text[256] = {};
    pcre2_get_error_message(code, text, sizeof text);
    ctx_.fail(s.where("path"), who + ": bad regex: " + reinterpret_cast<const char *>(text) +
                                   " at offset " + std::to_string(offset));
}

// [server.plugins.NAME] and [server.location.plugins.NAME]. The tables are the plugins' own:
// only `enabled` is read here; each plugin validates the rest when it is loaded.
std::vector<PluginUse> Loader::read_plugin_uses(const Section &owner,
                                                const std::string &header_base) const {
    std::vector<PluginUse> uses;
    toml::node *node = owner.get("plugins");
    if (!node) return uses;
    if (!node->is_table()) {
        owner.fail("plugins", "expected plugin tables, e.g. " + header_base + "stats]");
    }
    Section plugins(ctx_, *node->as_table(), owner.label(), "plugins.");
    for (auto &&[key, value] : plugins.table()) {
        std::string name(key.str());
        if (!value.is_table()) plugins.fail(name, "expected a table: " + header_base + name + "]");
        if (!find_plugin(name)) {
            ctx_.fail(plugins.where(name), "plugin " + in_quotes(name) +
                                               " is used here but not listed under [[plugin]]");
        }
        toml::table &table = *value.as_table();
        PluginUse use;
        use.name = name;
        use.pos = plugins.pos(name);
        use.table = &table;
        Section(ctx_, table, header_base + name + "]").read("enabled", use.enabled);
        // `enabled` is the host's switch, not a plugin setting: drop it so plugins that reject
        // unknown keys need not know about it.
        table.erase("enabled");
        uses.push_back(std::move(use));
    }
    // TOML tables are unordered (toml++ iterates by name); keep [[plugin]] order, the run order.
    auto rank = [this](const PluginUse &use) {
        return find_plugin(use.name) - &config_.plugins[0];
    };
    std::sort(uses.begin(), uses.end(),
              [&](const PluginUse &a, const PluginUse &b) { return rank(a) < rank(b); });
    return uses;
}

std::string config_dir(const std::string &file) {
    std::error_code ec;
    std::filesystem::path base = file.empty() ? std::filesystem::current_path(ec)
                                              : std::filesystem::absolute(file, ec).parent_path();
    return base.lexically_normal().string();
}

}  // namespace

Result<std::shared_ptr<const Config>> load_config_from_string(const std::string &text,
                                                              const std::string &file) {
    const std::string name = file.empty() ? "<config>" : file;
    try {
        FileContext ctx{name, config_dir(file)};
        auto config = std::make_shared<Config>();
        config->file = file;
        config->dir = ctx.dir;
        // Parsed straight into shared storage: PluginUse::table points into this tree.
        try {
            config->document = std::make_shared<toml::table>(toml::parse(text, std::string(name)));
        } catch (const toml::parse_error &e) {
            return make_error(ctx.pos(e.source()).to_string() + ": " +
                              std::string(e.description()));
        }
        Loader(ctx, *config->document, *config).load();
        return std::shared_ptr<const Config>(std::move(config));
    } catch (const ConfigError &e) {
        return make_error(e.message);
    } catch (const std::exception &e) {
        return make_error(name + ": " + e.what());
    }
}

Result<std::shared_ptr<const Config>> load_config(const std::string &file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(file + ": cannot open: " + std::strerror(errno));
    std::string text;
    int err = 0;
    try {
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n == 0) break;
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                err = errno;
                break;
            }
            text.append(buf, static_cast<size_t>(n));
        }
    } catch (const std::exception &e) {
        ::close(fd);
        return make_error(file + ": cannot read: " + e.what());
    }
    ::close(fd);
    if (err) return make_error(file + ": cannot read: " + std::strerror(err));
    return load_config_from_string(text, file);
}

}  // namespace torii
