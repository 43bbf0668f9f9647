// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header an L4
// balancer puts in front of a TCP stream to say whom the connection really comes from,
// and the same header torii sends to targets that want to know.
//
//   v1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", at most 107 bytes
//       "PROXY UNKNOWN ...\r\n" (the sender does not know: use the real peer)
//   v2: 12-byte signature, version/command, family/transport, 16-bit length, addresses,
//       then TLVs (skipped); the LOCAL command (health checks) carries no client
//
// The parser is a pure function over the bytes received so far, so it can be unit-tested
// and fuzzed without a socket; the reader around it takes exactly the header's bytes off
// a non-blocking fd, never one more: what follows is a TLS ClientHello or an HTTP request,
// and belongs to the next stage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/base/socket_address.h"

namespace torii {

// The longest v1 line, CRLF included (the specification's bound).
inline constexpr size_t kProxyV1MaxLine = 107;
// The fixed part of a v2 header: signature, version/command, family, length.
inline constexpr size_t kProxyV2Fixed = 16;

enum class ProxyParse {
    incomplete,  // a valid beginning: more bytes are needed
    done,        // a whole header of `length` bytes
    invalid,     // not a PROXY header, or a malformed one: close the connection
};

struct ProxyHeader {
    ProxyParse status = ProxyParse::incomplete;
    size_t length = 0;            // bytes of the whole header (done only)
    bool has_addresses = false;   // false: LOCAL, UNKNOWN or an unsupported family
    SocketAddress source;         // the client, when has_addresses
    SocketAddress destination;    // where the client connected to, when has_addresses
    const char *error = nullptr;  // why invalid, for the log
};

// Parses the start of a connection. Never reads past `n`; a header followed by other
// bytes is `done` with its own length.
ProxyHeader parse_proxy_header(const uint8_t *data, size_t n);

// How many more bytes certainly belong to the header whose first `n` bytes are given:
// reading that many can never take a byte of what follows it. 0 means the length is not
// known yet (a v1 line before its LF): look ahead with MSG_PEEK for the LF.
size_t proxy_header_bytes_owed(const uint8_t *data, size_t n);

// Reads a PROXY header off a non-blocking socket, a little at a time as it arrives.
class ProxyHeaderReader {
public:
    enum class Step {
        again,    // wait for the fd to be readable again
        done,     // header() is complete; the fd is positioned right after it
        invalid,  // header().error says why
        closed,   // the peer closed or the read failed before a whole header
    };
    Step read(int fd);
    const ProxyHeader &header() const { return header_; }

private:
    std::string buf_;  // the header's bytes so far (v2 TLVs make it up to 64 KiB)
    ProxyHeader header_;
};

// The header torii sends to a target for a client `source` that connected to
// `destination`. Mixed families are sent as IPv6 (an IPv4 address mapped); anything else
// than IP becomes "UNKNOWN" (v1) or the UNSPEC family (v2).
std::string format_proxy_header_v1(const SocketAddress &source, const SocketAddress &destination);
std::string format_proxy_header_v2(const SocketAddress &source, const SocketAddress &destination);

}  // namespace torii
