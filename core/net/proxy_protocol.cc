#include "core/net/proxy_protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

#include <cstring>
#include <string_view>

namespace torii {

namespace {

constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";
// The shortest valid headers: "PROXY UNKNOWN\r\n" (15) and a v2 header without addresses
// (16). Reading 15 bytes blindly can therefore never take a byte that follows a header.
constexpr size_t kShortestHeader = 15;

// v2 address block sizes (section 2.2): IPv4 4+4+2+2, IPv6 16+16+2+2.
constexpr size_t kV2Inet = 12;
constexpr size_t kV2Inet6 = 36;

ProxyHeader invalid(const char *why) {
    ProxyHeader h;
    h.status = ProxyParse::invalid;
    h.error = why;
    return h;
}

bool is_prefix_of(const uint8_t *data, size_t n, const void *whole, size_t whole_len) {
    return std::memcmp(data, whole, n < whole_len ? n : whole_len) == 0;
}

SocketAddress make_address(int family, const void *addr, uint16_t port_network) {
    SocketAddress out;
    if (family == AF_INET) {
        auto *sin = reinterpret_cast<sockaddr_in *>(&out.storage);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, addr, 4);
        sin->sin_port = port_network;
        out.length = sizeof(sockaddr_in);
    } else {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&out.storage);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, addr, 16);
        sin6->sin6_port = port_network;
        out.length = sizeof(sockaddr_in6);
    }
    return out;
}

// A v1 port: decimal 0..65535, no sign, no leading zero (strict: one spelling per value).
bool parse_v1_port(std::string_view text, uint16_t *out) {
    if (text.empty() || text.size() > 5) return false;
    if (text.size() > 1 && text[0] == '0') return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return false;
    *out = static_cast<uint16_t>(value);
    return true;
}

// The next space-separated field of a v1 line; exactly one space between fields.
bool next_field(std::string_view &rest, std::string_view *field) {
    size_t sp = rest.find(' ');
    *field = rest.substr(0, sp);
    if (field->empty()) return false;
    if (sp == std::string_view::npos) {
        rest = {};
        return true;
    }
    rest = rest.substr(sp + 1);
    return !rest.empty();  // a trailing space before the CRLF is malformed too
}

ProxyHeader parse_v1(const uint8_t *data, size_t n) {
    const char *text = reinterpret_cast<const char *>(data);
    size_t limit = n < kProxyV1MaxLine ? n : kProxyV1MaxLine;
    const void *lf = std::memchr(text, '\n', limit);
    if (!lf) {
        if (n >= kProxyV1MaxLine) return invalid("PROXY v1 line longer than 107 bytes");
        // Only printable ASCII and the final CR may come before the LF.
        for (size_t i = 0; i < n; ++i) {
            auto c = static_cast<unsigned char>(text[i]);
            if ((c < 0x20 || c > 0x7e) && !(c == '\r' && i == n - 1))
                return invalid("PROXY v1 line with a control character");
        }
        return {};
    }
    size_t length = static_cast<size_t>(static_cast<const char *>(lf) - text) + 1;
    if (length < 2 || text[length - 2] != '\r') return invalid("PROXY v1 line not ended by CRLF");
    std::string_view line(text + kV1Prefix.size(), length - 2 - kV1Prefix.size());
    for (char c : line)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
            return invalid("PROXY v1 line with a control character");

    ProxyHeader h;
    h.status = ProxyParse::done;
    h.length = length;
    // "UNKNOWN": the sender could not tell; whatever follows is to be ignored (spec 2.1).
    if (line.starts_with("UNKNOWN") && (line.size() == 7 || line[7] == ' ')) return h;
    std::string_view proto;
    std::string_view rest = line;
    if (!next_field(rest, &proto)) return invalid("PROXY v1 line without a protocol");
    int family;
    if (proto == "TCP4")
        family = AF_INET;
    else if (proto == "TCP6")
        family = AF_INET6;
    else
        return invalid("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");

    std::string_view src, dst, sport, dport;
    if (!next_field(rest, &src) || !next_field(rest, &dst) || !next_field(rest, &sport) ||
        !next_field(rest, &dport) || !rest.empty())
        return invalid("PROXY v1 line does not have four address fields");
    uint8_t src_bin[16], dst_bin[16];
    char buf[64];
    auto to_binary = [&](std::string_view a, uint8_t *out) {
        if (a.size() >= sizeof buf) return false;
        std::memcpy(buf, a.data(), a.size());
        buf[a.size()] = '\0';
        return inet_pton(family, buf, out) == 1;
    };
    if (!to_binary(src, src_bin) || !to_binary(dst, dst_bin))
        return invalid(family == AF_INET ? "PROXY v1 bad IPv4 address"
                                         : "PROXY v1 bad IPv6 address");
    uint16_t sp, dp;
    if (!parse_v1_port(sport, &sp) || !parse_v1_port(dport, &dp))
        return invalid("PROXY v1 bad port");
    h.has_addresses = true;
    h.source = make_address(family, src_bin, htons(sp));
    h.destination = make_address(family, dst_bin, htons(dp));
    return h;
}

