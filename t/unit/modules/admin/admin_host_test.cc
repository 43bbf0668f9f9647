#include "modules/admin/admin_host.h"

#include <doctest/doctest.h>

namespace torii {

namespace {

AdminConfig admin(const char *listen) {
    auto config =
        load_config_from_string(std::string("[admin]\nlisten = \"") + listen + "\"\n", "t.toml");
    REQUIRE_MESSAGE(config.ok(), config.error());
    return *config.value()->admin;
}

}  // namespace

TEST_CASE("admin Host check: bound to 127.0.0.1") {
    AdminConfig a = admin("127.0.0.1:9901");
    CHECK(a.name.empty());
    for (const char *ok : {"127.0.0.1:9901", "127.0.0.1", "localhost", "LocalHost:9901",
                           "localhost:8000", "127.0.0.1:1"})
        CHECK_MESSAGE(admin_host_allowed(ok, a), ok);
    for (const char *bad :
         {"evil.example", "evil.example:9901", "127.0.0.2:9901", "127.1:9901", "[::1]:9901",
          "localhost.evil.example", "localhost:", "localhost:99x", "127.0.0.1:123456", "", ":9901",
          "0177.0.0.1", "localhost.", "[127.0.0.1]"})
        CHECK_MESSAGE(!admin_host_allowed(bad, a), bad);
}

TEST_CASE("admin Host check: bound to [::1]") {
    AdminConfig a = admin("[::1]:9901");
    for (const char *ok : {"[::1]:9901", "[::1]", "[0:0::1]", "localhost"})
        CHECK_MESSAGE(admin_host_allowed(ok, a), ok);
    for (const char *bad : {"::1", "[::1", "[::1]x", "[::2]:9901", "127.0.0.1:9901"})
        CHECK_MESSAGE(!admin_host_allowed(bad, a), bad);
}

TEST_CASE("admin Host check: bound to a wildcard takes any IP literal, never a DNS name") {
    for (const char *listen : {"0.0.0.0:9901", "*:9901", "[::]:9901"}) {
        AdminConfig a = admin(listen);
        for (const char *ok : {"10.1.2.3:9901", "192.168.0.7", "[fe80::1]:9901", "localhost"})
            CHECK_MESSAGE(admin_host_allowed(ok, a), listen << " " << ok);
        for (const char *bad : {"evil.example", "evil.example:9901", "10.1.2.3.nip.io"})
            CHECK_MESSAGE(!admin_host_allowed(bad, a), listen << " " << bad);
    }
}

TEST_CASE("admin Host check: a listen name is accepted as a Host") {
    AdminConfig a = admin("LOCALHOST:9901");
    CHECK(a.name == "localhost");
    CHECK(admin_host_allowed("localhost:9901", a));
    CHECK(admin_host_allowed("127.0.0.1:9901", a));  // what the name resolved to
    CHECK(!admin_host_allowed("evil.example", a));
}

}  // namespace torii
