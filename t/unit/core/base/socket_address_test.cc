#include "core/base/socket_address.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>
#include <string>

namespace torii {

TEST_CASE("SocketAddress parses IPv4") {
    Result<SocketAddress> a = SocketAddress::parse("127.0.0.1:8080");
    REQUIRE(a.ok());
    CHECK(a->family() == AF_INET);
    CHECK(a->port() == 8080);
    CHECK(a->length == sizeof(sockaddr_in));
    CHECK(a->host_string() == "127.0.0.1");
    CHECK(a->to_string() == "127.0.0.1:8080");
}

TEST_CASE("SocketAddress parses bracketed IPv6") {
    Result<SocketAddress> a = SocketAddress::parse("[::1]:9000");
    REQUIRE(a.ok());
    CHECK(a->family() == AF_INET6);
    CHECK(a->port() == 9000);
    CHECK(a->length == sizeof(sockaddr_in6));
    CHECK(a->host_string() == "::1");
    CHECK(a->to_string() == "[::1]:9000");
    CHECK(SocketAddress::parse("[::]:80")->to_string() == "[::]:80");
}

TEST_CASE("SocketAddress formats every IPv4 octet width as inet_ntop does") {
    for (const char *text :
         {"0.0.0.0", "255.255.255.255", "10.0.100.9", "192.168.1.20", "1.22.123.4", "100.10.1.0"}) {
        Result<SocketAddress> a = SocketAddress::parse(std::string(text) + ":80");
        REQUIRE(a.ok());
        char buf[SocketAddress::kHostTextMax];
        CHECK(a->format_host(buf) == std::strlen(text));
        CHECK(std::string(buf) == text);
        char ref[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(&a->storage)->sin_addr, ref,
                  sizeof ref);
        CHECK(std::string(buf) == ref);
    }
    Result<SocketAddress> v6 = SocketAddress::parse("[2001:db8::ff00:42:8329]:80");
    REQUIRE(v6.ok());
    char buf[SocketAddress::kHostTextMax];
    CHECK(v6->format_host(buf) == 22);
    CHECK(std::string(buf) == "2001:db8::ff00:42:8329");
    CHECK(SocketAddress{}.format_host(buf) == 0);
    CHECK(buf[0] == '\0');
}

TEST_CASE("SocketAddress '*' and 0.0.0.0 mean any IPv4 address") {
    Result<SocketAddress> star = SocketAddress::parse("*:8080");
    REQUIRE(star.ok());
    CHECK(star->family() == AF_INET);
    CHECK(star->to_string() == "0.0.0.0:8080");
    CHECK(SocketAddress::parse("0.0.0.0:8080")->to_string() == "0.0.0.0:8080");
}

TEST_CASE("SocketAddress resolves localhost, preferring IPv4") {
    Result<SocketAddress> a = SocketAddress::parse("localhost:8080");
    REQUIRE(a.ok());
    CHECK(a->port() == 8080);
    if (a->family() == AF_INET) CHECK(a->host_string() == "127.0.0.1");
}

TEST_CASE("SocketAddress port bounds") {
    CHECK(SocketAddress::parse("127.0.0.1:1")->port() == 1);
    CHECK(SocketAddress::parse("127.0.0.1:65535")->port() == 65535);
    CHECK(SocketAddress::parse("127.0.0.1:0").error() ==
          "invalid address \"127.0.0.1:0\": port must be 1..65535");
    CHECK_FALSE(SocketAddress::parse("127.0.0.1:65536").ok());
    CHECK_FALSE(SocketAddress::parse("127.0.0.1:99999999").ok());
    CHECK_FALSE(SocketAddress::parse("127.0.0.1:-1").ok());
    CHECK_FALSE(SocketAddress::parse("127.0.0.1:80a").ok());
    CHECK_FALSE(SocketAddress::parse("127.0.0.1:").ok());
    CHECK_FALSE(SocketAddress::parse("[::1]:0").ok());
}

TEST_CASE("SocketAddress rejects malformed text") {
    CHECK(SocketAddress::parse("127.0.0.1").error() ==
          "invalid address \"127.0.0.1\": missing port (use 127.0.0.1:8080)");
    CHECK(SocketAddress::parse("::1:80").error() ==
          "invalid address \"::1:80\": IPv6 addresses go in brackets, e.g. [::1]:8080");
    CHECK_FALSE(SocketAddress::parse("").ok());
    CHECK_FALSE(SocketAddress::parse(":80").ok());
    CHECK_FALSE(SocketAddress::parse("[::1]").ok());
    CHECK_FALSE(SocketAddress::parse("[::1:80").ok());
    CHECK_FALSE(SocketAddress::parse("[zz::1]:80").ok());
    CHECK_FALSE(SocketAddress::parse("[127.0.0.1]:80").ok());
    CHECK_FALSE(SocketAddress::parse("no-such-host.invalid:80").ok());
}

TEST_CASE("SocketAddress::from_sockaddr copies the address") {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4242);
    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    SocketAddress a =
        SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr *>(&sin), sizeof sin);
    CHECK(a.to_string() == "10.1.2.3:4242");
    CHECK(a.length == sizeof sin);
    CHECK(SocketAddress{}.to_string().empty());
    CHECK(SocketAddress{}.port() == 0);
}

}  // namespace torii

namespace torii {

TEST_CASE("SocketAddress loopback and wildcard") {
    auto is = [](const char *text, bool loopback, bool wildcard) {
        Result<SocketAddress> a = SocketAddress::parse(text);
        REQUIRE_MESSAGE(a.ok(), text);
        CHECK_MESSAGE(a->is_loopback() == loopback, text);
        CHECK_MESSAGE(a->is_wildcard() == wildcard, text);
    };
    is("127.0.0.1:1", true, false);
    is("127.8.9.10:1", true, false);
    is("[::1]:1", true, false);
    is("[::ffff:127.0.0.1]:1", true, false);
    is("0.0.0.0:1", false, true);
    is("*:1", false, true);
    is("[::]:1", false, true);
    is("10.0.0.1:1", false, false);
    is("[::ffff:10.0.0.1]:1", false, false);
    CHECK(SocketAddress::parse("127.0.0.1:1")->same_host(*SocketAddress::parse("127.0.0.1:2")));
    CHECK(!SocketAddress::parse("127.0.0.1:1")->same_host(*SocketAddress::parse("[::1]:1")));
    CHECK(SocketAddress::parse("[::1]:1")->same_host(*SocketAddress::parse("[0::1]:2")));
}

}  // namespace torii