ProxyHeader parse_v2(const uint8_t *data, size_t n) {
    if (n < kProxyV2Fixed) return {};
    uint8_t version = data[12] >> 4, command = data[12] & 0x0f;
    if (version != 2) return invalid("PROXY v2 header with another version");
    if (command > 1) return invalid("PROXY v2 header with an unknown command");
    uint8_t family = data[13];
    switch (family) {
        case 0x00:  // UNSPEC
        case 0x11:  // TCP over IPv4
        case 0x12:  // UDP over IPv4
        case 0x21:  // TCP over IPv6
        case 0x22:  // UDP over IPv6
        case 0x31:  // UNIX stream
        case 0x32:  // UNIX datagram
            break;
        default:
            return invalid("PROXY v2 header with an unknown address family");
    }
    size_t len = static_cast<size_t>(data[14]) << 8 | data[15];
    if (command == 1) {  // PROXY: the block must hold the addresses the family announces
        if ((family == 0x11 && len < kV2Inet) || (family == 0x21 && len < kV2Inet6))
            return invalid("PROXY v2 address block shorter than its family needs");
    }
    if (n < kProxyV2Fixed + len) return {};
    ProxyHeader h;
    h.status = ProxyParse::done;
    h.length = kProxyV2Fixed + len;
    // LOCAL (a health check by the balancer itself) and the families torii cannot use keep
    // the connection's own addresses; TLVs after the addresses are skipped.
    if (command == 0 || (family != 0x11 && family != 0x21)) return h;
    const uint8_t *a = data + kProxyV2Fixed;
    int af = family == 0x11 ? AF_INET : AF_INET6;
    size_t size = af == AF_INET ? 4 : 16;
    uint16_t sport, dport;
    std::memcpy(&sport, a + 2 * size, 2);
    std::memcpy(&dport, a + 2 * size + 2, 2);
    h.has_addresses = true;
    h.source = make_address(af, a, sport);
    h.destination = make_address(af, a + size, dport);
    return h;
}

}  // namespace

ProxyHeader parse_proxy_header(const uint8_t *data, size_t n) {
    if (n == 0) return {};
    if (data[0] == kV1Prefix[0]) {
        if (!is_prefix_of(data, n, kV1Prefix.data(), kV1Prefix.size()))
            return invalid("not a PROXY protocol header");
        if (n <= kV1Prefix.size()) return {};
        return parse_v1(data, n);
    }
    if (!is_prefix_of(data, n, kV2Signature, sizeof kV2Signature))
        return invalid("not a PROXY protocol header");
    return parse_v2(data, n);
}

size_t proxy_header_bytes_owed(const uint8_t *data, size_t n) {
    if (n < kShortestHeader) return kShortestHeader - n;
    if (data[0] == kV1Prefix[0]) return 0;  // v1: up to the LF, wherever it is
    if (n < kProxyV2Fixed) return kProxyV2Fixed - n;
    size_t total = kProxyV2Fixed + (static_cast<size_t>(data[14]) << 8 | data[15]);
    return total > n ? total - n : 0;
}

