#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "modules/discovery/etcd_codec.h"
#include "modules/discovery/etcd_discovery.h"
#include "t/unit/modules/discovery/etcd_test_support.h"
#include "t/unit/support/free_port.h"

using namespace torii;
using namespace torii::etcd_test;
using torii::test::free_port;

namespace {

UpstreamConfig etcd_upstream(std::vector<std::string> endpoints, const std::string &prefix,
                             Millis interval) {
    UpstreamConfig up;
    up.name = "api";
    up.discovery.type = "etcd";
    up.discovery.endpoints = std::move(endpoints);
    up.discovery.prefix = prefix;
    up.discovery.interval = interval;
    return up;
}

std::string kv_json(const std::string &key, const std::string &value) {
    return R"({"key":")" + etcd::base64_encode(key) + R"(","value":")" +
           etcd::base64_encode(value) + R"("})";
}

std::string range_body(int revision, const std::vector<std::pair<std::string, std::string>> &kvs) {
    std::string out = R"({"header":{"revision":")" + std::to_string(revision) + R"("},"kvs":[)";
    for (size_t i = 0; i < kvs.size(); ++i)
        out += (i ? "," : "") + kv_json(kvs[i].first, kvs[i].second);
    return out + "]}";
}

std::string watch_line(const std::string &result) {
    return R"({"result":{"header":{"revision":"1"},)" + result + "}}\n";
}

}  // namespace

