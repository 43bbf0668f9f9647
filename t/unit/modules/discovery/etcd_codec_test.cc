#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/config/config.h"
#include "modules/discovery/discovery_endpoint.h"
#include "modules/discovery/etcd_codec.h"
#include "modules/discovery/etcd_discovery.h"
#include "modules/discovery/etcd_target_map.h"
#include "modules/discovery/http_post.h"

using namespace torii;
using namespace torii::etcd;

static std::vector<std::string> addresses(const std::vector<DiscoveredTarget> &targets) {
    std::vector<std::string> out;
    for (const DiscoveredTarget &t : targets)
        out.push_back(t.address.to_string() + "*" + std::to_string(t.weight));
    return out;
}

TEST_CASE("etcd codec: base64 both ways, padding included, strict on input") {
    const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                      {"f", "Zg=="},
                                                                      {"fo", "Zm8="},
                                                                      {"foo", "Zm9v"},
                                                                      {"foob", "Zm9vYg=="},
                                                                      {"fooba", "Zm9vYmE="},
                                                                      {"foobar", "Zm9vYmFy"},
                                                                      {"/p/", "L3Av"}};
    for (const auto &[plain, encoded] : vectors) {
        CHECK(base64_encode(plain) == encoded);
        REQUIRE(base64_decode(encoded).has_value());
        CHECK(*base64_decode(encoded) == plain);
    }
    std::string binary("\x00\xff\xfe\x01\x80", 5);
    CHECK(*base64_decode(base64_encode(binary)) == binary);
    CHECK(base64_decode("+/+/").has_value());
    for (std::string bad : {"Zg=", "Zg", "Z===", "=Zg=", "Zg=a", " Zm9v", "Zm9v\n", "Zm9v ", "Zm-_",
                            "Zm9v!A==", "Zm9vYg=\n"})
        CHECK_MESSAGE(!base64_decode(bad).has_value(), bad);
}

TEST_CASE("etcd codec: the range end of a prefix") {
    CHECK(prefix_range_end("/torii/upstreams/api/") == "/torii/upstreams/api0");
    CHECK(prefix_range_end("abc") == "abd");
    CHECK(prefix_range_end("a\xff") == "b");
    CHECK(prefix_range_end("a\xff\xff") == "b");
    CHECK(prefix_range_end("\xfe\xff") == "\xff");
    CHECK(prefix_range_end("\xff\xff") == std::string(1, '\0'));
}

TEST_CASE("etcd codec: request bodies") {
    CHECK(range_request("/p/") == R"({"key":"L3Av","range_end":"L3Aw"})");
    CHECK(watch_request("/p/", 8) ==
          R"({"create_request":{"key":"L3Av","range_end":"L3Aw","start_revision":8,)"
          R"("progress_notify":true}})");
}

TEST_CASE("etcd codec: a key's value is a target") {
    Result<DiscoveredTarget> t = parse_target(R"({"address": "10.0.0.5:8080", "weight": 2})");
    REQUIRE(t.ok());
    CHECK(t->address.to_string() == "10.0.0.5:8080");
    CHECK(t->weight == 2);
    t = parse_target(R"({"address": "[fd00::5]:8080"})");
    REQUIRE(t.ok());
    CHECK(t->address.to_string() == "[fd00::5]:8080");
    CHECK(t->weight == 1);
    CHECK(parse_target(R"({"address": "127.0.0.1:1", "weight": 1000000})").ok());

    auto error_of = [](const char *json) {
        Result<DiscoveredTarget> r = parse_target(json);
        return r.ok() ? std::string("ok") : r.error();
    };
    CHECK(error_of("nope").starts_with("bad JSON"));
    CHECK(error_of("").starts_with("bad JSON"));
    CHECK(error_of(R"(["10.0.0.5:80"])") == "bad JSON: not an object");
    CHECK(
        error_of(R"({"address": "1.2.3.4:80", "address": "1.2.3.4:81"})").starts_with("bad JSON"));
    CHECK(error_of("{}") == "no \"address\"");
    CHECK(error_of(R"({"address": 5})") == "\"address\" is not a string");
    CHECK(error_of(R"({"address": "10.0.0.5:80", "wieght": 2})")
              .starts_with("unknown field \"wieght\""));
    for (const char *bad : {R"({"address": "localhost:80"})", R"({"address": "*:80"})",
                            R"({"address": "example.com:80"})", R"({"address": "10.0.0.5"})"})
        CHECK_MESSAGE(error_of(bad).find("expected an IP address and a port") != std::string::npos,
                      bad);
    CHECK(error_of(R"({"address": "0.0.0.0:80"})").find("not one host") != std::string::npos);
    CHECK(error_of(R"({"address": "10.0.0.5:80\n[crit] forged"})") ==
          "\"address\" has a space, control or non-ASCII character");
    CHECK(error_of(R"({"address": " 10.0.0.5:80"})") ==
          "\"address\" has a space, control or non-ASCII character");
    CHECK(error_of("\x01\n[crit] forged") == "bad JSON: '[' or '{' expected near '\\x01'");
    CHECK(error_of(R"({"address": "10.0.0.5:0"})").find("port must be") != std::string::npos);
    CHECK(error_of(R"({"address": "[::1]"})").find("missing port") != std::string::npos);
    CHECK(error_of(R"({"address": "[nope]:80"})").find("bad IPv6") != std::string::npos);
    for (const char *bad : {R"({"address": "10.0.0.5:80", "weight": 0})",
                            R"({"address": "10.0.0.5:80", "weight": 1000001})",
                            R"({"address": "10.0.0.5:80", "weight": 2.0})",
                            R"({"address": "10.0.0.5:80", "weight": "2"})"})
        CHECK_MESSAGE(error_of(bad) == "\"weight\" must be an integer from 1 to 1000000", bad);
}

