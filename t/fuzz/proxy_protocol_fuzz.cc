// The PROXY protocol header (core/net/proxy_protocol.cc), v1 and v2, as a balancer sends it
// at the start of a connection: the parser, and the reader that takes the header off a
// socket without ever taking a byte of what follows it (a TLS ClientHello or a request).
//
// Input: the bytes the balancer sends. Checked: a header the parser accepts is accepted
// alike when given alone; every shorter prefix of it is incomplete, and the bytes the reader
// is told it owes never run past its end; the reader, over a real socketpair, stops exactly
// at the header's end; an accepted address formats back (v1 and v2) into a header that
// parses to the same address.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/net/proxy_protocol.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

// More than the largest v2 header (16 + 65535): a socketpair holds it without blocking.
constexpr size_t kMaxInput = 70 * 1024;

ProxyHeader parse(std::string_view s) {
    return parse_proxy_header(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

void check_prefixes(std::string_view bytes, size_t length) {
    // Every prefix of a header is incomplete, and what it says is owed stays inside it.
    // All short prefixes and a few long ones (v2 headers run to 64 KiB).
    for (size_t k = 0; k < length; k = k < 40 ? k + 1 : k + 1 + length / 8) {
        ProxyHeader h = parse(bytes.substr(0, k));
        FUZZ_CHECK(h.status == ProxyParse::incomplete);
        size_t owed = proxy_header_bytes_owed(reinterpret_cast<const uint8_t *>(bytes.data()), k);
        FUZZ_CHECK(k + owed <= length);
    }
}

void check_round_trip(const ProxyHeader &h) {
    if (!h.has_addresses) return;
    for (const std::string &again : {format_proxy_header_v1(h.source, h.destination),
                                     format_proxy_header_v2(h.source, h.destination)}) {
        ProxyHeader back = parse(again);
        FUZZ_CHECK(back.status == ProxyParse::done);
        FUZZ_CHECK(back.length == again.size());
        FUZZ_CHECK(back.has_addresses);
        FUZZ_CHECK(back.source.to_string() == h.source.to_string());
        FUZZ_CHECK(back.destination.to_string() == h.destination.to_string());
    }
}

// The reader on a socket holding `bytes` (the writer closed): it must stop at the header.
void check_reader(std::string_view bytes, const ProxyHeader &whole) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return;
    int size = static_cast<int>(kMaxInput * 2);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(sv[0], bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
    }
    ::shutdown(sv[0], SHUT_WR);
    if (sent == bytes.size()) {
        ProxyHeaderReader reader;
        ProxyHeaderReader::Step step = ProxyHeaderReader::Step::again;
        for (int i = 0; i < 64 && step == ProxyHeaderReader::Step::again; ++i)
            step = reader.read(sv[1]);
        if (whole.status == ProxyParse::done) {
            FUZZ_CHECK(step == ProxyHeaderReader::Step::done);
            FUZZ_CHECK(reader.header().length == whole.length);
            // What is left on the socket is exactly what followed the header.
            std::string left(bytes.size() + 1, '\0');
            ssize_t n = ::recv(sv[1], left.data(), left.size(), 0);
            left.resize(n > 0 ? static_cast<size_t>(n) : 0);
            FUZZ_CHECK(left == bytes.substr(whole.length));
        } else if (whole.status == ProxyParse::incomplete) {
            FUZZ_CHECK(step == ProxyHeaderReader::Step::closed);
        } else {
            FUZZ_CHECK(step != ProxyHeaderReader::Step::done);
        }
    }
    ::close(sv[0]);
    ::close(sv[1]);
}

}  // namespace

int torii_fuzz_proxy_protocol(const uint8_t *data, size_t size) {
    if (size > kMaxInput) return 0;
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    ProxyHeader h = parse(bytes);
    if (h.status == ProxyParse::done) {
        FUZZ_CHECK(h.length > 0 && h.length <= size);
        ProxyHeader alone = parse(bytes.substr(0, h.length));
        FUZZ_CHECK(alone.status == ProxyParse::done && alone.length == h.length);
        FUZZ_CHECK(alone.has_addresses == h.has_addresses);
        check_prefixes(bytes, h.length);
        check_round_trip(h);
    } else if (h.status == ProxyParse::invalid) {
        FUZZ_CHECK(h.error != nullptr);
    }
    check_reader(bytes, h);
    return 0;
}