TEST_CASE("etcd discovery: only for type = \"etcd\"") {
    EventBasePtr base(event_base_new());
    ListSink sink;
    UpstreamConfig up = etcd_upstream({"http://127.0.0.1:1"}, "/p/", 1'000);
    CHECK(make_etcd_discovery(base.get(), up, sink) != nullptr);
    up.discovery.type = "dns";
    CHECK(make_etcd_discovery(base.get(), up, sink) == nullptr);
}

TEST_CASE("etcd discovery: bad endpoints are reported, the good ones used") {
    EventBasePtr base(event_base_new());
    ListSink sink;
    auto source = make_etcd_discovery(
        base.get(), etcd_upstream({"http://etcd.example:2379", "https://1.2.3.4:1"}, "/p/", 1'000),
        sink);
    source->start();
    CHECK(sink.errors == std::vector<std::string>{
                             "etcd: endpoint \"http://etcd.example:2379\": the host must be an IP "
                             "address or localhost (a name would need a lookup)",
                             "etcd: endpoint \"https://1.2.3.4:1\": expected \"http://host:port\"",
                             "etcd: no usable endpoint"});
    CHECK(sink.lists.empty());
}

// Against a scripted gateway: what real etcd seldom does on demand (a watch cancelled by a
// compaction, an HTTP error) and the resync that follows.
TEST_CASE("etcd discovery: range, watch, cancelled watch, HTTP error, resync") {
    const std::string good_a = R"({"address":"127.0.0.1:8001"})";
    const std::string good_c = R"({"address":"[::1]:8003","weight":3})";
    std::string created = watch_line(R"("created":true)");
    std::string put_c = watch_line(R"("events":[{"kv":)" + kv_json("/p/c", good_c) + "}]");
    std::string same_c = watch_line(R"("events":[{"kv":)" + kv_json("/p/c", good_c) + "}]");
    std::string put_bad = watch_line(R"("events":[{"kv":)" + kv_json("/p/bad2", "[]") + "}]");
    std::string canceled = watch_line(R"("canceled":true,"compact_revision":"6")");
    ScriptedServer server({
        {{json_response(200, range_body(5, {{"/p/a", good_a}, {"/p/bad", "{}"}}))}},
        {{kChunkedHead, chunk(created), chunk(put_c), chunk(same_c), chunk(put_bad),
          chunk(canceled)},
         true},
        {{json_response(500, R"({"error":"etcdserver: no leader","code":14})")}},
        {{json_response(200, range_body(9, {{"/p/c", good_c}}))}},
        {{kChunkedHead, chunk(created)}, true},
    });
    EventBasePtr base(event_base_new());
    ListSink sink;
    std::string url = "http://127.0.0.1:" + std::to_string(server.port);
    auto source = make_etcd_discovery(base.get(), etcd_upstream({url}, "/p/", 400), sink);
    source->start();
    REQUIRE(run_until(
        base.get(), [&] { return server.connections() == 5 && sink.lists.size() == 4; }, 5'000));
    run_for(base.get(), 100);
    std::vector<std::vector<std::string>> lists = {
        {"127.0.0.1:8001*1"},
        {"127.0.0.1:8001*1", "[::1]:8003*3"},  // the same value again reported nothing
        {"127.0.0.1:8001*1", "[::1]:8003*3"},  // a bad key: named, then the list again
        {"[::1]:8003*3"},                      // the resync: /p/a went while cut off
    };
    CHECK(sink.lists == lists);
    CHECK(sink.errors == std::vector<std::string>{
                             "etcd: key \"/p/bad\": no \"address\"",
                             "etcd: key \"/p/bad2\": bad JSON: not an object",
                             "etcd " + url + ": the watch was cancelled (revision 6 compacted)",
                             "etcd " + url + ": HTTP 500: etcdserver: no leader",
                         });
    std::vector<std::string> requests = server.requests();
    REQUIRE(requests.size() == 5);
    auto body = [](const std::string &r) { return r.substr(r.find("\r\n\r\n") + 4); };
    CHECK(requests[0].starts_with("POST /v3/kv/range HTTP/1.1\r\n"));
    CHECK(body(requests[0]) == etcd::range_request("/p/"));
    CHECK(requests[1].starts_with("POST /v3/watch HTTP/1.1\r\n"));
    CHECK(body(requests[1]) == etcd::watch_request("/p/", 6));
    CHECK(body(requests[2]) == etcd::range_request("/p/"));
    CHECK(body(requests[3]) == etcd::range_request("/p/"));
    CHECK(body(requests[4]) == etcd::watch_request("/p/", 10));
}

TEST_CASE("etcd discovery: a watch that ends or sends garbage is a failure too") {
    std::string created = watch_line(R"("created":true)");
    ScriptedServer server({
        {{json_response(200, range_body(3, {}))}},
        {{kChunkedHead, chunk(created), "0\r\n\r\n"}, true},
        {{json_response(200, range_body(3, {}))}},
        {{kChunkedHead, chunk(created), chunk("{\"result\":\n")}, true},
        {{json_response(200, "[]")}},
    });
    EventBasePtr base(event_base_new());
    ListSink sink;
    std::string url = "http://127.0.0.1:" + std::to_string(server.port);
    auto source = make_etcd_discovery(base.get(), etcd_upstream({url}, "/p/", 400), sink);
    source->start();
    REQUIRE(run_until(
        base.get(), [&] { return sink.errors.size() == 3; }, 5'000));
    CHECK(sink.errors[0] == "etcd " + url + ": the watch ended");
    CHECK(sink.errors[1].starts_with("etcd " + url + ": watch: bad JSON"));
    CHECK(sink.errors[2] == "etcd " + url + ": range: bad JSON: not an object");
    // Every resync reports its list, unchanged or not: it says the source works again.
    CHECK(sink.lists == std::vector<std::vector<std::string>>{{}, {}});
}

namespace {

// Waits for `pid` up to `ms`, then kills it; its exit status, or -1.
int wait_for(pid_t pid, int ms) {
    for (int waited = 0;; waited += 10) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

pid_t spawn(const std::vector<std::string> &args, const std::string &log) {
    std::vector<char *> argv;
    for (const std::string &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("ETCDCTL_API", "3", 1);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

// One etcd member in a temporary directory; its client port can change between runs (the
// data stays), which is how a test makes changes torii cannot see.
class EtcdServer {
public:
    EtcdServer() {
        char tmpl[] = "/tmp/torii-etcd-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        peer_ = free_port();
    }
    ~EtcdServer() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    void start(uint16_t client) {
        client_ = client;
        std::string c = "http://127.0.0.1:" + std::to_string(client);
        std::string p = "http://127.0.0.1:" + std::to_string(peer_);
        pid_ = spawn({"/usr/bin/etcd", "--name", "default", "--data-dir", dir_ + "/data",
                      "--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls",
                      p, "--initial-advertise-peer-urls", p, "--initial-cluster", "default=" + p},
                     dir_ + "/etcd.log");
        // Ready once it takes a write (it elects itself first).
        bool ready = false;
        for (int i = 0; i < 30 && !ready; ++i) {
            ready = ctl({"put", "/torii-test-ready", "1"});
            if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        REQUIRE_MESSAGE(ready, "etcd did not start, see " << dir_ << "/etcd.log");
    }
    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        wait_for(pid_, 10'000);
        pid_ = -1;
    }
    bool ctl(const std::vector<std::string> &args, std::string *output = nullptr) {
        std::vector<std::string> argv = {"/usr/bin/etcdctl",
                                         "--endpoints=http://127.0.0.1:" + std::to_string(client_),
                                         "--dial-timeout=1s", "--command-timeout=3s"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string log = dir_ + "/etcdctl.out";
        std::filesystem::remove(log);
        bool ok = wait_for(spawn(argv, log), 10'000) == 0;
        if (output) {
            std::ifstream in(log);
            output->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        return ok;
    }
    // The store's revision after a write.
    long long put(const std::string &key, const std::string &value) {
        std::string out;
        REQUIRE(ctl({"put", "-w", "json", key, value}, &out));
        size_t at = out.find("\"revision\":");
        REQUIRE(at != std::string::npos);
        return std::atoll(out.c_str() + at + 11);
    }

private:
    std::string dir_;
    uint16_t peer_ = 0, client_ = 0;
    pid_t pid_ = -1;
};

}  // namespace

// Against Debian's etcd: the whole cycle, with two endpoints of which the first is dead.
TEST_CASE("etcd discovery: a real etcd, cut off and back with changes made meanwhile") {
    REQUIRE_MESSAGE(access("/usr/bin/etcd", X_OK) == 0, "etcd-server is not installed");
    uint16_t dead = free_port(), client = free_port(), hidden = free_port();
    EtcdServer etcd;
    etcd.start(client);
    REQUIRE(etcd.ctl({"put", "/torii-test/a", R"({"address":"127.0.0.1:8001"})"}));
    REQUIRE(etcd.ctl({"put", "/torii-test/bad", "nope"}));
    REQUIRE(etcd.ctl({"put", "/torii-test-other", R"({"address":"127.0.0.1:9999"})"}));

    EventBasePtr base(event_base_new());
    ListSink sink;
    std::string dead_url = "http://127.0.0.1:" + std::to_string(dead);
    std::string url = "http://localhost:" + std::to_string(client);
    auto source = make_etcd_discovery(base.get(),
                                      etcd_upstream({dead_url, url}, "/torii-test/", 1'000), sink);
    source->start();
    auto has_list = [&](std::vector<std::string> want) {
        return run_until(
            base.get(), [&] { return sink.last() == want; }, 10'000);
    };
    CHECK(has_list({"127.0.0.1:8001*1"}));
    CHECK(sink.has_error("etcd " + dead_url + ": cannot connect: Connection refused"));
    CHECK(sink.has_error("etcd: key \"/torii-test/bad\": bad JSON"));

    REQUIRE(etcd.ctl({"put", "/torii-test/c", R"({"address":"[::1]:8003","weight":3})"}));
    CHECK(has_list({"127.0.0.1:8001*1", "[::1]:8003*3"}));
    REQUIRE(etcd.ctl({"del", "/torii-test/a"}));
    CHECK(has_list({"[::1]:8003*3"}));
    REQUIRE(etcd.ctl({"put", "/torii-test/bad", R"({"address":"127.0.0.1:8002"})"}));
    CHECK(has_list({"127.0.0.1:8002*1", "[::1]:8003*3"}));  // a key fixed; in key order

    // Cut off: the error is reported, the list stays.
    size_t lists = sink.lists.size();
    etcd.stop();
    CHECK(run_until(
        base.get(), [&] { return sink.has_error("etcd " + url + ": "); }, 5'000));
    // Changes torii cannot see (etcd on another port), then compacted away: a watch resumed
    // from the last revision seen would be refused; the resync ranges afresh.
    etcd.start(hidden);
    REQUIRE(etcd.ctl({"del", "/torii-test/c"}));
    long long revision = etcd.put("/torii-test/d", R"({"address":"127.0.0.1:8004","weight":7})");
    REQUIRE(etcd.ctl({"compact", std::to_string(revision), "--physical"}));
    etcd.stop();
    CHECK(sink.lists.size() == lists);
    // Back where torii looks: the resync picks the changes up.
    etcd.start(client);
    CHECK(has_list({"127.0.0.1:8002*1", "127.0.0.1:8004*7"}));
    REQUIRE(etcd.ctl({"del", "/torii-test/d"}));
    CHECK(has_list({"127.0.0.1:8002*1"}));  // and the watch runs again
}

TEST_CASE("etcd discovery: two keys with one address are one target, their weights summed") {
    ScriptedServer server({
        {{json_response(200,
                        range_body(4, {{"/p/z", R"({"address":"[::1]:2"})"},
                                       {"/p/x", R"({"address":"127.0.0.1:1","weight":2})"},
                                       {"/p/y", R"({"address":"127.0.0.1:1","weight":3})"}}))}},
        {{kChunkedHead, chunk(watch_line(R"("created":true)"))}, true},
    });
    EventBasePtr base(event_base_new());
    ListSink sink;
    std::string url = "http://127.0.0.1:" + std::to_string(server.port);
    auto source = make_etcd_discovery(base.get(), etcd_upstream({url}, "/p/", 400), sink);
    source->start();
    REQUIRE(run_until(
        base.get(), [&] { return server.connections() == 2; }, 5'000));
    run_for(base.get(), 100);
    CHECK(sink.lists == std::vector<std::vector<std::string>>{{"127.0.0.1:1*5", "[::1]:2*1"}});
    CHECK(sink.errors.empty());
}