ProxyHeaderReader::Step ProxyHeaderReader::read(int fd) {
    for (;;) {
        header_ = parse_proxy_header(reinterpret_cast<const uint8_t *>(buf_.data()), buf_.size());
        if (header_.status == ProxyParse::done) return Step::done;
        if (header_.status == ProxyParse::invalid) return Step::invalid;
        const auto *data = reinterpret_cast<const uint8_t *>(buf_.data());
        size_t owed = proxy_header_bytes_owed(data, buf_.size());
        char chunk[kProxyV1MaxLine];
        ssize_t got;
        if (owed == 0) {
            // A v1 line: look ahead for its LF and take the bytes up to it, no further.
            size_t room = kProxyV1MaxLine - buf_.size();  // parse() refused longer lines
            got = ::recv(fd, chunk, room, MSG_PEEK);
            if (got > 0) {
                const void *lf = std::memchr(chunk, '\n', static_cast<size_t>(got));
                size_t take = lf ? static_cast<size_t>(static_cast<const char *>(lf) - chunk) + 1
                                 : static_cast<size_t>(got);
                got = ::recv(fd, chunk, take, 0);  // what the peek saw is there
            }
            if (got > 0) buf_.append(chunk, static_cast<size_t>(got));
        } else {
            size_t at = buf_.size();
            buf_.resize(at + owed);
            got = ::recv(fd, buf_.data() + at, owed, 0);
            buf_.resize(at + (got > 0 ? static_cast<size_t>(got) : 0));
        }
        if (got == 0) return Step::closed;
        if (got < 0) return errno == EAGAIN || errno == EINTR ? Step::again : Step::closed;
    }
}

namespace {

// An IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d), for a mixed-family pair.
SocketAddress as_v6(const SocketAddress &a) {
    if (a.family() != AF_INET) return a;
    const auto *sin = reinterpret_cast<const sockaddr_in *>(&a.storage);
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(mapped + 12, &sin->sin_addr, 4);
    return make_address(AF_INET6, mapped, sin->sin_port);
}

bool is_ip(const SocketAddress &a) {
    return a.family() == AF_INET || a.family() == AF_INET6;
}

const void *ip_bytes(const SocketAddress &a) {
    if (a.family() == AF_INET) return &reinterpret_cast<const sockaddr_in *>(&a.storage)->sin_addr;
    return &reinterpret_cast<const sockaddr_in6 *>(&a.storage)->sin6_addr;
}

uint16_t port_network(const SocketAddress &a) {
    if (a.family() == AF_INET) return reinterpret_cast<const sockaddr_in *>(&a.storage)->sin_port;
    return reinterpret_cast<const sockaddr_in6 *>(&a.storage)->sin6_port;
}

}  // namespace

std::string format_proxy_header_v1(const SocketAddress &source, const SocketAddress &destination) {
    if (!is_ip(source) || !is_ip(destination)) return "PROXY UNKNOWN\r\n";
    bool v6 = source.family() == AF_INET6 || destination.family() == AF_INET6;
    SocketAddress src = v6 ? as_v6(source) : source;
    SocketAddress dst = v6 ? as_v6(destination) : destination;
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    int af = v6 ? AF_INET6 : AF_INET;
    inet_ntop(af, ip_bytes(src), s, sizeof s);
    inet_ntop(af, ip_bytes(dst), d, sizeof d);
    char line[160];  // the longest line fits in 107; the compiler cannot know that
    snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", s, d,
             static_cast<unsigned>(src.port()), static_cast<unsigned>(dst.port()));
    return line;
}

std::string format_proxy_header_v2(const SocketAddress &source, const SocketAddress &destination) {
    std::string out(reinterpret_cast<const char *>(kV2Signature), sizeof kV2Signature);
    out += '\x21';  // version 2, PROXY
    if (!is_ip(source) || !is_ip(destination)) {
        out.append("\x00\x00\x00", 3);  // UNSPEC, no address block
        return out;
    }
    bool v6 = source.family() == AF_INET6 || destination.family() == AF_INET6;
    SocketAddress src = v6 ? as_v6(source) : source;
    SocketAddress dst = v6 ? as_v6(destination) : destination;
    size_t size = v6 ? 16 : 4;
    size_t len = v6 ? kV2Inet6 : kV2Inet;
    out += v6 ? '\x21' : '\x11';
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xff);
    out.append(static_cast<const char *>(ip_bytes(src)), size);
    out.append(static_cast<const char *>(ip_bytes(dst)), size);
    uint16_t sp = port_network(src), dp = port_network(dst);
    out.append(reinterpret_cast<const char *>(&sp), 2);
    out.append(reinterpret_cast<const char *>(&dp), 2);
    return out;
}

}  // namespace torii
