#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "modules/discovery/dns_discovery.h"
#include "modules/discovery/dns_packet.h"
#include "t/unit/modules/discovery/discovery_test_support.h"

using namespace torii;
using torii::testing::Packet;

namespace {

// A response to "_api._tcp.example.test SRV" (the question at offset 12): three SRV
// records whose targets are compressed against the question's "example.test", an AAAA in
// the authority section to skip, and A / AAAA records for the targets as additional data.
Packet srv_answer() {
    Packet p;
    p.header(0x1234, 0x8180, 1, 3, 1, 3);
    p.name("_api._tcp.example.test").u16(dns::kTypeSrv).u16(dns::kClassIn);
    const int example = 12 + 1 + 4 + 1 + 4;  // "example.test" inside the question
    auto srv = [&](unsigned prio, unsigned weight, unsigned port, const std::string &host) {
        p.name("", 12).rr_fixed(dns::kTypeSrv, dns::kClassIn, 30,
                                unsigned(6 + 1 + host.size() + 2));
        p.u16(prio).u16(weight).u16(port).name(host, example);
    };
    srv(10, 5, 9001, "a");
    srv(10, 0, 9002, "b");
    srv(20, 1, 9003, "c");
    p.name("ns", example).rr_fixed(dns::kTypeAaaa, dns::kClassIn, 5, 16);
    for (int i = 0; i < 16; ++i)
        p.u8(0);
    p.name("a", example).rr_fixed(dns::kTypeA, dns::kClassIn, 7, 4).u8(127).u8(0).u8(0).u8(2);
    p.name("b", example).rr_fixed(dns::kTypeAaaa, dns::kClassIn, 0x80000000u, 16);
    for (int i = 0; i < 15; ++i)
        p.u8(0);
    p.u8(1);
    p.u8(0).rr_fixed(dns::kTypeOpt, 1232, 0, 0);  // the server's EDNS0 record
    return p;
}

}  // namespace

