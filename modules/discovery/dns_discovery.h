// discovery = { type = "dns", name = "api.internal", port = 9001, interval = "5s",
//               resolver = "127.0.0.1:53" }
//
// A name's A and AAAA records, each address with `port`, asked through libevent's evdns; or,
// when the name starts with '_' ("_api._tcp.example.internal"), its SRV records (RFC 2782),
// asked by our own small UDP client (evdns has no SRV): the lowest priority's targets, each
// with the record's port and weight, their addresses from the answer's additional section or
// else from evdns. The server is `resolver`, or those of /etc/resolv.conf.
//
// The name is asked again every `interval`, or sooner when the smallest TTL of the answer
// runs out first (at most once a second: a TTL of 0 must not spin).
//
// What counts as an answer (the choice of Envoy's STRICT_DNS and nginx's `resolve`: the DNS
// is the truth, also when it says "nothing"):
//   - NOERROR with records: those are the targets;
//   - NOERROR without records (the name exists, with no address or SRV record; or every SRV
//     record says "." -- not offered): an empty list, every target drains;
//   - NXDOMAIN, SERVFAIL, a timeout, a malformed or truncated answer: an error, and the last
//     list stays (a typo in a zone or an outage of the DNS must not empty an upstream);
//     unlike Envoy and nginx, NXDOMAIN is an error too, for that reason;
//   - an SRV target that does not exist gives no address, the other targets count; if no
//     target has an address at all, that is an error.
// evdns keeps at most 32 addresses of each family per answer.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/base/units.h"
#include "modules/discovery/discovery_source.h"
#include "modules/discovery/dns_packet.h"

namespace torii {

// The SRV records to use (RFC 2782): those of the lowest priority among the answers, without
// "." targets, their weight 0 made 1 (every target gets some traffic).
std::vector<dns::Record> usable_srv_records(const std::vector<dns::Record> &answers);

// When to ask again after an answer whose smallest TTL was `min_ttl` seconds (none: no
// record had one): `interval`, or the TTL when it is shorter, but not below 1 s.
Millis dns_refresh_delay(Millis interval, std::optional<uint32_t> min_ttl);

// How long one query waits before it is asked once more (2 s): set lower by the unit tests,
// whose lost and unanswered queries would otherwise wait as long.
Millis dns_query_timeout();
void set_dns_query_timeout(Millis timeout);

}  // namespace torii
