// Shared by the discovery tests: a sink that writes down what it hears, a loop runner with a
// deadline, and a builder of DNS messages byte by byte.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "modules/discovery/discovery_source.h"
#include "modules/discovery/dns_packet.h"

namespace torii::testing {

// "127.0.0.2:80*1 [::1]:80*3"
inline std::string describe(const std::vector<DiscoveredTarget> &targets) {
    std::string out;
    for (const DiscoveredTarget &t : targets) {
        if (!out.empty()) out += ' ';
        out += t.address.to_string() + "*" + std::to_string(t.weight);
    }
    return out;
}

struct RecordingSink final : DiscoverySink {
    // "list: ..." or "error: ...", in the order heard.
    std::vector<std::string> events;
    void on_targets(std::vector<DiscoveredTarget> targets) override {
        events.push_back("list: " + describe(targets));
    }
    void on_source_error(const std::string &message) override {
        events.push_back("error: " + message);
    }
    std::string last() const { return events.empty() ? "" : events.back(); }
};

// Runs the loop until `done()` or `timeout_ms` passed; false on the timeout.
template <typename Done>
bool run_until(event_base *base, Done done, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    // A ticking timer, so the loop wakes to look at the clock even when nothing happens.
    EventPtr tick(event_new(
        base, -1, EV_PERSIST, [](evutil_socket_t, short, void *) {}, nullptr));
    timeval tv{0, 10'000};
    event_add(tick.get(), &tv);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
}

// Runs the loop for `ms` whatever happens.
inline void run_for(event_base *base, int ms) {
    run_until(
        base, [] { return false; }, ms);
}

// Writes DNS messages by hand, compression pointers included, so a parser or a client can
// be fed exactly the bytes a test means.
struct Packet {
    std::vector<uint8_t> b;

    Packet &u8(unsigned v) {
        b.push_back(uint8_t(v));
        return *this;
    }
    Packet &u16(unsigned v) { return u8(v >> 8).u8(v & 0xff); }
    Packet &u32(uint32_t v) { return u16(v >> 16).u16(v & 0xffff); }
    Packet &bytes(const std::vector<uint8_t> &v) {
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    // Labels, then the root or (ptr >= 0) a pointer to `ptr`.
    Packet &name(const std::string &dotted, int ptr = -1) {
        size_t i = 0;
        while (i < dotted.size()) {
            size_t dot = dotted.find('.', i);
            if (dot == std::string::npos) dot = dotted.size();
            u8(unsigned(dot - i));
            for (size_t k = i; k < dot; ++k)
                u8(uint8_t(dotted[k]));
            i = dot + 1;
        }
        return ptr >= 0 ? u16(0xc000 | unsigned(ptr)) : u8(0);
    }
    Packet &header(unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                   unsigned ar) {
        return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
    }
    // Type, class, TTL and a length for `rdlength` bytes the caller writes next.
    Packet &rr_fixed(unsigned type, unsigned klass, uint32_t ttl, unsigned rdlength) {
        return u16(type).u16(klass).u32(ttl).u16(rdlength);
    }
    // An SRV record owned by the name at `owner`, its target written out whole.
    Packet &srv(int owner, uint32_t ttl, unsigned prio, unsigned weight, unsigned port,
                const std::string &target) {
        unsigned target_octets = target.empty() ? 1 : unsigned(target.size() + 2);
        name("", owner).rr_fixed(dns::kTypeSrv, dns::kClassIn, ttl, 6 + target_octets);
        return u16(prio).u16(weight).u16(port).name(target);
    }
    // An A record owned by the name at `owner` (or written out when owner is < 0).
    Packet &a(int owner, const std::string &owner_name, uint32_t ttl, uint32_t ipv4) {
        name(owner < 0 ? owner_name : "", owner);
        return rr_fixed(dns::kTypeA, dns::kClassIn, ttl, 4).u32(ipv4);
    }
    size_t size() const { return b.size(); }
    Result<dns::Message> parse() const { return dns::parse_response(b.data(), b.size()); }
};

}  // namespace torii::testing
