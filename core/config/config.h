// The loaded configuration: plain, immutable data built once by config_loader.cc from the
// TOML file (SPEC section 2). Runtime code holds it through shared_ptr<const Config>; a reload
// builds a new one and each request keeps the snapshot it started with.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/socket_address.h"
#include "core/base/units.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, built by modules/tls

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace torii {

class LogFormat;  // core/server/log_format.h

// Where a key stood in the config file, for errors reported after load (plugins, reload).
struct SourcePos {
    std::string file;
    uint32_t line = 0;
    uint32_t column = 0;
    // "conf/torii.toml:14:1"
    std::string to_string() const;
};

struct MainConfig {
    int workers = 1;                   // "auto" resolves to the number of cores at load
    std::string pid_file;              // absolute, or empty for none
    std::string error_log = "stderr";  // absolute path or "stderr"
    std::string access_log = "off";    // absolute path or "off"
    std::string log_level = "info";    // debug | info | notice | warn | error
    // Compiled at load from "combined", "json" or a template; null (a Config not made by the
    // loader) means the default format.
    std::shared_ptr<const LogFormat> access_log_format;
    Millis shutdown_timeout = 30'000;
    Millis tunnel_idle_timeout = 3'600'000;  // WebSocket (and TCP) tunnels without traffic
    // Old generations kept draining after reloads; one more makes the oldest close now.
    int max_draining_generations = 4;
    // Client connections one worker holds at most (nginx's worker_connections); a worker
    // also keeps about as many fds for upstream connections (core/net/fd_limit.h).
    int worker_connections = 1024;
    std::string plugin_dir;  // absolute
    // false: one process serves, with no master and no reload (nginx's master_process
    // off), for profiling and debugging.
    bool master_process = true;
};

// One `[[plugin]]` entry: a .so to load, in run order.
struct PluginDecl {
    std::string name;
    std::string path;  // absolute: `path` if given, else <plugin_dir>/<name>.so
    SourcePos pos;
};

// A plugin switched on (or off) for a server or location, with its own TOML table.
struct PluginUse {
    std::string name;
    bool enabled = true;
    const toml::table *table = nullptr;  // owned by Config::document
    SourcePos pos;
};

struct AdminConfig {
    SocketAddress listen;
    std::string listen_text;  // as written, for messages
    // The host of `listen` when it is written as a DNS name ("admin.internal"), lowercase;
    // empty for an IP literal or "*". The admin listener accepts it as a Host.
    std::string name;
    // Bearer token every admin endpoint requires when set (401 without it).
    std::string token;
    // Where live target changes (POST/PATCH/DELETE /upstreams/...) are kept across reload
    // and restart; absolute, or empty for none.
    std::string state_file;
    SourcePos pos;  // of `listen`
};

enum class UpstreamProtocol { http1, h2, h2c, tcp };

struct TargetConfig {
    std::string address;  // as written: "127.0.0.1:9001"
    SocketAddress sockaddr;
    int weight = 1;
    uint64_t id = 0;  // stable across reloads and reorderings (core/config/target_id.h)
};

struct UpstreamTlsConfig {
    bool enabled = false;
    std::string sni;  // sent and verified; default: the target's host
    bool verify = true;
    std::string ca;    // absolute; empty: the system's CA store
    std::string cert;  // absolute: a client certificate for targets that ask for one
    std::string key;
    std::shared_ptr<ssl_ctx_st> ctx;  // built at load (modules/tls) when enabled
};

struct DiscoveryConfig {
    std::string type;  // "" (none) | "dns" | "file" | "etcd"
    // dns: the name to resolve (A and AAAA; SRV records when it starts with '_'), the port
    // given to A/AAAA addresses, and the server asked ("host:port"; empty: /etc/resolv.conf).
    std::string name;
    int port = 0;
    std::string resolver;
    // dns: re-resolved this often, but sooner when the records' TTL runs out first;
    // file: how often the file's modification time is checked.
    Millis interval = 5'000;
    std::string path;  // file: absolute
    // etcd: the v3 JSON gateway's base URLs ("http://127.0.0.1:2379") and the key prefix
    // watched; each key under it is one target, its value {"address": ..., "weight": ...}.
    std::vector<std::string> endpoints;
    std::string prefix;
    SourcePos pos;
};

struct HealthConfig {
    bool enabled = false;       // true when [upstream.X.health] is present
    std::string type = "http";  // http | tcp | grpc
    std::string path = "/health";
    // grpc: the service asked about in grpc.health.v1.Health/Check ("": the whole server).
    std::string service;
    // http: the Host sent (default: the target's address), the statuses that count as
    // healthy (default: any 2xx or 3xx) and a substring the body must contain (default: none).
    std::string host;
    std::vector<int> statuses;
    std::string body_contains;
    Millis interval = 1'000;
    Millis timeout = 500;
    int healthy = 2;
    int unhealthy = 2;
    int max_fails = 1;
    Millis fail_timeout = 10'000;
};

// The PROXY protocol header sent to targets on every new connection.
enum class ProxyProtocolSend : uint8_t { none, v1, v2 };

struct UpstreamConfig {
    std::string name;
    std::string balancer = "round_robin";
    std::string hash_key;
    UpstreamProtocol protocol = UpstreamProtocol::http1;
    std::vector<TargetConfig> targets;
    int keepalive = 64;
    Millis connect_timeout = 2'000;
    Millis read_timeout = 60'000;
    Millis send_timeout = 60'000;  // extension: nginx proxy_send_timeout
    // HTTP/2 sessions: a PING once nothing came from the target for this long, and the
    // session closed if its ACK takes longer than http2_ping_timeout (0: no PING).
    Millis http2_ping_interval = 30'000;
    Millis http2_ping_timeout = 10'000;
    int retries = 1;
    // A target that was added or came back up gets its full weight only after this long,
    // ramping up linearly (nginx's slow_start); 0: at once.
    Millis slow_start = 0;
    ProxyProtocolSend proxy_protocol = ProxyProtocolSend::none;
    UpstreamTlsConfig tls;
    DiscoveryConfig discovery;
    HealthConfig health;
    const toml::table *table = nullptr;  // the whole [upstream.X] table, for its balancer
    SourcePos pos;
};

struct HeaderPair {
    std::string name;
    std::string value;
};

// `return = { status = 200, body = "...", headers = { ... } }`: answer without an upstream.
struct ReturnAction {
    int status = 200;
    std::string body;
    std::vector<HeaderPair> headers;
};

enum class MatchType { prefix, exact, regex };

struct LocationConfig {
    std::string path;
    MatchType match = MatchType::prefix;
    std::string upstream;  // name, checked to exist at load; empty with `return`
    bool strip_prefix = false;
    std::optional<ReturnAction> return_action;
    std::vector<PluginUse> plugins;  // as written in this location
    SourcePos pos;
};

struct ServerTlsConfig {
    std::string cert;  // absolute
    std::string key;   // absolute
    std::vector<std::string> alpn = {"h2", "http/1.1"};
    std::string client_ca;            // absolute; mTLS when set
    std::string verify_client;        // "on" | "optional" (with client_ca)
    std::shared_ptr<ssl_ctx_st> ctx;  // built at load (modules/tls)
};

enum class ServerProtocol { http, tcp };

struct ServerConfig {
    std::vector<SocketAddress> listen;
    std::vector<std::string> listen_text;  // as written, for messages
    ServerProtocol protocol = ServerProtocol::http;
    std::vector<std::string> server_name = {"*"};
    std::optional<ServerTlsConfig> tls;
    uint64_t client_max_body_size = 1024 * 1024;  // nginx's default
    uint64_t client_max_header_size = 32 * 1024;  // extension: whole request head limit (431)
    Millis client_header_timeout = 60'000;
    Millis client_body_timeout = 60'000;  // extension: gap between body reads
    Millis send_timeout = 60'000;         // extension: gap between writes to the client
    Millis keepalive_timeout = 75'000;
    int keepalive_requests = 1000;        // extension: requests per client connection
    bool underscores_in_headers = false;  // false: request header names with '_' are dropped
    Millis tunnel_idle_timeout = 0;       // 0: [main]'s
    int http2_max_concurrent_streams = 128;
    // Every connection starts with a PROXY protocol header (v1 or v2) from an L4 balancer;
    // a listener property, the same for every server of an address.
    bool proxy_protocol = false;
    std::string upstream;            // tcp servers only
    std::vector<PluginUse> plugins;  // server-wide
    std::vector<LocationConfig> locations;
    SourcePos pos;
};

struct Config {
    std::string file;                       // as given on the command line
    std::string dir;                        // absolute folder of the file: base for relative paths
    std::shared_ptr<toml::table> document;  // keeps PluginUse::table alive
    MainConfig main;
    std::vector<PluginDecl> plugins;
    std::optional<AdminConfig> admin;
    std::map<std::string, UpstreamConfig> upstreams;
    std::vector<ServerConfig> servers;

    const UpstreamConfig *find_upstream(const std::string &name) const {
        auto it = upstreams.find(name);
        return it == upstreams.end() ? nullptr : &it->second;
    }
};

// Parses and validates FILE. Errors read "FILE:LINE:COL: what", naming the key.
Result<std::shared_ptr<const Config>> load_config(const std::string &file);
// The same from text in memory; `file` is used for messages and relative paths.
Result<std::shared_ptr<const Config>> load_config_from_string(const std::string &text,
                                                              const std::string &file);

}  // namespace torii