TEST_CASE("etcd codec: a range response, as etcd 3.4's gateway writes it") {
    // Captured from etcd 3.4.23 (one key /p/a, value {"address":"127.0.0.1:1"}).
    const char *body =
        R"({"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952",)"
        R"("revision":"2","raft_term":"2"},"kvs":[{"key":"L3AvYQ==","create_revision":"2",)"
        R"("mod_revision":"2","version":"1","value":"eyJhZGRyZXNzIjoiMTI3LjAuMC4xOjEifQ=="}],)"
        R"("count":"1"})";
    Result<RangeResponse> r = parse_range_response(body);
    REQUIRE(r.ok());
    CHECK(r->revision == 2);
    REQUIRE(r->kvs.size() == 1);
    CHECK(r->kvs[0].key == "/p/a");
    CHECK(r->kvs[0].value == R"({"address":"127.0.0.1:1"})");

    r = parse_range_response(R"({"header":{"revision":"7"}})");  // no key: no "kvs"
    REQUIRE(r.ok());
    CHECK(r->revision == 7);
    CHECK(r->kvs.empty());
    r = parse_range_response(R"({"header":{"revision":9},"kvs":[{"key":"L3Av"}]})");
    REQUIRE(r.ok());  // a number works too; an empty value is left out by the gateway
    CHECK(r->kvs[0].value.empty());

    auto error_of = [](const char *json) {
        Result<RangeResponse> res = parse_range_response(json);
        return res.ok() ? std::string("ok") : res.error();
    };
    CHECK(error_of("{}") == "no revision in the response header");
    CHECK(error_of(R"({"header":{"revision":"x"}})") == "no revision in the response header");
    CHECK(error_of(R"({"header":{"revision":"1"},"kvs":{}})") == "\"kvs\" is not an array");
    CHECK(error_of(R"({"header":{"revision":"1"},"kvs":[{"value":"eA=="}]})") == "a kv has no key");
    CHECK(error_of(R"({"header":{"revision":"1"},"kvs":[{"key":"!"}]})") ==
          "a kv's key is not base64");
    CHECK(error_of(R"({"header":{"revision":"1"},"kvs":[{"key":"L3Av","value":"!"}]})") ==
          "the value of key \"/p/\" is not base64");
    CHECK(error_of(R"({"header":{"revision":"1"},"more":true})").find("incomplete") !=
          std::string::npos);
    CHECK(error_of("[").starts_with("bad JSON"));
}

