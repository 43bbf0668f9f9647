#include "modules/discovery/dns_packet.h"

#include <arpa/inet.h>

#include <cstring>

namespace torii::dns {

namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameOctets = 255;  // RFC 1035 2.3.4, length octets and the root included
constexpr size_t kMaxLabel = 63;

uint16_t get16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t get32(const uint8_t *p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
void put16(std::vector<uint8_t> &out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

// Names are compared and passed on as text, so a byte that would change their meaning as text
// (a dot inside a label, a backslash, a space or a control byte) makes the name unusable.
bool name_byte_ok(uint8_t c) {
    return c > 0x20 && c < 0x7f && c != '.' && c != '\\';
}

char lower(uint8_t c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

// Reads the (possibly compressed) name at `pos` into `out`, then moves `pos` past the name's
// bytes in place (after its first pointer, if any). A pointer must point below every offset
// this name has been read from so far: real encoders only point back to names written
// earlier, and with the bound strictly falling no sequence of pointers can loop.
const char *read_name(const uint8_t *p, size_t size, size_t &pos, std::string &out) {
    out.clear();
    size_t at = pos;
    size_t floor = pos;
    size_t end = 0;  // where the name ends in place, once a pointer was followed
    size_t octets = 1;
    for (;;) {
        if (at >= size) return "name runs past the end";
        uint8_t len = p[at];
        if ((len & 0xc0) == 0xc0) {
            if (size - at < 2) return "name runs past the end";
            size_t target = size_t(len & 0x3f) << 8 | p[at + 1];
            if (target >= floor) return "compression pointer does not point backwards";
            if (end == 0) end = at + 2;
            at = floor = target;
            continue;
        }
        if (len > kMaxLabel) return "unknown label type";
        if (len == 0) break;
        if (size - at - 1 < len) return "name runs past the end";
        octets += len + 1u;
        if (octets > kMaxNameOctets) return "name longer than 255 octets";
        if (!out.empty()) out += '.';
        for (size_t i = 1; i <= len; ++i) {
            if (!name_byte_ok(p[at + i])) return "unsupported character in name";
            out += lower(p[at + i]);
        }
        at += 1 + len;
    }
    pos = end ? end : at + 1;
    return nullptr;
}

// One resource record at `pos`; `keep` tells whether it is a class IN A, AAAA or SRV record
// (anything else is skipped whole, its data unread).
const char *read_record(const uint8_t *p, size_t size, size_t &pos, Record &rr, bool &keep) {
    keep = false;
    if (const char *e = read_name(p, size, pos, rr.name)) return e;
    if (size - pos < 10) return "record runs past the end";
    uint16_t type = get16(p + pos);
    uint16_t klass = get16(p + pos + 2);
    uint32_t ttl = get32(p + pos + 4);
    uint16_t rdlength = get16(p + pos + 8);
    pos += 10;
    if (size - pos < rdlength) return "record data runs past the end";
    size_t rdata = pos;
    pos += rdlength;
    if (klass != kClassIn) return nullptr;
    rr.type = type;
    rr.ttl = ttl > 0x7fffffff ? 0 : ttl;
    if (type == kTypeA) {
        if (rdlength != 4) return "A record of the wrong size";
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        std::memcpy(&sin.sin_addr, p + rdata, 4);
        rr.address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&sin), sizeof sin);
        keep = true;
    } else if (type == kTypeAaaa) {
        if (rdlength != 16) return "AAAA record of the wrong size";
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        std::memcpy(&sin6.sin6_addr, p + rdata, 16);
        rr.address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&sin6), sizeof sin6);
        keep = true;
    } else if (type == kTypeSrv) {
        if (rdlength < 7) return "SRV record too short";
        rr.priority = get16(p + rdata);
        rr.weight = get16(p + rdata + 2);
        rr.port = get16(p + rdata + 4);
        size_t at = rdata + 6;
        if (const char *e = read_name(p, size, at, rr.target)) return e;
        if (at != pos) return "SRV target does not fit its record";
        keep = true;
    }
    return nullptr;
}

}  // namespace

std::string normalize_name(std::string_view name) {
    if (name.ends_with('.')) name.remove_suffix(1);
    std::string out;
    out.reserve(name.size());
    for (char c : name)
        out += lower(static_cast<uint8_t>(c));
    return out;
}

Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t type) {
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty()) return make_error("empty name");
    std::vector<uint8_t> out;
    out.reserve(kHeaderSize + name.size() + 2 + 4 + 11);
    put16(out, id);
    put16(out, 0x0100);  // a standard query, recursion desired
    put16(out, 1);       // one question
    put16(out, 0);
    put16(out, 0);
    put16(out, 1);  // the OPT record
    size_t octets = 1;
    while (true) {
        size_t dot = name.find('.');
        std::string_view label = name.substr(0, dot);
        if (label.empty()) return make_error("empty label in \"" + std::string(name) + "\"");
        if (label.size() > kMaxLabel) return make_error("label longer than 63 octets");
        octets += label.size() + 1;
        if (octets > kMaxNameOctets) return make_error("name longer than 255 octets");
        out.push_back(static_cast<uint8_t>(label.size()));
        for (char c : label) {
            if (!name_byte_ok(static_cast<uint8_t>(c)))
                return make_error("unsupported character in name");
            out.push_back(static_cast<uint8_t>(c));
        }
        if (dot == std::string_view::npos) break;
        name.remove_prefix(dot + 1);
    }
    out.push_back(0);
    put16(out, type);
    put16(out, kClassIn);
    // EDNS0 (RFC 6891): root owner, type OPT, the UDP payload we read as its class, extended
    // rcode/version/flags 0, no options. Without it a server stops at 512 bytes.
    out.push_back(0);
    put16(out, kTypeOpt);
    put16(out, kMaxUdpPayload);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    return out;
}

Result<Message> parse_response(const uint8_t *p, size_t size) {
    if (size < kHeaderSize) return make_error("shorter than a DNS header");
    Message m;
    m.id = get16(p);
    uint16_t flags = get16(p + 2);
    uint16_t questions = get16(p + 4);
    uint16_t answers = get16(p + 6);
    uint16_t authority = get16(p + 8);
    uint16_t additional = get16(p + 10);
    if (!(flags & 0x8000)) return make_error("not a response");
    if ((flags >> 11 & 0xf) != 0) return make_error("not an answer to a standard query");
    m.rcode = flags & 0xf;
    m.truncated = flags & 0x0200;
    if (questions != 1)
        return make_error("expected one question, found " + std::to_string(questions));
    size_t pos = kHeaderSize;
    if (const char *e = read_name(p, size, pos, m.question)) return make_error(e);
    if (size - pos < 4) return make_error("question runs past the end");
    m.question_type = get16(p + pos);
    if (get16(p + pos + 2) != kClassIn) return make_error("question not of class IN");
    pos += 4;
    // What follows a truncated answer may be cut anywhere; the caller gives up on it anyway.
    if (m.truncated) return m;
    auto section = [&](uint16_t count, std::vector<Record> *into) -> const char * {
        for (uint16_t i = 0; i < count; ++i) {
            Record rr;
            bool keep = false;
            if (const char *e = read_record(p, size, pos, rr, keep)) return e;
            if (keep && into && (into == &m.answers || rr.type != kTypeSrv))
                into->push_back(std::move(rr));
        }
        return nullptr;
    };
    if (const char *e = section(answers, &m.answers)) return make_error(e);
    if (const char *e = section(authority, nullptr)) return make_error(e);
    if (const char *e = section(additional, &m.additional)) return make_error(e);
    return m;
}

}  // namespace torii::dns
