#include "core/config/config.h"
#include "core/server/log_format.h"
#include "t/unit/support/test_certs.h"
#include "t/unit/support/temp_dir.h"

#include <doctest/doctest.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace torii {

namespace {

using test::TempDir;

const char *const kFile = "conf/torii.toml";

// SPEC section 2's example, line for line (line 1 is [main]).
const char *const kSpecExample = R"([main]
workers = 2                     # or "auto" (one per core)
pid_file = "torii.pid"
error_log = "logs/error.log"    # or "stderr"
access_log = "logs/access.log"  # or "off"
log_level = "info"
shutdown_timeout = "30s"        # how long old workers may drain on reload/quit
plugin_dir = "../build/plugins"

[[plugin]]                      # every plugin the config uses is listed, in run order
name = "ratelimit"              # loads <plugin_dir>/ratelimit.so unless `path` is set
# path = "/opt/torii/plugins/ratelimit.so"

[[plugin]]
name = "stats"

[[plugin]]
name = "round_robin"

[admin]
listen = "127.0.0.1:9901"       # GET /status, /metrics, /upstreams; POST/DELETE targets

[upstream.api]
balancer = "round_robin"        # random | round_robin | weighted | chash | least_conn | ... (plugins)
hash_key = "$remote_addr"       # for chash: any variable (section 4)
protocol = "http1"              # http1 | h2 | h2c | tcp
targets = [ { address = "127.0.0.1:9001", weight = 1 },
            { address = "127.0.0.1:9002", weight = 3 } ]
keepalive = 64                  # idle pooled connections kept per target
connect_timeout = "2s"
read_timeout = "60s"
retries = 1                     # next target on connect failure (and idempotent requests)
tls = { enabled = false, sni = "api.internal", verify = true, ca = "ca.pem" }
discovery = { type = "dns", name = "api.internal", port = 9001, interval = "5s" }
# discovery = { type = "file", path = "api.targets" }   # one "host:port [weight]" a line

[upstream.api.health]           # active probes plus passive marking
type = "http"                   # http | tcp
path = "/health"
interval = "1s"
timeout = "500ms"
healthy = 2                     # successes to mark a target up
unhealthy = 2                   # failures to mark it down
max_fails = 3                   # passive: failed attempts within fail_timeout mark it down
fail_timeout = "10s"

[[server]]
listen = ["0.0.0.0:8080"]       # http: HTTP/1.1, h2c, WebSocket, gRPC on one port
protocol = "http"               # http | tcp
server_name = ["*"]
tls = { cert = "cert.pem", key = "key.pem", alpn = ["h2", "http/1.1"] }   # optional
client_max_body_size = "8m"
client_header_timeout = "10s"
keepalive_timeout = "75s"

[server.plugins.stats]          # server-wide plugins apply to every location below

[[server.location]]
path = "/api/"                  # prefix (longest wins); match = "exact" | "regex" changes that
upstream = "api"
strip_prefix = false

[server.location.plugins.ratelimit]
rate = 100                      # tokens per second
burst = 50
key = "$remote_addr"

[server.location.plugins.stats]
enabled = false                 # switch an inherited plugin off for this location

[[server.location]]
path = "/"
return = { status = 200, body = "torii is running\n" }   # answer without an upstream
)";

// The smallest config that loads: one http server answering from one location.
const char *const kMinimal = R"([[server]]
listen = "127.0.0.1:8080"

[[server.location]]
path = "/"
return = { status = 204 }
)";

// The SPEC example with its certificate and key pointing at real files: the loader opens
// and checks them.
std::string spec_example() {
    std::string text = kSpecExample;
    test::TestCert c = test::make_test_cert();
    std::string from = "cert = \"cert.pem\", key = \"key.pem\"";
    size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), "cert = \"" + c.cert + "\", key = \"" + c.key + "\"");
    return text;
}

std::shared_ptr<const Config> load_ok(const std::string &text,
                                      const std::string &file = "/etc/torii/torii.toml") {
    Result<std::shared_ptr<const Config>> result = load_config_from_string(text, file);
    INFO((result.ok() ? std::string() : result.error()));
    REQUIRE(result.ok());
    return *result;
}

// The error text, or "(loaded)" when the config was accepted.
std::string load_error(const std::string &text, const std::string &file = kFile) {
    Result<std::shared_ptr<const Config>> result = load_config_from_string(text, file);
    return result.ok() ? "(loaded)" : result.error();
}

// An upstream and a server routing to it, with `extra` inserted as the location's last keys
// (line 9 onwards).
std::string with_location(const std::string &extra) {
    return "[upstream.api]\n"                  // 1
           "targets = [\"127.0.0.1:9001\"]\n"  // 2
           "\n"                                // 3
           "[[server]]\n"                      // 4
           "listen = \"127.0.0.1:8080\"\n"     // 5
           "\n"                                // 6
           "[[server.location]]\n"             // 7
           "path = \"/api/\"\n" +              // 8
           extra;
}

}  // namespace