TEST_CASE("etcd codec: watch messages, as etcd 3.4's gateway writes them") {
    Result<WatchMessage> m = parse_watch_message(
        R"({"result":{"header":{"cluster_id":"3","member_id":"3","revision":"2",)"
        R"("raft_term":"2"},"created":true}})");
    REQUIRE(m.ok());
    CHECK(m->created);
    CHECK(!m->canceled);
    CHECK(m->revision == 2);
    CHECK(m->events.empty());

    m = parse_watch_message(
        R"({"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"L3AvYg==",)"
        R"("create_revision":"3","mod_revision":"3","version":"1","value":"eA=="}},)"
        R"({"type":"DELETE","kv":{"key":"L3AvYQ==","mod_revision":"4"}},)"
        R"({"type":"PUT","kv":{"key":"L3AvYw=="}}]}})");
    REQUIRE(m.ok());
    CHECK(!m->created);
    REQUIRE(m->events.size() == 3);
    CHECK(!m->events[0].deleted);
    CHECK(m->events[0].kv.key == "/p/b");
    CHECK(m->events[0].kv.value == "x");
    CHECK(m->events[1].deleted);
    CHECK(m->events[1].kv.key == "/p/a");
    CHECK(!m->events[2].deleted);
    CHECK(m->events[2].kv.value.empty());

    m = parse_watch_message(
        R"({"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"5"}})");
    REQUIRE(m.ok());
    CHECK(m->canceled);
    CHECK(m->compact_revision == 5);
    CHECK(m->revision == 0);

    m = parse_watch_message(R"({"result":{"header":{"revision":"9"}}})");  // progress
    REQUIRE(m.ok());
    CHECK(m->events.empty());
    CHECK(!m->canceled);

    auto error_of = [](const char *json) {
        Result<WatchMessage> res = parse_watch_message(json);
        return res.ok() ? std::string("ok") : res.error();
    };
    CHECK(error_of(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: )"
                   R"(no leader","http_status":"Service Unavailable"}})") ==
          "etcdserver: no leader");
    CHECK(error_of(R"({"error":{}})") == "error without a message");
    CHECK(error_of(R"({"results":{}})") == "a message without \"result\"");
    CHECK(error_of(R"({"result":{"events":[{"type":"EXPIRE","kv":{"key":"eA=="}}]}})") ==
          "unknown event type \"EXPIRE\"");
    CHECK(error_of(R"({"result":{"events":[{"type":"PUT"}]}})") == "a kv is not an object");
    CHECK(error_of(R"({"result":{"header":{"revision":"-1"}}})") == "a bad revision in the header");
    CHECK(error_of(R"({"result":{"header":{"revision":"99999999999999999999"}}})") ==
          "a bad revision in the header");
    CHECK(error_of(R"({"result":)").starts_with("bad JSON"));
}

TEST_CASE("etcd codec: gateway error bodies and printable keys") {
    CHECK(error_message(R"({"error":"illegal base64 data at input byte 0","message":"illegal )"
                        R"(base64 data at input byte 0","code":3})") ==
          "illegal base64 data at input byte 0");
    CHECK(error_message(R"({"error":{"message":"no leader"}})") == "no leader");
    CHECK(error_message(R"({"error":"only this"})") == "only this");
    CHECK(error_message("Not Found\n").empty());
    CHECK(error_message(R"({"error":"line\nbreak"})") == "line\\x0abreak");
    CHECK(printable("/p/a") == "/p/a");
    CHECK(printable("a\\b") == "a\\x5cb");
    CHECK(printable(std::string("/p/\0\xff\"", 6)) == "/p/\\x00\\xff\\x22");
    CHECK(printable(std::string(300, 'k')) == std::string(200, 'k') + "...");
}

TEST_CASE("etcd target map: a range, then events; bad keys are skipped and named") {
    EtcdTargetMap map;
    std::vector<std::string> errors;
    map.reset({{"/p/b", R"({"address":"127.0.0.1:2","weight":5})"},
               {"/p/bad", "not json"},
               {"/p/a", R"({"address":"127.0.0.1:1"})"}},
              errors);
    CHECK(addresses(map.targets()) == std::vector<std::string>{"127.0.0.1:1*1", "127.0.0.1:2*5"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].starts_with("key \"/p/bad\": bad JSON"));

    errors.clear();
    // The same value again changes nothing; a weight change does.
    CHECK(!map.apply({{false, {"/p/a", R"({"address":"127.0.0.1:1","weight":1})"}}}, errors));
    CHECK(map.apply({{false, {"/p/a", R"({"address":"127.0.0.1:1","weight":3})"}}}, errors));
    CHECK(map.apply({{true, {"/p/b", ""}}, {false, {"/p/c", R"({"address":"[::1]:3"})"}}}, errors));
    CHECK(addresses(map.targets()) == std::vector<std::string>{"127.0.0.1:1*3", "[::1]:3*1"});
    CHECK(errors.empty());
    CHECK(!map.apply({{true, {"/p/nothing", ""}}}, errors));  // deleting an unknown key
    CHECK(!map.apply({{true, {"/p/bad", ""}}}, errors));      // or a skipped one

    // A good key that turns bad loses its target (what a fresh range would give) and is named.
    CHECK(map.apply({{false, {"/p/a", R"({"address":"localhost:1"})"}}}, errors));
    CHECK(addresses(map.targets()) == std::vector<std::string>{"[::1]:3*1"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].starts_with("key \"/p/a\": address \"localhost:1\""));
    // A bad value for a key with no target: an error, no change.
    CHECK(!map.apply({{false, {"/p/x", "{}"}}}, errors));
    CHECK(errors.size() == 2);

    map.reset({}, errors);
    CHECK(map.targets().empty());
    CHECK(map.size() == 0);
}

