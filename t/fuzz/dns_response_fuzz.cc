// A DNS answer (modules/discovery/dns_packet.cc) as a resolver sends it to the DNS discovery
// source, over UDP or, for an answer too large for a datagram, over TCP (up to 64 KiB): the
// parser that reads names (compression pointers included), A, AAAA and SRV records.
//
// Input: the message. Checked: nothing is read past the end (ASan); a message the parser
// accepts holds no more records than its bytes can (11 bytes a record at the least), names
// that are lower case and at most 255 octets, and the question it answers can be asked
// again; a truncated answer keeps no records; the same bytes parse the same way twice.
#include <string>

#include "modules/discovery/dns_packet.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 65535;  // a TCP answer's 2-byte length bounds it

void check_name(const std::string &name) {
    FUZZ_CHECK(name.size() <= 255);
    for (char c : name)
        FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
}

}  // namespace

int torii_fuzz_dns_response(const uint8_t *data, size_t size) {
    if (size > kMaxInput) return 0;
    Result<dns::Message> m = dns::parse_response(data, size);
    Result<dns::Message> again = dns::parse_response(data, size);
    FUZZ_CHECK(m.ok() == again.ok());
    if (!m) {
        FUZZ_CHECK(!m.error().empty());
        return 0;
    }
    FUZZ_CHECK(m->answers.size() == again->answers.size());
    FUZZ_CHECK(m->additional.size() == again->additional.size());
    FUZZ_CHECK(m->rcode >= 0 && m->rcode <= 15);
    check_name(m->question);
    if (m->truncated) FUZZ_CHECK(m->answers.empty() && m->additional.empty());
    FUZZ_CHECK((m->answers.size() + m->additional.size()) * 11 <= size);
    for (const auto *section : {&m->answers, &m->additional}) {
        for (const dns::Record &rr : *section) {
            check_name(rr.name);
            check_name(rr.target);
            FUZZ_CHECK(rr.type == dns::kTypeA || rr.type == dns::kTypeAaaa ||
                       rr.type == dns::kTypeSrv);
            if (rr.type != dns::kTypeSrv) FUZZ_CHECK(rr.address.port() == 0);
        }
    }
    // What it answers can be asked (a name of valid labels), unless it is the root.
    if (!m->question.empty()) {
        Result<std::vector<uint8_t>> q = dns::build_query(m->id, m->question, m->question_type);
        if (q) {
            Result<dns::Message> unanswered = dns::parse_response(q->data(), q->size());
            FUZZ_CHECK(!unanswered.ok());  // a query is no response
        }
    }
    return 0;
}
