#include <doctest/doctest.h>

#include "core/config/pending_features.h"

using namespace torii;

TEST_CASE("discovery and health checks are active: no warning for them") {
    const char *text =
        "[upstream.api]\n"                                          // 1
        "targets = [\"127.0.0.1:9001\"]\n"                          // 2
        "keepalive = 8\n"                                           // 3
        "discovery = { type = \"dns\", name = \"a\", port = 1 }\n"  // 4
        "\n"                                                        // 5
        "[[server]]\n"                                              // 6
        "listen = [\"127.0.0.1:8080\"]\n"                           // 7
        "protocol = \"http\"\n"                                     // 8
        "[[server.location]]\n"                                     // 9
        "path = \"/\"\n"                                            // 10
        "upstream = \"api\"\n";                                     // 11
    auto config = load_config_from_string(text, "t.toml");
    REQUIRE_MESSAGE(config.ok(), config.error());
    auto warnings = pending_feature_warnings(*config.value());
    CHECK(warnings.empty());

    auto plain = load_config_from_string(
        "[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.location]]\npath = \"/\"\n"
        "return = { status = 200 }\n",
        "p.toml");
    REQUIRE(plain.ok());
    CHECK(pending_feature_warnings(*plain.value()).empty());
}

TEST_CASE("an [admin] listen off loopback is reported with its place") {
    auto open = load_config_from_string("[admin]\n\nlisten = \"0.0.0.0:9901\"\n", "a.toml");
    REQUIRE_MESSAGE(open.ok(), open.error());
    auto warnings = pending_feature_warnings(*open.value());
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].rfind("a.toml:3:1: [admin] listen \"0.0.0.0:9901\" is not a loopback "
                            "address and [admin] token is not set: the admin API is reachable from "
                            "the network without authentication",
                            0) == 0);
    for (const char *loopback : {"127.0.0.1:9901", "[::1]:9901", "localhost:9901"}) {
        auto c = load_config_from_string(std::string("[admin]\nlisten = \"") + loopback + "\"\n",
                                         "a.toml");
        REQUIRE_MESSAGE(c.ok(), c.error());
        CHECK_MESSAGE(pending_feature_warnings(*c.value()).empty(), loopback);
    }
    // A token is the remedy: then an open listener is a choice, not an accident.
    auto with_token = load_config_from_string(
        "[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"s3cret\"\n", "a.toml");
    REQUIRE_MESSAGE(with_token.ok(), with_token.error());
    CHECK(pending_feature_warnings(*with_token.value()).empty());
}
