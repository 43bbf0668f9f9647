#include <doctest/doctest.h>

#include "core/config/pending_features.h"

using namespace torii;

TEST_CASE("settings accepted but not active yet are reported with their place") {
    const char *text =
        "[upstream.api]\n"                                                  // 1
        "targets = [\"127.0.0.1:9001\"]\n"                                  // 2
        "protocol = \"h2\"\n"                                               // 3
        "tls = { enabled = true }\n"                                        // 4
        "\n"                                                                // 5
        "[[server]]\n"                                                      // 6
        "listen = [\"127.0.0.1:8080\"]\n"                                   // 7
        "tls = { cert = \"c.pem\", key = \"k.pem\" }\n"                     // 8
        "[[server.location]]\n"                                             // 9
        "path = \"/\"\n"                                                    // 10
        "upstream = \"api\"\n";                                             // 11
    auto config = load_config_from_string(text, "t.toml");
    REQUIRE_MESSAGE(config.ok(), config.error());
    auto warnings = pending_feature_warnings(*config.value());
    REQUIRE(warnings.size() == 3);
    CHECK(warnings[0].rfind("t.toml:6:1: [[server]] tls: TLS termination is not available", 0) == 0);
    CHECK(warnings[1].rfind("t.toml:1:1: upstream \"api\": protocol other than \"http1\"", 0) == 0);
    CHECK(warnings[2].rfind("t.toml:1:1: upstream \"api\": tls is not available yet", 0) == 0);

    auto plain = load_config_from_string(
        "[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.location]]\npath = \"/\"\n"
        "return = { status = 200 }\n",
        "p.toml");
    REQUIRE(plain.ok());
    CHECK(pending_feature_warnings(*plain.value()).empty());
}