TEST_CASE("dns: a query carries the name, the type and an EDNS0 record") {
    Result<std::vector<uint8_t>> q = dns::build_query(0xbeef, "Api.Example.", dns::kTypeSrv);
    REQUIRE(q.ok());
    std::vector<uint8_t> want = {0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 3, 'A', 'p', 'i',
                                 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 33, 0, 1,
                                 // OPT: root, type 41, payload 1232, ttl 0, no data
                                 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
    CHECK(*q == want);

    CHECK_FALSE(dns::build_query(1, "", dns::kTypeA).ok());
    CHECK_FALSE(dns::build_query(1, ".", dns::kTypeA).ok());
    CHECK_FALSE(dns::build_query(1, "a..b", dns::kTypeA).ok());
    CHECK_FALSE(dns::build_query(1, ".a", dns::kTypeA).ok());
    CHECK_FALSE(dns::build_query(1, "a b", dns::kTypeA).ok());
    CHECK_FALSE(dns::build_query(1, std::string(64, 'x'), dns::kTypeA).ok());
    CHECK(dns::build_query(1, std::string(63, 'x'), dns::kTypeA).ok());
    // 4 labels of 63: 4 * 64 + 1 = 257 octets, over 255; three and one of 61 fit exactly.
    std::string l63(63, 'x');
    CHECK_FALSE(dns::build_query(1, l63 + "." + l63 + "." + l63 + "." + l63, dns::kTypeA).ok());
    CHECK(dns::build_query(1, l63 + "." + l63 + "." + l63 + "." + std::string(61, 'y'), dns::kTypeA)
              .ok());
}

TEST_CASE("dns: an SRV answer with compressed names and additional addresses") {
    Packet p = srv_answer();
    Result<dns::Message> m = p.parse();
    REQUIRE_MESSAGE(m.ok(), m.error());
    CHECK(m->id == 0x1234);
    CHECK(m->rcode == 0);
    CHECK_FALSE(m->truncated);
    CHECK(m->question == "_api._tcp.example.test");
    CHECK(m->question_type == dns::kTypeSrv);
    REQUIRE(m->answers.size() == 3);
    CHECK(m->answers[0].name == "_api._tcp.example.test");
    CHECK(m->answers[0].type == dns::kTypeSrv);
    CHECK(m->answers[0].ttl == 30);
    CHECK(m->answers[0].priority == 10);
    CHECK(m->answers[0].weight == 5);
    CHECK(m->answers[0].port == 9001);
    CHECK(m->answers[0].target == "a.example.test");
    CHECK(m->answers[1].target == "b.example.test");
    CHECK(m->answers[2].target == "c.example.test");
    CHECK(m->answers[2].priority == 20);
    // The authority section is skipped; the OPT record is not class IN and is skipped too.
    REQUIRE(m->additional.size() == 2);
    CHECK(m->additional[0].name == "a.example.test");
    CHECK(m->additional[0].address.to_string() == "127.0.0.2:0");
    CHECK(m->additional[0].ttl == 7);
    CHECK(m->additional[1].name == "b.example.test");
    CHECK(m->additional[1].address.to_string() == "[::1]:0");
    CHECK(m->additional[1].ttl == 0);  // the top bit set: 0, RFC 2181 8

    std::vector<dns::Record> use = usable_srv_records(m->answers);
    REQUIRE(use.size() == 2);  // priority 10 only
    CHECK(use[0].target == "a.example.test");
    CHECK(use[0].weight == 5);
    CHECK(use[1].target == "b.example.test");
    CHECK(use[1].weight == 1);  // 0 counts as 1
}

TEST_CASE("dns: names compare without case and without the trailing dot") {
    Packet p;
    p.header(7, 0x8183, 1, 0, 0, 0).name("WWW.Example.TEST").u16(dns::kTypeA).u16(1);
    Result<dns::Message> m = p.parse();
    REQUIRE(m.ok());
    CHECK(m->rcode == dns::kNxDomain);
    CHECK(m->question == dns::normalize_name("www.example.test."));
    CHECK(m->question == "www.example.test");
}

TEST_CASE("dns: a truncated answer is reported as such without reading its records") {
    Packet p;
    p.header(7, 0x8380, 1, 5, 0, 0).name("x.test").u16(dns::kTypeSrv).u16(1).u8(0xc0);
    Result<dns::Message> m = p.parse();
    REQUIRE(m.ok());
    CHECK(m->truncated);
    CHECK(m->answers.empty());
}

TEST_CASE("dns: malformed and malicious answers are refused, never read out of bounds") {
    auto question = [](Packet &p, unsigned an) {
        p.header(1, 0x8180, 1, an, 0, 0).name("x.test").u16(dns::kTypeA).u16(1);
    };
    auto error_of = [](const Packet &p) {
        Result<dns::Message> m = p.parse();
        return m.ok() ? std::string("parsed") : m.error();
    };

    SUBCASE("header") {
        Packet p;
        p.header(1, 0x8180, 1, 0, 0, 0);
        p.b.pop_back();
        CHECK(error_of(p) == "shorter than a DNS header");
        Packet q;
        q.header(1, 0x0100, 1, 0, 0, 0).name("x").u16(1).u16(1);
        CHECK(error_of(q) == "not a response");
        Packet r;
        r.header(1, 0x8180 | 0x2000, 1, 0, 0, 0).name("x").u16(1).u16(1);  // opcode 4
        CHECK(error_of(r) == "not an answer to a standard query");
        Packet s;
        s.header(1, 0x8180, 0, 0, 0, 0);
        CHECK(error_of(s) == "expected one question, found 0");
        Packet t;
        t.header(1, 0x8180, 2, 0, 0, 0).name("x").u16(1).u16(1).name("y").u16(1).u16(1);
        CHECK(error_of(t) == "expected one question, found 2");
        Packet u;
        u.header(1, 0x8180, 1, 0, 0, 0).name("x").u16(1).u16(3);  // class CH
        CHECK(error_of(u) == "question not of class IN");
    }
    SUBCASE("a pointer to itself") {
        Packet p;
        p.header(1, 0x8180, 1, 0, 0, 0).u16(0xc000 | 12).u16(1).u16(1);
        CHECK(error_of(p) == "compression pointer does not point backwards");
    }
    SUBCASE("two pointers pointing at each other") {
        // The question "a" + pointer to the answer's name, which points back to the question:
        // the first pointer points forward, so the loop is never entered.
        Packet p;
        p.header(1, 0x8180, 1, 1, 0, 0).u8(1).u8('a').u16(0xc000 | 20).u16(1).u16(1);
        p.u16(0xc000 | 12).rr_fixed(1, 1, 0, 4).u32(0);
        CHECK(error_of(p) == "compression pointer does not point backwards");
        // An answer name that loops through a label back into itself: "b" then a pointer
        // to "b" (its own start): not below where the name began.
        Packet q;
        question(q, 1);
        size_t self = q.size();
        q.u8(1).u8('b').u16(0xc000 | unsigned(self)).rr_fixed(1, 1, 0, 4).u32(0);
        CHECK(error_of(q) == "compression pointer does not point backwards");
    }
    SUBCASE("a pointer past the end, a pointer cut in half") {
        Packet p;
        question(p, 1);
        p.u16(0xc000 | 0x3fff).rr_fixed(1, 1, 0, 4).u32(0);
        CHECK(error_of(p) == "compression pointer does not point backwards");
        Packet q;
        question(q, 1);
        q.u8(0xc0);
        CHECK(error_of(q) == "name runs past the end");
    }
    SUBCASE("labels") {
        Packet p;
        question(p, 1);
        p.u8(0x40).u8(0).rr_fixed(1, 1, 0, 4).u32(0);  // extended label type
        CHECK(error_of(p) == "unknown label type");
        Packet q;
        q.header(1, 0x8180, 1, 0, 0, 0).u8(5).u8('a').u8('b');  // label cut short
        CHECK(error_of(q) == "name runs past the end");
        Packet r;
        r.header(1, 0x8180, 1, 0, 0, 0).u8(3).u8('a').u8('.').u8('b').u8(0).u16(1).u16(1);
        CHECK(error_of(r) == "unsupported character in name");
        Packet s;
        s.header(1, 0x8180, 1, 0, 0, 0).u8(1).u8(0).u8(0).u16(1).u16(1);
        CHECK(error_of(s) == "unsupported character in name");
    }
    SUBCASE("a name over 255 octets built from pointers") {
        // Four 63-octet labels, each name pointing back to the one before: the last one
        // spells 4 x 64 + 1 octets.
        Packet p;
        p.header(1, 0x8180, 1, 3, 0, 0);
        std::string l63(63, 'x');
        size_t first = p.size();
        p.name(l63).u16(1).u16(1);
        size_t prev = first;
        for (int i = 0; i < 3; ++i) {
            size_t here = p.size();
            p.name(l63, int(prev)).rr_fixed(dns::kTypeCname, 1, 0, 0);
            prev = here;
        }
        CHECK(error_of(p) == "name longer than 255 octets");
    }
    SUBCASE("records running past the end") {
        Packet p;
        question(p, 1);
        p.u8(0).u16(1).u16(1);  // type and class, then nothing
        CHECK(error_of(p) == "record runs past the end");
        Packet q;
        question(q, 1);
        q.u8(0).rr_fixed(1, 1, 0, 4).u8(127).u8(0);
        CHECK(error_of(q) == "record data runs past the end");
        Packet r;
        question(r, 2);  // the header promises two answers, the packet has one
        r.u8(0).rr_fixed(1, 1, 0, 4).u32(0x7f000001);
        CHECK(error_of(r) == "name runs past the end");
        Packet s;
        s.header(1, 0x8180, 1, 0, 0, 0).name("x").u16(1);
        CHECK(error_of(s) == "question runs past the end");
    }
    SUBCASE("record data of the wrong size") {
        Packet p;
        question(p, 1);
        p.u8(0).rr_fixed(dns::kTypeA, 1, 0, 5).u32(0).u8(0);
        CHECK(error_of(p) == "A record of the wrong size");
        Packet q;
        question(q, 1);
        q.u8(0).rr_fixed(dns::kTypeAaaa, 1, 0, 4).u32(0);
        CHECK(error_of(q) == "AAAA record of the wrong size");
        Packet r;
        question(r, 1);
        r.u8(0).rr_fixed(dns::kTypeSrv, 1, 0, 6).u16(0).u16(0).u16(80);
        CHECK(error_of(r) == "SRV record too short");
        // The target's labels run on past the record's length into the next record.
        Packet s;
        question(s, 2);
        s.u8(0).rr_fixed(dns::kTypeSrv, 1, 0, 8).u16(0).u16(0).u16(80).name("ab");
        s.u8(0).rr_fixed(dns::kTypeA, 1, 0, 4).u32(0);
        CHECK(error_of(s) == "SRV target does not fit its record");
        // Other classes and types are skipped whatever their data says.
        Packet t;
        question(t, 2);
        t.u8(0).rr_fixed(dns::kTypeA, 3, 0, 3).u8(1).u8(2).u8(3);
        t.u8(0).rr_fixed(99, 1, 0, 1).u8(0xc0);
        Result<dns::Message> m = t.parse();
        REQUIRE(m.ok());
        CHECK(m->answers.empty());
    }
}

TEST_CASE("dns: no prefix and no damaged copy of an answer is read out of bounds") {
    // Under ASan this is the fuzz test: every prefix, and copies with bytes changed, must
    // parse or fail, never crash. A prefix cut inside the records must fail.
    Packet good = srv_answer();
    REQUIRE(good.parse().ok());
    size_t question_end = 12 + 24 + 4;
    for (size_t n = 0; n < good.size(); ++n) {
        Result<dns::Message> m = dns::parse_response(good.b.data(), n);
        if (n >= question_end) CHECK_MESSAGE(!m.ok(), "prefix of ", n, " bytes parsed");
        if (n < question_end) CHECK(!m.ok());
    }
    srand(13);
    int parsed = 0;
    for (int round = 0; round < 20000; ++round) {
        std::vector<uint8_t> bad = good.b;
        for (int k = 0, flips = 1 + rand() % 4; k < flips; ++k)
            bad[size_t(rand()) % bad.size()] = uint8_t(rand());
        Result<dns::Message> m = dns::parse_response(bad.data(), bad.size());
        parsed += m.ok();
        if (m.ok())
            for (const dns::Record &rr : m->answers)
                CHECK(rr.name.size() <= 253);
    }
    CHECK(parsed > 0);  // the damage is not always fatal (a changed TTL, port, ...)
}

TEST_CASE("dns: the next lookup comes after the interval or the TTL, whichever is first") {
    CHECK(dns_refresh_delay(5'000, std::nullopt) == 5'000);
    CHECK(dns_refresh_delay(5'000, 60) == 5'000);
    CHECK(dns_refresh_delay(5'000, 2) == 2'000);
    CHECK(dns_refresh_delay(5'000, 0) == 1'000);  // a TTL of 0 does not spin
    CHECK(dns_refresh_delay(300, 0) == 300);      // nor does it slow a shorter interval
    CHECK(dns_refresh_delay(60'000, 0x7fffffff) == 60'000);
}

TEST_CASE("dns: SRV records of the lowest priority, without '.' targets") {
    auto srv = [](uint16_t prio, uint16_t weight, std::string target) {
        dns::Record rr;
        rr.type = dns::kTypeSrv;
        rr.priority = prio;
        rr.weight = weight;
        rr.port = 1;
        rr.target = std::move(target);
        return rr;
    };
    dns::Record a;
    a.type = dns::kTypeA;
    std::vector<dns::Record> in = {srv(5, 1, "x"), a, srv(1, 0, ""), srv(3, 7, "y"), srv(3, 0, "z"),
                                   srv(4, 1, "w")};
    std::vector<dns::Record> out = usable_srv_records(in);
    REQUIRE(out.size() == 2);
    CHECK(out[0].target == "y");
    CHECK(out[0].weight == 7);
    CHECK(out[1].target == "z");
    CHECK(out[1].weight == 1);
    CHECK(usable_srv_records({srv(0, 0, "")}).empty());  // "not offered here"
}
