#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <string>

#include "core/net/proxy_protocol.h"

using namespace torii;

static ProxyHeader parse(const std::string &bytes) {
    return parse_proxy_header(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
}

static const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: command byte, family byte, then the address block as given.
static std::string v2(uint8_t ver_cmd, uint8_t family, const std::string &block) {
    std::string out = kSig;
    out += static_cast<char>(ver_cmd);
    out += static_cast<char>(family);
    out += static_cast<char>(block.size() >> 8);
    out += static_cast<char>(block.size() & 0xff);
    return out + block;
}

static const std::string kV4Block(
    "\xc0\x00\x02\x01"   // 192.0.2.1
    "\xc6\x33\x64\x01"   // 198.51.100.1
    "\xdc\x04\x01\xbb",  // 56324, 443
    12);

TEST_CASE("PROXY v1 TCP4 and TCP6 give the client's address, followed bytes untouched") {
    std::string line = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
    ProxyHeader h = parse(line + "GET / HTTP/1.1\r\n");
    REQUIRE(h.status == ProxyParse::done);
    CHECK(h.length == line.size());
    CHECK(h.has_addresses);
    CHECK(h.source.to_string() == "192.0.2.1:56324");
    CHECK(h.destination.to_string() == "198.51.100.1:443");

    h = parse("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
    REQUIRE(h.status == ProxyParse::done);
    CHECK(h.source.to_string() == "[2001:db8::1]:1");
    CHECK(h.destination.to_string() == "[2001:db8::2]:65535");
    // Port 0 is a valid value on the wire.
    CHECK(parse("PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n").status == ProxyParse::done);
}

TEST_CASE("PROXY v1 UNKNOWN keeps the real peer, whatever follows it on the line") {
    for (std::string line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 junk 1 2\r\n"}) {
        ProxyHeader h = parse(line);
        CHECK(h.status == ProxyParse::done);
        CHECK(h.length == line.size());
        CHECK_FALSE(h.has_addresses);
    }
    CHECK(parse("PROXY UNKNOWNX\r\n").status == ProxyParse::invalid);
}

TEST_CASE("PROXY v1 prefixes are incomplete, not invalid") {
    std::string line = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
    for (size_t n = 1; n < line.size(); ++n) {
        CAPTURE(n);
        CHECK(parse(line.substr(0, n)).status == ProxyParse::incomplete);
    }
}

TEST_CASE("malformed PROXY v1 lines are invalid") {
    const char *bad[] = {
        "GET / HTTP/1.1\r\n",                      // no header at all
        "PROXY\r\n",                               // no space after PROXY
        "PROXY \r\n",                              // no protocol
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      // lower case
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",      // unknown protocol
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",        // LF without CR
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",        // a field missing
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",    // a field too many
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",     // trailing space
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",     // two spaces
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",    // bad IPv4
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",        // short IPv4
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",          // IPv6 in TCP4
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",          // IPv4 in TCP6
        "PROXY TCP6 2001:db8::g ::1 1 2\r\n",      // bad IPv6
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  // port out of range
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",     // signed port
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",    // leading zero
        "PROXY TCP4 1.2.3.4 5.6.7.8 1x 2\r\n",     // not a number
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",    // CR inside
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",     // control character
    };
    for (const char *line : bad) {
        CAPTURE(line);
        ProxyHeader h = parse(line);
        CHECK(h.status == ProxyParse::invalid);
        CHECK(h.error != nullptr);
    }
    // A control character is refused before the line ends, too.
    CHECK(parse("PROXY TCP4\x01").status == ProxyParse::invalid);
}

TEST_CASE("a PROXY v1 line longer than 107 bytes is invalid, 107 is the limit") {
    // The longest legal line: TCP6 with two full-length addresses and 5-digit ports.
    std::string longest =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    REQUIRE(longest.size() == 104);
    CHECK(parse(longest).status == ProxyParse::done);
    std::string over = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";  // 107: the limit
    REQUIRE(over.size() == 107);
    CHECK(parse(over).status == ProxyParse::done);
    over = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";  // 108
    CHECK(parse(over).status == ProxyParse::invalid);
    // Without any LF after 107 bytes it is refused without waiting for more.
    CHECK(parse("PROXY UNKNOWN " + std::string(93, 'x')).status == ProxyParse::invalid);
    CHECK(parse("PROXY UNKNOWN " + std::string(92, 'x')).status == ProxyParse::incomplete);
}

TEST_CASE("PROXY v2 TCP over IPv4 and IPv6, TLVs skipped") {
    std::string tlv(
        "\x04\x00\x03"
        "abc",
        6);  // a NOOP TLV
    ProxyHeader h = parse(v2(0x21, 0x11, kV4Block + tlv) + "\x16\x03\x01");
    REQUIRE(h.status == ProxyParse::done);
    CHECK(h.length == 16 + 12 + 6);
    CHECK(h.has_addresses);
    CHECK(h.source.to_string() == "192.0.2.1:56324");
    CHECK(h.destination.to_string() == "198.51.100.1:443");

    std::string block(36, '\0');
    block[15] = 1;                                          // ::1
    block[16] = '\x20', block[17] = '\x01', block[31] = 2;  // 2001::2
    block[32] = '\x00', block[33] = '\x50';                 // 80
    block[34] = '\x01', block[35] = '\xbb';                 // 443
    h = parse(v2(0x21, 0x21, block));
    REQUIRE(h.status == ProxyParse::done);
    CHECK(h.source.to_string() == "[::1]:80");
    CHECK(h.destination.to_string() == "[2001::2]:443");
}

TEST_CASE("PROXY v2 LOCAL and address-less families keep the real peer") {
    ProxyHeader h = parse(v2(0x20, 0x00, ""));
    REQUIRE(h.status == ProxyParse::done);
    CHECK(h.length == 16);
    CHECK_FALSE(h.has_addresses);
    // LOCAL ignores whatever block it carries.
    h = parse(v2(0x20, 0x11, kV4Block));
    CHECK(h.status == ProxyParse::done);
    CHECK_FALSE(h.has_addresses);
    for (uint8_t family : {0x00, 0x12, 0x22, 0x31, 0x32}) {
        CAPTURE(family);
        h = parse(v2(0x21, family, std::string(216, 'u')));
        CHECK(h.status == ProxyParse::done);
        CHECK_FALSE(h.has_addresses);
    }
}

TEST_CASE("malformed PROXY v2 headers are invalid") {
    std::string bad_sig = v2(0x21, 0x11, kV4Block);
    bad_sig[7] = 'X';
    CHECK(parse(bad_sig).status == ProxyParse::invalid);
    CHECK(parse(v2(0x11, 0x11, kV4Block)).status == ProxyParse::invalid);  // version 1
    CHECK(parse(v2(0x31, 0x11, kV4Block)).status == ProxyParse::invalid);  // version 3
    CHECK(parse(v2(0x22, 0x11, kV4Block)).status == ProxyParse::invalid);  // command 2
    CHECK(parse(v2(0x21, 0x13, kV4Block)).status == ProxyParse::invalid);  // transport 3
    CHECK(parse(v2(0x21, 0x41, kV4Block)).status == ProxyParse::invalid);  // family 4
    // Length fields too short for the family's addresses.
    CHECK(parse(v2(0x21, 0x11, kV4Block.substr(0, 11))).status == ProxyParse::invalid);
    CHECK(parse(v2(0x21, 0x21, std::string(35, '\0'))).status == ProxyParse::invalid);
    CHECK(parse(v2(0x21, 0x21, kV4Block)).status == ProxyParse::invalid);  // IPv4 block as IPv6
}

TEST_CASE("truncated PROXY v2 headers are incomplete at every length") {
    std::string whole = v2(0x21, 0x11, kV4Block + std::string("\x04\x00\x01z", 4));
    for (size_t n = 1; n < whole.size(); ++n) {
        CAPTURE(n);
        CHECK(parse(whole.substr(0, n)).status == ProxyParse::incomplete);
    }
    CHECK(parse(whole).status == ProxyParse::done);
}

TEST_CASE("bytes owed never reach past a header") {
    std::string v1 = "PROXY UNKNOWN\r\nGET";
    CHECK(proxy_header_bytes_owed(reinterpret_cast<const uint8_t *>(v1.data()), 0) == 15);
    CHECK(proxy_header_bytes_owed(reinterpret_cast<const uint8_t *>(v1.data()), 15) == 0);
    std::string h = v2(0x21, 0x11, kV4Block);
    auto *p = reinterpret_cast<const uint8_t *>(h.data());
    CHECK(proxy_header_bytes_owed(p, 15) == 1);
    CHECK(proxy_header_bytes_owed(p, 16) == 12);
    CHECK(proxy_header_bytes_owed(p, 20) == 8);
}

TEST_CASE("the reader takes exactly the header off a socket, in pieces") {
    for (std::string header : {std::string("PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"),
                               v2(0x21, 0x11, kV4Block + std::string(300, '\0'))}) {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        ProxyHeaderReader reader;
        std::string rest = "\x16rest";
        std::string all = header + rest;
        // Three pieces, the reader called after each one.
        size_t cut1 = 3, cut2 = header.size() - 2;
        REQUIRE(write(sv[1], all.data(), cut1) == static_cast<ssize_t>(cut1));
        CHECK(reader.read(sv[0]) == ProxyHeaderReader::Step::again);
        REQUIRE(write(sv[1], all.data() + cut1, cut2 - cut1) == static_cast<ssize_t>(cut2 - cut1));
        CHECK(reader.read(sv[0]) == ProxyHeaderReader::Step::again);
        REQUIRE(write(sv[1], all.data() + cut2, all.size() - cut2) ==
                static_cast<ssize_t>(all.size() - cut2));
        REQUIRE(reader.read(sv[0]) == ProxyHeaderReader::Step::done);
        CHECK(reader.header().source.to_string() == "192.0.2.1:56324");
        char left[64];
        CHECK(read(sv[0], left, sizeof left) == static_cast<ssize_t>(rest.size()));
        CHECK(std::string(left, rest.size()) == rest);
        close(sv[0]);
        close(sv[1]);
    }
}

TEST_CASE("the reader reports garbage and a peer that leaves") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    ProxyHeaderReader reader;
    REQUIRE(write(sv[1], "GET / HTTP/1.1\r\n", 16) == 16);
    CHECK(reader.read(sv[0]) == ProxyHeaderReader::Step::invalid);
    close(sv[0]);
    close(sv[1]);

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    ProxyHeaderReader half;
    REQUIRE(write(sv[1], "PROXY TCP4 1.2", 14) == 14);
    close(sv[1]);
    CHECK(half.read(sv[0]) == ProxyHeaderReader::Step::closed);
    close(sv[0]);
}

TEST_CASE("headers torii sends parse back to the same addresses") {
    auto v4 = SocketAddress::parse("192.0.2.1:56324").value();
    auto v4b = SocketAddress::parse("198.51.100.1:443").value();
    auto v6 = SocketAddress::parse("[2001:db8::1]:8080").value();
    CHECK(format_proxy_header_v1(v4, v4b) == "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n");
    CHECK(format_proxy_header_v1(v6, v4b) ==
          "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.1 8080 443\r\n");
    ProxyHeader p1 = parse(format_proxy_header_v1(v6, v4b));
    REQUIRE(p1.status == ProxyParse::done);
    CHECK(p1.source.to_string() == "[2001:db8::1]:8080");
    // Not IP (a Unix socket): UNKNOWN / UNSPEC, which receivers accept without addresses.
    SocketAddress unix_addr;
    unix_addr.storage.ss_family = AF_UNIX;
    CHECK(format_proxy_header_v1(unix_addr, v4b) == "PROXY UNKNOWN\r\n");
    ProxyHeader unspec = parse(format_proxy_header_v2(unix_addr, v4b));
    CHECK(unspec.status == ProxyParse::done);
    CHECK_FALSE(unspec.has_addresses);
    ProxyHeader p = parse(format_proxy_header_v2(v6, v4b));
    CHECK(p.source.to_string() == "[2001:db8::1]:8080");
    CHECK(p.destination.to_string() == "[::ffff:198.51.100.1]:443");
    p = parse(format_proxy_header_v2(v4, v4b));
    CHECK(p.source.to_string() == "192.0.2.1:56324");
    CHECK(p.destination.to_string() == "198.51.100.1:443");
}

TEST_CASE("mutated headers: the parser never claims bytes it was not given") {
    // A cheap stand-in for a fuzzer (run under the sanitizers): valid headers with bytes
    // flipped, cut or appended must never read out of bounds or report a length beyond the
    // input, and a whole header must parse the same on its own.
    const std::string seeds[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
        "PROXY UNKNOWN\r\n",
        v2(0x21, 0x11, kV4Block + std::string("\x04\x00\x01z", 4)),
        v2(0x20, 0x00, ""),
        v2(0x21, 0x21, std::string(36, '\x01')),
    };
    uint64_t state = 0x9e3779b97f4a7c15ull;
    auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    for (int i = 0; i < 50000; ++i) {
        std::string s = seeds[next() % std::size(seeds)];
        int edits = 1 + static_cast<int>(next() % 3);
        for (int e = 0; e < edits && !s.empty(); ++e) {
            size_t at = next() % s.size();
            switch (next() % 3) {
                case 0:
                    s[at] = static_cast<char>(next());
                    break;
                case 1:
                    s.resize(at);
                    break;
                default:
                    s.insert(at, 1, static_cast<char>(next()));
                    break;
            }
        }
        // An exact-size heap copy, so any read past the end is caught by ASan.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[s.size() + 1]);
        std::memcpy(buf.get(), s.data(), s.size());
        ProxyHeader h = parse_proxy_header(buf.get(), s.size());
        if (h.status == ProxyParse::done) {
            REQUIRE(h.length > 0);
            REQUIRE(h.length <= s.size());
            ProxyHeader alone = parse_proxy_header(buf.get(), h.length);
            REQUIRE(alone.status == ProxyParse::done);
            REQUIRE(alone.length == h.length);
        } else if (h.status == ProxyParse::invalid) {
            REQUIRE(h.error != nullptr);
        }
        size_t owed = proxy_header_bytes_owed(buf.get(), s.size());
        if (h.status == ProxyParse::done) CHECK(owed == 0);
    }
}