TEST_CASE("etcd retry delay: 0.5 s doubling up to the cap, in the upper half of each step") {
    CHECK(etcd_retry_delay(1, 5'000, 0) == 250);
    CHECK(etcd_retry_delay(1, 5'000, 250) == 500);
    CHECK(etcd_retry_delay(1, 5'000, 251) == 250);  // wraps within the step
    CHECK(etcd_retry_delay(2, 5'000, 500) == 1'000);
    CHECK(etcd_retry_delay(3, 5'000, 1'000) == 2'000);
    CHECK(etcd_retry_delay(4, 5'000, 2'000) == 4'000);
    CHECK(etcd_retry_delay(5, 5'000, 2'500) == 5'000);
    CHECK(etcd_retry_delay(5, 5'000, 0) == 2'500);
    CHECK(etcd_retry_delay(1000, 5'000, 2'500) == 5'000);  // no overflow after many failures
    CHECK(etcd_retry_delay(3, 100, 250) == 500);           // never below 0.5 s
    for (uint64_t r = 0; r < 10'000; r += 37) {
        Millis d = etcd_retry_delay(7, 30'000, r);
        CHECK((d >= 15'000 && d <= 30'000));
    }
}

TEST_CASE("etcd endpoints: IP literals or localhost, a port, no path") {
    Result<DiscoveryEndpoint> e = DiscoveryEndpoint::parse("http://127.0.0.1:2379");
    REQUIRE(e.ok());
    CHECK(e->host == "127.0.0.1:2379");
    CHECK(e->address.to_string() == "127.0.0.1:2379");
    e = DiscoveryEndpoint::parse("http://localhost:2379/");
    REQUIRE(e.ok());
    CHECK(e->host == "localhost:2379");
    CHECK(e->address.to_string() == "127.0.0.1:2379");
    CHECK(e->url == "http://localhost:2379/");
    e = DiscoveryEndpoint::parse("http://[::1]:2379");
    REQUIRE(e.ok());
    CHECK(e->address.to_string() == "[::1]:2379");

    auto error_of = [](const char *url) {
        Result<DiscoveryEndpoint> r = DiscoveryEndpoint::parse(url);
        return r.ok() ? std::string("ok") : r.error();
    };
    CHECK(error_of("https://127.0.0.1:2379").find("expected \"http://host:port\"") !=
          std::string::npos);
    CHECK(error_of("http://etcd.internal:2379").find("IP address or localhost") !=
          std::string::npos);
    CHECK(error_of("http://127.0.0.1").find("missing port") != std::string::npos);
    CHECK(error_of("http://[::1]").find("missing port") != std::string::npos);
    CHECK(error_of("http://127.0.0.1:2379/v3").find("a path") != std::string::npos);
    CHECK(error_of("http://127.0.0.1:99999").find("port must be") != std::string::npos);
    CHECK(error_of("http://0.0.0.0:2379").find("not one host") != std::string::npos);
}

TEST_CASE("etcd endpoints: checked when the config is loaded") {
    auto load_error = [](const std::string &endpoints) {
        std::string text =
            "[upstream.api]\ndiscovery = { type = \"etcd\", endpoints = " + endpoints +
            ", prefix = \"/p/\" }\n";
        Result<std::shared_ptr<const Config>> r = load_config_from_string(text, "t.toml");
        return r.ok() ? std::string("(loaded)") : r.error();
    };
    CHECK(load_error(R"(["http://etcd.internal:2379"])") ==
          "t.toml:2:30: [upstream.api] discovery.endpoints: endpoint "
          "\"http://etcd.internal:2379\": the host must be an IP address or localhost (a name "
          "would need a lookup)");
    CHECK(load_error(R"(["http://127.0.0.1:2379", "http://127.0.0.1:2379/v3"])")
              .ends_with("endpoint \"http://127.0.0.1:2379/v3\": a path is not supported"));
    CHECK(load_error("[]").ends_with("discovery.endpoints: must not be empty"));
    CHECK(load_error(R"(["http://127.0.0.1:2379", "http://localhost:2380/", "http://[::1]:1"])") ==
          "(loaded)");
}