TEST_CASE("the SPEC example loads with every value") {
    std::shared_ptr<const Config> config = load_ok(spec_example());
    CHECK(config->file == "/etc/torii/torii.toml");
    CHECK(config->dir == "/etc/torii");
    REQUIRE(config->document);

    const MainConfig &main = config->main;
    CHECK(main.workers == 2);
    CHECK(main.pid_file == "/etc/torii/torii.pid");
    CHECK(main.error_log == "/etc/torii/logs/error.log");
    CHECK(main.access_log == "/etc/torii/logs/access.log");
    CHECK(main.log_level == "info");
    CHECK(main.shutdown_timeout == 30'000);
    CHECK(main.plugin_dir == "/etc/build/plugins");

    REQUIRE(config->plugins.size() == 3);
    CHECK(config->plugins[0].name == "ratelimit");
    CHECK(config->plugins[0].path == "/etc/build/plugins/ratelimit.so");
    CHECK(config->plugins[0].pos.to_string() == "/etc/torii/torii.toml:10:1");
    CHECK(config->plugins[1].name == "stats");
    CHECK(config->plugins[2].name == "round_robin");

    REQUIRE(config->admin);
    CHECK(config->admin->listen.to_string() == "127.0.0.1:9901");

    REQUIRE(config->upstreams.size() == 1);
    const UpstreamConfig *api = config->find_upstream("api");
    REQUIRE(api);
    CHECK(api->name == "api");
    CHECK(api->pos.line == 23);
    CHECK(api->balancer == "round_robin");
    CHECK(api->hash_key == "$remote_addr");
    CHECK(api->protocol == UpstreamProtocol::http1);
    REQUIRE(api->targets.size() == 2);
    CHECK(api->targets[0].address == "127.0.0.1:9001");
    CHECK(api->targets[0].sockaddr.port() == 9001);
    CHECK(api->targets[0].weight == 1);
    CHECK(api->targets[1].sockaddr.to_string() == "127.0.0.1:9002");
    CHECK(api->targets[1].weight == 3);
    CHECK(api->keepalive == 64);
    CHECK(api->connect_timeout == 2'000);
    CHECK(api->read_timeout == 60'000);
    CHECK(api->send_timeout == 60'000);
    CHECK(api->retries == 1);
    CHECK_FALSE(api->tls.enabled);
    CHECK(api->tls.sni == "api.internal");
    CHECK(api->tls.verify);
    CHECK(api->tls.ca == "/etc/torii/ca.pem");
    CHECK(api->discovery.type == "dns");
    CHECK(api->discovery.name == "api.internal");
    CHECK(api->discovery.port == 9001);
    CHECK(api->discovery.interval == 5'000);
    CHECK(api->health.enabled);
    CHECK(api->health.type == "http");
    CHECK(api->health.path == "/health");
    CHECK(api->health.interval == 1'000);
    CHECK(api->health.timeout == 500);
    CHECK(api->health.healthy == 2);
    CHECK(api->health.unhealthy == 2);
    CHECK(api->health.max_fails == 3);
    CHECK(api->health.fail_timeout == 10'000);

    REQUIRE(config->servers.size() == 1);
    const ServerConfig &server = config->servers[0];
    CHECK(server.pos.line == 47);
    REQUIRE(server.listen.size() == 1);
    CHECK(server.listen[0].to_string() == "0.0.0.0:8080");
    CHECK(server.listen_text == std::vector<std::string>{"0.0.0.0:8080"});
    CHECK(server.protocol == ServerProtocol::http);
    CHECK(server.server_name == std::vector<std::string>{"*"});
    REQUIRE(server.tls);
    CHECK(server.tls->cert == test::make_test_cert().cert);
    CHECK(server.tls->key == test::make_test_cert().key);
    CHECK(server.tls->ctx);  // built and checked at load
    CHECK(server.tls->alpn == std::vector<std::string>{"h2", "http/1.1"});
    CHECK(server.client_max_body_size == 8 * 1024 * 1024);
    CHECK(server.client_header_timeout == 10'000);
    CHECK(server.keepalive_timeout == 75'000);
    REQUIRE(server.plugins.size() == 1);
    CHECK(server.plugins[0].name == "stats");
    CHECK(server.plugins[0].enabled);
    CHECK(server.plugins[0].pos.line == 56);
    REQUIRE(server.plugins[0].table);
    CHECK(server.plugins[0].table->empty());

    REQUIRE(server.locations.size() == 2);
    const LocationConfig &api_location = server.locations[0];
    CHECK(api_location.path == "/api/");
    CHECK(api_location.match == MatchType::prefix);
    CHECK(api_location.upstream == "api");
    CHECK_FALSE(api_location.strip_prefix);
    CHECK_FALSE(api_location.return_action);
    CHECK(api_location.pos.line == 58);
    // Listed in [[plugin]] order (ratelimit before stats), whatever the table order.
    REQUIRE(api_location.plugins.size() == 2);
    const PluginUse &ratelimit = api_location.plugins[0];
    CHECK(ratelimit.name == "ratelimit");
    CHECK(ratelimit.enabled);
    CHECK(ratelimit.pos.to_string() == "/etc/torii/torii.toml:63:1");
    REQUIRE(ratelimit.table);
    CHECK((*ratelimit.table)["rate"].value<int64_t>() == 100);
    CHECK((*ratelimit.table)["burst"].value<int64_t>() == 50);
    CHECK((*ratelimit.table)["key"].value<std::string>() == "$remote_addr");
    const PluginUse &stats = api_location.plugins[1];
    CHECK(stats.name == "stats");
    CHECK_FALSE(stats.enabled);
    CHECK(stats.pos.line == 68);
    // `enabled` is the host's switch; the plugin's own table no longer carries it.
    REQUIRE(stats.table);
    CHECK_FALSE(stats.table->contains("enabled"));

    const LocationConfig &root = server.locations[1];
    CHECK(root.path == "/");
    CHECK(root.upstream.empty());
    REQUIRE(root.return_action);
    CHECK(root.return_action->status == 200);
    CHECK(root.return_action->body == "torii is running\n");
    CHECK(root.plugins.empty());
}

TEST_CASE("plugin tables live as long as the config") {
    const toml::table *table = nullptr;
    std::shared_ptr<const Config> kept;
    {
        std::shared_ptr<const Config> config = load_ok(spec_example());
        table = config->servers[0].locations[0].plugins[0].table;
        kept = config;
    }
    CHECK(table == kept->servers[0].locations[0].plugins[0].table);
    CHECK((*table)["rate"].value<int64_t>() == 100);
    Config copy = *kept;  // a copy shares the document instead of duplicating it
    CHECK(copy.document == kept->document);
}

TEST_CASE("defaults are the struct initialisers") {
    std::shared_ptr<const Config> config = load_ok(kMinimal);
    CHECK(config->main.workers == 1);
    CHECK(config->main.pid_file.empty());
    CHECK(config->main.error_log == "stderr");
    CHECK(config->main.access_log == "off");
    CHECK(config->main.log_level == "info");
    CHECK(config->main.shutdown_timeout == 30'000);
    CHECK(config->main.worker_connections == 1024);
    CHECK(config->main.plugin_dir == "/etc/build/plugins");
    CHECK(config->plugins.empty());
    CHECK_FALSE(config->admin);
    CHECK(config->upstreams.empty());
    REQUIRE(config->servers.size() == 1);
    const ServerConfig &server = config->servers[0];
    CHECK(server.protocol == ServerProtocol::http);
    CHECK(server.server_name == std::vector<std::string>{"*"});
    CHECK_FALSE(server.tls);
    CHECK(server.client_max_body_size == 1024 * 1024);
    CHECK(server.client_max_header_size == 32 * 1024);
    CHECK(server.client_header_timeout == 60'000);
    CHECK(server.client_body_timeout == 60'000);
    CHECK(server.send_timeout == 60'000);
    CHECK(server.keepalive_timeout == 75'000);
    CHECK(server.keepalive_requests == 1000);
    CHECK(server.plugins.empty());
    REQUIRE(server.locations.size() == 1);
    CHECK(server.locations[0].match == MatchType::prefix);
    CHECK(server.locations[0].return_action->status == 204);
    CHECK(server.locations[0].return_action->body.empty());

    std::shared_ptr<const Config> up = load_ok(with_location("upstream = \"api\"\n"));
    const UpstreamConfig &api = up->upstreams.at("api");
    CHECK(api.balancer == "round_robin");
    CHECK(api.protocol == UpstreamProtocol::http1);
    CHECK(api.keepalive == 64);
    CHECK(api.connect_timeout == 2'000);
    CHECK(api.retries == 1);
    CHECK_FALSE(api.tls.enabled);
    CHECK(api.tls.verify);
    CHECK(api.discovery.type.empty());
    CHECK_FALSE(api.health.enabled);
    REQUIRE(api.targets.size() == 1);
    CHECK(api.targets[0].weight == 1);
}

TEST_CASE("every section and extension key is read") {
    std::shared_ptr<const Config> config = load_ok(R"([main]
workers = "auto"
error_log = "stderr"
access_log = "off"
log_level = "debug"
pid_file = "/run/torii.pid"
plugin_dir = "/opt/torii/plugins"

[[plugin]]
name = "my_balancer"
path = "plugins/my_balancer.so"

[[plugin]]
name = "auth"

[upstream.files]
balancer = "my_balancer"
protocol = "h2c"
send_timeout = "5s"
discovery = { type = "file", path = "files.targets" }

[upstream.db]
balancer = "chash"
hash_key = "$remote_addr"
protocol = "tcp"
targets = [ "127.0.0.1:5432", { address = "[::1]:5432", weight = 2 } ]

[upstream.db.health]
type = "tcp"
enabled = false

[[server]]
listen = "127.0.0.1:5433"
protocol = "tcp"
upstream = "db"

[server.plugins.auth]
allow = ["127.0.0.1/32"]

[[server]]
listen = ["127.0.0.1:8080", "[::1]:8080"]
server_name = "example.com"
client_max_body_size = 1024
client_max_header_size = "16k"
client_body_timeout = "15s"
send_timeout = "20s"
keepalive_requests = 100

[[server.location]]
path = "^/files/[0-9]+$"
match = "regex"
upstream = "files"

[[server.location]]
path = "/health"
match = "exact"
return = { status = 503, body = "down", headers = { Retry-After = "5", X-Why = "maintenance" } }

[[server.location]]
path = "/strip/"
upstream = "files"
strip_prefix = true

[server.location.plugins.auth]
enabled = true
type = "key"
)");
    CHECK(config->main.workers == std::max(1u, std::thread::hardware_concurrency()));
    CHECK(config->main.error_log == "stderr");
    CHECK(config->main.access_log == "off");
    CHECK(config->main.log_level == "debug");
    CHECK(config->main.pid_file == "/run/torii.pid");
    CHECK(config->main.plugin_dir == "/opt/torii/plugins");
    CHECK(config->plugins[0].path == "/etc/torii/plugins/my_balancer.so");
    CHECK(config->plugins[1].path == "/opt/torii/plugins/auth.so");

    const UpstreamConfig &files = config->upstreams.at("files");
    CHECK(files.balancer == "my_balancer");
    CHECK(files.protocol == UpstreamProtocol::h2c);
    CHECK(files.send_timeout == 5'000);
    CHECK(files.targets.empty());
    CHECK(files.discovery.type == "file");
    CHECK(files.discovery.path == "/etc/torii/files.targets");

    const UpstreamConfig &db = config->upstreams.at("db");
    CHECK(db.protocol == UpstreamProtocol::tcp);
    REQUIRE(db.targets.size() == 2);
    CHECK(db.targets[0].address == "127.0.0.1:5432");
    CHECK(db.targets[0].weight == 1);
    CHECK(db.targets[1].sockaddr.to_string() == "[::1]:5432");
    CHECK(db.targets[1].weight == 2);
    CHECK_FALSE(db.health.enabled);
    CHECK(db.health.type == "tcp");

    REQUIRE(config->servers.size() == 2);
    const ServerConfig &tcp = config->servers[0];
    CHECK(tcp.protocol == ServerProtocol::tcp);
    CHECK(tcp.upstream == "db");
    CHECK(tcp.locations.empty());
    REQUIRE(tcp.plugins.size() == 1);
    CHECK((*tcp.plugins[0].table)["allow"].is_array());

    const ServerConfig &http = config->servers[1];
    REQUIRE(http.listen.size() == 2);
    CHECK(http.listen[1].to_string() == "[::1]:8080");
    CHECK(http.server_name == std::vector<std::string>{"example.com"});
    CHECK(http.client_max_body_size == 1024);
    CHECK(http.client_max_header_size == 16 * 1024);
    CHECK(http.client_body_timeout == 15'000);
    CHECK(http.send_timeout == 20'000);
    CHECK(http.keepalive_requests == 100);
    REQUIRE(http.locations.size() == 3);
    CHECK(http.locations[0].match == MatchType::regex);
    CHECK(http.locations[0].path == "^/files/[0-9]+$");
    CHECK(http.locations[1].match == MatchType::exact);
    const ReturnAction &down = *http.locations[1].return_action;
    CHECK(down.status == 503);
    CHECK(down.body == "down");
    REQUIRE(down.headers.size() == 2);
    CHECK(down.headers[0].name == "Retry-After");
    CHECK(down.headers[0].value == "5");
    CHECK(down.headers[1].name == "X-Why");
    CHECK(http.locations[2].strip_prefix);
    REQUIRE(http.locations[2].plugins.size() == 1);
    CHECK(http.locations[2].plugins[0].enabled);
    CHECK((*http.locations[2].plugins[0].table)["type"].value<std::string>() == "key");
}

TEST_CASE("relative paths are taken from the config file's folder") {
    TempDir tmp;
    std::string file = tmp.write("conf/torii.toml", R"([main]
pid_file = "run/torii.pid"
error_log = "../logs/error.log"
access_log = "/var/log/torii/access.log"

[[plugin]]
name = "stats"

[[plugin]]
name = "local"
path = "../plugins/local.so"
)");
    Result<std::shared_ptr<const Config>> result = load_config(file);
    INFO((result.ok() ? std::string() : result.error()));
    REQUIRE(result.ok());
    const Config &config = **result;
    std::string root = tmp.path;
    CHECK(config.file == file);
    CHECK(config.dir == root + "/conf");
    CHECK(config.main.pid_file == root + "/conf/run/torii.pid");
    CHECK(config.main.error_log == root + "/logs/error.log");
    CHECK(config.main.access_log == "/var/log/torii/access.log");
    CHECK(config.main.plugin_dir == root + "/build/plugins");
    CHECK(config.plugins[0].path == root + "/build/plugins/stats.so");
    CHECK(config.plugins[1].path == root + "/plugins/local.so");
}

TEST_CASE("a config given by relative name or as text without a name uses the cwd") {
    std::string cwd = std::filesystem::current_path().lexically_normal().string();
    CHECK(load_ok(kMinimal, "torii.toml")->dir == cwd);
    CHECK(load_ok(kMinimal, "")->dir == cwd);
    CHECK(load_ok(kMinimal, "conf/torii.toml")->dir == cwd + "/conf");
}

TEST_CASE("load_config reports a missing file") {
    Result<std::shared_ptr<const Config>> result = load_config("/nonexistent/torii.toml");
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == "/nonexistent/torii.toml: cannot open: No such file or directory");
}

TEST_CASE("errors name file, line, column and reason") {
    SUBCASE("TOML syntax error") {
        CHECK(load_error("[main]\nworkers = \n") ==
              "conf/torii.toml:2:11: Error while parsing key-value pair: expected value, saw "
              "'\\n'");
        CHECK(load_error("[main]\nworkers = 1\nworkers = 2\n") ==
              "conf/torii.toml:3:11: Error while parsing key-value pair: cannot redefine "
              "existing integer 'workers'");
    }
    SUBCASE("unknown key on line 3") {
        CHECK(load_error("[[server]]\nlisten = \"127.0.0.1:8080\"\nlistn = \"x\"\n") ==
              "conf/torii.toml:3:1: unknown key \"listn\" in [[server]]");
    }
    SUBCASE("unknown keys in nested and inline tables") {
        CHECK(
            load_error("[upstream.api]\ntargets = [{ address = \"127.0.0.1:1\", wieght = 2 }]\n") ==
            "conf/torii.toml:2:39: unknown key \"targets.wieght\" in [upstream.api]");
        CHECK(load_error("[upstream.api]\ntargets = [\"127.0.0.1:1\"]\n\n[upstream.api.health]\n"
                         "intervall = \"1s\"\n") ==
              "conf/torii.toml:5:1: unknown key \"intervall\" in [upstream.api.health]");
        CHECK(load_error(with_location("return = { status = 200, bdy = \"x\" }\n")) ==
              "conf/torii.toml:9:26: unknown key \"return.bdy\" in [[server.location]]");
    }
    SUBCASE("worker_connections out of range") {
        CHECK(load_error("[main]\nworker_connections = 0\n") ==
              "conf/torii.toml:2:1: [main] worker_connections: must be from 1 to 1048576, not 0");
        CHECK(load_error("[main]\nworker_connections = \"many\"\n") ==
              "conf/torii.toml:2:1: [main] worker_connections: expected an integer");
    }
    SUBCASE("unknown sections") {
        CHECK(load_error("[mian]\nworkers = 2\n") == "conf/torii.toml:1:1: unknown section [mian]");
        CHECK(load_error("workers = 2\n") ==
              "conf/torii.toml:1:1: unknown key \"workers\" at the top level");
        CHECK(load_error("[server]\nlisten = \"127.0.0.1:1\"\n") ==
              "conf/torii.toml:1:1: \"server\" must be written as [[server]] tables");
    }
    SUBCASE("unknown balancer, as in SPEC") {
        std::string text = "[main]\nworkers = 1\n\n";  // pushes the balancer down to line 14
        for (int i = 0; i < 9; ++i) {
            text += "# padding\n";
        }
        text += "[upstream.api]\nbalancer = \"rr2\"\ntargets = [\"127.0.0.1:9001\"]\n";
        CHECK(load_error(text) ==
              "conf/torii.toml:14:1: upstream \"api\": unknown balancer \"rr2\"");
    }
    SUBCASE("chash needs hash_key") {
        CHECK(load_error("[upstream.api]\ntargets = [\"127.0.0.1:1\"]\nbalancer = \"chash\"\n") ==
              "conf/torii.toml:3:1: upstream \"api\": balancer \"chash\" needs hash_key, e.g. "
              "hash_key = \"$remote_addr\"");
    }
    SUBCASE("an upstream needs targets or discovery") {
        CHECK(load_error("[upstream.api]\nkeepalive = 4\n") ==
              "conf/torii.toml:1:1: upstream \"api\": no targets (set targets or discovery)");
        CHECK(load_error("[upstream.api]\ntargets = []\n") ==
              "conf/torii.toml:2:1: upstream \"api\": no targets (set targets or discovery)");
    }
    SUBCASE("target address and weight") {
        CHECK(load_error("[upstream.api]\ntargets = [\"127.0.0.1:0\"]\n") ==
              "conf/torii.toml:2:12: [upstream.api] targets: invalid address \"127.0.0.1:0\": "
              "port must be 1..65535");
        CHECK(
            load_error("[upstream.api]\ntargets = [{ address = \"127.0.0.1:1\", weight = 0 }]\n") ==
            "conf/torii.toml:2:39: [upstream.api] targets.weight: must be from 1 to 1000000, "
            "not 0");
        CHECK(load_error("[upstream.api]\ntargets = [{ weight = 2 }]\n") ==
              "conf/torii.toml:2:12: missing key \"targets.address\" in [upstream.api]");
        CHECK(load_error("[upstream.api]\ntargets = [9001]\n") ==
              "conf/torii.toml:2:1: [upstream.api] targets: expected an array of \"host:port\" "
              "strings or { address, weight } tables");
    }
    SUBCASE("bad duration") {
        CHECK(
            load_error("[upstream.api]\ntargets = [\"127.0.0.1:1\"]\nconnect_timeout = \"2x\"\n") ==
            "conf/torii.toml:3:1: [upstream.api] connect_timeout: invalid duration \"2x\" "
            "(use 250ms, 2s, 1m, 1h)");
        CHECK(load_error("[main]\nshutdown_timeout = 30\n") ==
              "conf/torii.toml:2:1: [main] shutdown_timeout: expected a duration string such as "
              "\"250ms\" or \"2s\"");
    }
    SUBCASE("bad size") {
        CHECK(
            load_error("[[server]]\nlisten = \"127.0.0.1:1\"\nclient_max_body_size = \"8mb\"\n") ==
            "conf/torii.toml:3:1: [[server]] client_max_body_size: invalid size \"8mb\" (use "
            "512, 8k, 1m, 1g)");
    }
    SUBCASE("wrong types") {
        CHECK(load_error("[main]\nworkers = \"many\"\n") ==
              "conf/torii.toml:2:1: [main] workers: expected an integer or \"auto\"");
        CHECK(load_error("[main]\nworkers = 0\n") ==
              "conf/torii.toml:2:1: [main] workers: must be from 1 to 1024, not 0");
        CHECK(load_error("[upstream.api]\ntargets = [\"127.0.0.1:1\"]\nkeepalive = \"64\"\n") ==
              "conf/torii.toml:3:1: [upstream.api] keepalive: expected an integer");
        CHECK(load_error(with_location("upstream = \"api\"\nstrip_prefix = \"yes\"\n")) ==
              "conf/torii.toml:10:1: [[server.location]] strip_prefix: expected true or false");
        CHECK(load_error("[main]\nlog_level = \"verbose\"\n") ==
              "conf/torii.toml:2:1: [main] log_level: unknown value \"verbose\" (use debug, info, "
              "notice, warn, error)");
        CHECK(load_error("[upstream.api]\ntargets = [\"127.0.0.1:1\"]\ntls = true\n") ==
              "conf/torii.toml:3:1: [upstream.api] tls: expected a table, such as tls = { ... }");
    }
    SUBCASE("missing required keys point at the table") {
        CHECK(load_error("[main]\nworkers = 1\n\n[[plugin]]\npath = \"x.so\"\n") ==
              "conf/torii.toml:4:1: missing key \"name\" in [[plugin]]");
        CHECK(load_error("[[server]]\nprotocol = \"http\"\n") ==
              "conf/torii.toml:1:1: missing key \"listen\" in [[server]]");
        CHECK(load_error("[admin]\nlisten = 9901\n") ==
              "conf/torii.toml:2:1: [admin] listen: expected a string");
    }
    SUBCASE("duplicate plugin") {
        CHECK(load_error("[[plugin]]\nname = \"stats\"\n\n[[plugin]]\nname = \"stats\"\n") ==
              "conf/torii.toml:5:1: plugin \"stats\" is listed twice (first at "
              "conf/torii.toml:1:1)");
    }
    SUBCASE("unknown upstream in a location") {
        CHECK(load_error(with_location("upstream = \"apii\"\n")) ==
              "conf/torii.toml:9:1: location \"/api/\": unknown upstream \"apii\"");
    }
    SUBCASE("a location needs exactly one of upstream and return") {
        CHECK(load_error(with_location("strip_prefix = true\n")) ==
              "conf/torii.toml:7:1: location \"/api/\": needs upstream = \"NAME\" or return = "
              "{ ... }");
        CHECK(load_error(with_location("upstream = \"api\"\nreturn = { status = 200 }\n")) ==
              "conf/torii.toml:10:1: location \"/api/\": has both upstream and return; keep one");
    }
    SUBCASE("return status range") {
        CHECK(load_error(with_location("return = { status = 999 }\n")) ==
              "conf/torii.toml:9:12: [[server.location]] return.status: must be from 100 to 599, "
              "not 999");
    }
    SUBCASE("bad regex") {
        std::string text = with_location(
            "upstream = \"api\"\n\n[[server.location]]\n"
            "path = \"^/(a\"\nmatch = \"regex\"\nupstream = \"api\"\n");
        CHECK(load_error(text) ==
              "conf/torii.toml:12:1: location \"^/(a\": bad regex: missing closing parenthesis at "
              "offset 4");
    }
    SUBCASE("prefix paths start with a slash") {
        CHECK(load_error("[[server]]\nlisten = \"127.0.0.1:1\"\n[[server.location]]\n"
                         "path = \"api\"\nreturn = {}\n") ==
              "conf/torii.toml:4:1: location \"api\": path must start with \"/\" (or set match = "
              "\"regex\")");
    }
    SUBCASE("plugin used but not listed") {
        std::string text = with_location(
            "upstream = \"api\"\n\n[server.location.plugins.ratelimit]\n"
            "rate = 10\n");
        CHECK(load_error(text) ==
              "conf/torii.toml:11:1: plugin \"ratelimit\" is used here but not listed under "
              "[[plugin]]");
        CHECK(load_error("[[server]]\nlisten = \"127.0.0.1:1\"\n\n[server.plugins.stats]\n") ==
              "conf/torii.toml:4:1: plugin \"stats\" is used here but not listed under [[plugin]]");
    }
    SUBCASE("plugin enabled must be a boolean") {
        std::string text = "[[plugin]]\nname = \"stats\"\n\n" +
                           with_location(
                               "upstream = \"api\"\n[server.location.plugins.stats]\n"
                               "enabled = \"no\"\n");
        CHECK(load_error(text) ==
              "conf/torii.toml:14:1: [server.location.plugins.stats] enabled: expected true or "
              "false");
    }
    SUBCASE("listen addresses") {
        CHECK(load_error("[[server]]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:0\"]\n") ==
              "conf/torii.toml:2:29: [[server]] listen: invalid address \"127.0.0.1:0\": port must "
              "be 1..65535");
        CHECK(load_error("[admin]\nlisten = \"9901\"\n") ==
              "conf/torii.toml:2:1: [admin] listen: invalid address \"9901\": missing port (use "
              "127.0.0.1:8080)");
    }
    SUBCASE("tcp and http servers") {
        CHECK(
            load_error("[[server]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\n") ==
            "conf/torii.toml:1:1: server \"127.0.0.1:1\": a tcp server needs upstream = \"NAME\"");
        CHECK(load_error("[upstream.db]\ntargets = [\"127.0.0.1:5432\"]\n[[server]]\n"
                         "listen = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstream = \"db\"\n"
                         "[[server.location]]\npath = \"/\"\nreturn = {}\n") ==
              "conf/torii.toml:7:1: server \"127.0.0.1:1\": a tcp server takes no "
              "[[server.location]]");
        CHECK(load_error("[[server]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\n"
                         "upstream = \"db\"\n") ==
              "conf/torii.toml:4:1: server \"127.0.0.1:1\": unknown upstream \"db\"");
        CHECK(load_error("[[server]]\nlisten = \"127.0.0.1:1\"\n") ==
              "conf/torii.toml:1:1: server \"127.0.0.1:1\": an http server needs at least one "
              "[[server.location]]");
        CHECK(load_error("[upstream.db]\ntargets = [\"127.0.0.1:5432\"]\n[[server]]\n"
                         "listen = \"127.0.0.1:1\"\nupstream = \"db\"\n") ==
              "conf/torii.toml:5:1: server \"127.0.0.1:1\": upstream is for tcp servers; http "
              "servers use [[server.location]]");
        // A tcp server relays bytes: an HTTP/2 upstream cannot take them, and a tcp upstream
        // cannot serve an http location.
        CHECK(load_error("[upstream.db]\ntargets = [\"127.0.0.1:5432\"]\nprotocol = \"h2c\"\n"
                         "[[server]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\n"
                         "upstream = \"db\"\n") ==
              "conf/torii.toml:7:1: server \"127.0.0.1:1\": upstream \"db\" speaks HTTP/2; a tcp "
              "server relays bytes (protocol = \"tcp\")");
        CHECK(load_error("[upstream.db]\ntargets = [\"127.0.0.1:5432\"]\nprotocol = \"tcp\"\n"
                         "[[server]]\nlisten = \"127.0.0.1:1\"\n[[server.location]]\npath = \"/\"\n"
                         "upstream = \"db\"\n") ==
              "conf/torii.toml:8:1: location \"/\": upstream \"db\" has protocol = \"tcp\": it "
              "serves tcp servers only");
        // Nothing could tell servers sharing a tcp server's listener apart.
        CHECK(load_error("[upstream.db]\ntargets = [\"127.0.0.1:5432\"]\n"
                         "[[server]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\n"
                         "upstream = \"db\"\n"
                         "[[server]]\nlisten = \"127.0.0.1:1\"\n[[server.location]]\npath = \"/\"\n"
                         "return = {}\n") ==
              "conf/torii.toml:7:1: server \"127.0.0.1:1\": listen \"127.0.0.1:1\" is shared with "
              "another server; a tcp server needs an address of its own");
    }
    SUBCASE("discovery") {
        CHECK(
            load_error("[upstream.api]\ndiscovery = { type = \"dns\", name = \"a.internal\" }\n") ==
            "conf/torii.toml:2:13: missing key \"discovery.port\" in [upstream.api]");
        CHECK(load_error("[upstream.api]\ndiscovery = { type = \"consul\" }\n") ==
              "conf/torii.toml:2:15: [upstream.api] discovery.type: unknown value \"consul\" (use "
              "dns, file, etcd)");
    }
    SUBCASE("return headers") {
        CHECK(load_error(with_location("return = { headers = { \"Bad Name\" = \"x\" } }\n")) ==
              "conf/torii.toml:9:24: [[server.location]] return.headers.Bad Name: not a valid "
              "header name");
    }
}

TEST_CASE("proxy_protocol on servers and upstreams, max_draining_generations") {
    std::shared_ptr<const Config> plain = load_ok(kMinimal);
    CHECK(plain->main.max_draining_generations == 4);
    CHECK_FALSE(plain->servers[0].proxy_protocol);

    std::shared_ptr<const Config> c =
        load_ok(std::string("[main]\nmax_draining_generations = 0\n"
                            "[upstream.a]\ntargets = [\"127.0.0.1:1\"]\n"
                            "proxy_protocol = \"v1\"\n"
                            "[upstream.b]\ntargets = [\"127.0.0.1:2\"]\n"
                            "proxy_protocol = \"v2\"\n") +
                "[[server]]\nlisten = \"127.0.0.1:8080\"\n"
                "proxy_protocol = true\n"
                "[[server.location]]\npath = \"/\"\n"
                "upstream = \"a\"\n");
    CHECK(c->main.max_draining_generations == 0);
    CHECK(c->servers[0].proxy_protocol);
    CHECK(c->upstreams.at("a").proxy_protocol == ProxyProtocolSend::v1);
    CHECK(c->upstreams.at("b").proxy_protocol == ProxyProtocolSend::v2);
    CHECK(load_ok(with_location("upstream = \"api\"\n"))->upstreams.at("api").proxy_protocol ==
          ProxyProtocolSend::none);

    CHECK(load_error("[main]\nmax_draining_generations = 65\n").find("max_draining_generations") !=
          std::string::npos);
    CHECK(load_error("[upstream.a]\ntargets = [\"127.0.0.1:1\"]\nproxy_protocol = \"v3\"\n")
              .find("proxy_protocol") != std::string::npos);
    CHECK(load_error("[upstream.a]\ntargets = [\"127.0.0.1:1\"]\nprotocol = \"h2c\"\n"
                     "proxy_protocol = \"v2\"\n")
              .find("one connection carries many clients") != std::string::npos);
    CHECK(load_error(std::string(kMinimal) + "[[server]]\nlisten = \"127.0.0.1:8080\"\n"
                                             "proxy_protocol = true\nserver_name = [\"b\"]\n"
                                             "[[server.location]]\npath = \"/\"\n"
                                             "return = { status = 204 }\n")
              .find("PROXY header or none do") != std::string::npos);
}

}  // namespace torii

namespace torii {

TEST_CASE("targets carry ids that survive reordering, other targets changing, and reloads") {
    auto ids_of = [](const std::string &targets) {
        std::shared_ptr<const Config> c = load_ok("[upstream.api]\ntargets = " + targets +
                                                  "\n[[server]]\nlisten = \"127.0.0.1:8080\"\n"
                                                  "[[server.location]]\npath = \"/\"\n"
                                                  "upstream = \"api\"\n");
        std::map<std::string, std::vector<uint64_t>> ids;
        for (const TargetConfig &t : c->upstreams.at("api").targets)
            ids[t.address].push_back(t.id);
        return ids;
    };
    auto first = ids_of(R"(["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])");
    auto again = ids_of(R"(["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])");
    CHECK(first == again);  // a reload of the same file
    auto reordered = ids_of(R"(["127.0.0.1:9003", "127.0.0.1:9001", "127.0.0.1:9002"])");
    CHECK(first == reordered);
    auto changed = ids_of(R"(["127.0.0.1:9002", "127.0.0.1:9004", "127.0.0.1:9003"])");
    CHECK(changed["127.0.0.1:9002"] == first["127.0.0.1:9002"]);
    CHECK(changed["127.0.0.1:9003"] == first["127.0.0.1:9003"]);
    CHECK(changed["127.0.0.1:9004"][0] != first["127.0.0.1:9001"][0]);
    // Distinct targets, and a target listed twice, get distinct ids.
    auto twice = ids_of(R"(["127.0.0.1:9001", "127.0.0.1:9001", "127.0.0.1:9002"])");
    REQUIRE(twice["127.0.0.1:9001"].size() == 2);
    CHECK(twice["127.0.0.1:9001"][0] == first["127.0.0.1:9001"][0]);
    CHECK(twice["127.0.0.1:9001"][1] != twice["127.0.0.1:9001"][0]);
    CHECK(first["127.0.0.1:9001"][0] != first["127.0.0.1:9002"][0]);
}

}  // namespace torii

TEST_CASE("[admin] listens on loopback unless told otherwise; token and state_file") {
    auto c = torii::load_config_from_string("[admin]\ntoken = \"t0k\"\nstate_file = \"s.json\"\n",
                                            "/etc/torii/torii.toml");
    REQUIRE_MESSAGE(c.ok(), c.error());
    REQUIRE(c.value()->admin);
    CHECK(c.value()->admin->listen.to_string() == "127.0.0.1:9901");
    CHECK(c.value()->admin->listen.is_loopback());
    CHECK(c.value()->admin->token == "t0k");
    CHECK(c.value()->admin->state_file == "/etc/torii/s.json");
    auto empty = torii::load_config_from_string("[admin]\ntoken = \"\"\n", "t.toml");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error() == "t.toml:2:1: [admin] token: must not be empty");
}

TEST_CASE("discovery and health keys are checked with their place") {
    auto err = [](const std::string &up) {
        auto c = torii::load_config_from_string("[upstream.api]\n" + up, "t.toml");
        return c.ok() ? std::string("ok") : c.error();
    };
    CHECK(err("discovery = { type = \"etcd\", prefix = \"/p/\" }\n") ==
          "t.toml:2:13: missing key \"discovery.endpoints\" in [upstream.api]");
    CHECK(err("discovery = { type = \"etcd\", endpoints = [\"https://x:1\"], prefix = \"/p\" }\n")
              .find("expected \"http://host:port\"") != std::string::npos);
    CHECK(err("discovery = { type = \"file\", path = \"t\", name = \"x\" }\n")
              .find("discovery.name: applies to type = \"dns\" only") != std::string::npos);
    CHECK(err("discovery = { type = \"dns\", name = \"_api._tcp.x\", resolver = \"ns:53\" }\n")
              .find("must be an IP address with a port") != std::string::npos);
    CHECK(err("discovery = { type = \"dns\", name = \"_api._tcp.x\", resolver = \"127.0.0.1:53\" "
              "}\n") == "ok");  // SRV: no port needed
    CHECK(err("targets = [\"127.0.0.1:1\"]\n[upstream.api.health]\nstatuses = [200, 700]\n")
              .find("expected an array of HTTP statuses") != std::string::npos);
    CHECK(err("targets = [\"127.0.0.1:1\"]\n[upstream.api.health]\ntype = \"tcp\"\npath = \"/\"\n")
              .find("path: applies to type = \"http\" only") != std::string::npos);
    CHECK(err("targets = [\"127.0.0.1:1\"]\nslow_start = \"30s\"\n[upstream.api.health]\n"
              "statuses = [200, 204]\nbody_contains = \"ok\"\nhost = \"h\"\n") == "ok");
}

TEST_CASE("access_log_format: combined, json or a template, checked with its place") {
    auto load = [](const std::string &main) {
        return torii::load_config_from_string("[main]\nworkers = 1\n" + main, "t.toml");
    };
    auto plain = load("");
    REQUIRE(plain.ok());
    REQUIRE(plain.value()->main.access_log_format);
    CHECK(plain.value()->main.access_log_format->spec() == torii::kDefaultFormat);
    auto json = load("access_log_format = \"json\"\n");
    REQUIRE(json.ok());
    CHECK(json.value()->main.access_log_format->json());
    CHECK(load("access_log_format = \"combined\"\n").ok());
    CHECK(load("access_log_format = \"$remote_addr $request_id\"\n").ok());
    auto bad = load("\naccess_log_format = \"$remote_addr $no_such_var\"\n");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "t.toml:4:1: [main] access_log_format: unknown variable \"$no_such_var\"");
    auto empty = load("access_log_format = \"\"\n");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.error() ==
          "t.toml:3:1: [main] access_log_format: expected \"combined\", "
          "\"json\" or a template");
}
