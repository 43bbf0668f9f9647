// DNS messages on the wire (RFC 1035 section 4, SRV from RFC 2782, EDNS0 from RFC 6891):
// just enough to ask one question and read the answer. evdns cannot ask for SRV records, so
// the DNS discovery source sends those queries itself (dns_query.h) and reads the
// answers here.
//
// The parser is a pure function over a datagram that anybody on the path may have forged:
// every length is checked against the packet, compression pointers may only point backwards
// (so a pointer loop cannot exist, whatever the bytes say) and a name stops at 255 octets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/base/socket_address.h"

namespace torii::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeSrv = 33;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;

inline constexpr int kNoError = 0;
inline constexpr int kServFail = 2;
inline constexpr int kNxDomain = 3;

// The UDP payload we advertise with EDNS0 and read at most: the 2020 DNS flag day's value,
// which never needs IP fragmentation yet holds a few dozen SRV records.
inline constexpr size_t kMaxUdpPayload = 1232;

struct Record {
    std::string name;  // lower case, no trailing dot ("" is the root)
    uint16_t type = 0;
    uint32_t ttl = 0;  // seconds; a value with the top bit set counts as 0 (RFC 2181 8)
    // A / AAAA
    SocketAddress address;  // port 0
    // SRV
    uint16_t priority = 0;
    uint16_t weight = 0;
    uint16_t port = 0;
    std::string target;  // lower case; "" for "." ("service not offered here")
};

struct Message {
    uint16_t id = 0;
    int rcode = 0;
    bool truncated = false;  // TC: the server had more than fits in one datagram
    std::string question;    // lower case, no trailing dot
    uint16_t question_type = 0;
    // Class IN A, AAAA and SRV records; every other record is skipped (CNAME, OPT, ...).
    std::vector<Record> answers;
    std::vector<Record> additional;
};

// A recursive query for `name` (trailing dot optional) with an EDNS0 OPT record; an error
// when the name cannot be a DNS name (empty label, label over 63 or name over 255 octets).
Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t type);

// A response; an error saying what is wrong with it otherwise (not a response, no single
// question, a record running past the end, a bad name, ...).
Result<Message> parse_response(const uint8_t *data, size_t size);

// "example.com." and "Example.COM" name the same thing.
std::string normalize_name(std::string_view name);

}  // namespace torii::dns
