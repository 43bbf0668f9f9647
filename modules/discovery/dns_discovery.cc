#include "modules/discovery/dns_discovery.h"

#include <event2/dns.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/base/libevent_ptr.h"
#include "core/base/log.h"
#include "modules/discovery/discovery_report.h"
#include "modules/discovery/dns_query.h"

namespace torii {

namespace {

// Per query: wait query_timeout, then ask once more (evdns gets the same through its options).
Millis query_timeout = 2'000;
constexpr int kAttempts = 2;
constexpr Millis kMinRefresh = 1'000;

struct EvdnsBaseDeleter {
    // 0: pending requests go without their callbacks; ours were cancelled first, see ~DnsDiscovery.
    void operator()(evdns_base *b) const { evdns_base_free(b, 0); }
};
using EvdnsBasePtr = std::unique_ptr<evdns_base, EvdnsBaseDeleter>;

// evdns's own news ("nameserver 127.0.0.1:53 has failed") goes to the debug log: the source
// reports what matters as errors of its own, named after the upstream.
void evdns_log(int, const char *message) {
    log_debug("evdns: %s", message);
}

class DnsDiscovery final : public DiscoverySource {
public:
    DnsDiscovery(event_base *base, const UpstreamConfig &upstream, DiscoverySink &sink);
    ~DnsDiscovery() override;
    void start() override;

private:
    // A name whose A and AAAA records give targets: the configured name, or an SRV target.
    struct Host {
        std::string name;
        uint16_t port = 0;
        int weight = 1;
        std::vector<SocketAddress> addresses;
    };
    // One evdns request in flight. libevent calls back exactly once even after a cancel
    // (from its queue of deferred callbacks, maybe after we are gone), so the call is freed
    // by its callback and we only detach from it.
    struct Call {
        DnsDiscovery *owner;
        size_t host;
        const char *family;
        evdns_request *request = nullptr;
    };

    void begin_round();
    void resolve(size_t host);
    void on_address_answer(const Call &call, int result, char type, int count, int ttl,
                           const void *addresses);
    void on_srv_answer(DnsQuery::Outcome outcome);
    void fail(std::string why);
    void note_ttl(int64_t ttl);
    void operation_done();
    void finish_round();
    void arm(Millis delay);
    static void on_evdns(int result, char type, int count, int ttl, void *addresses, void *arg);
    static void done_cb(evutil_socket_t, short, void *arg);
    static void timer_cb(evutil_socket_t, short, void *arg);

    event_base *base_;
    DiscoveryReport report_;
    std::string name_;
    uint16_t port_;
    Millis interval_;
    bool srv_;
    bool search_ = false;  // resolv.conf's search domains apply (not with `resolver`)
    std::string via_;      // for errors: which server was asked
    std::string setup_error_;
    EvdnsBasePtr dns_;
    std::vector<SocketAddress> servers_;  // evdns's, for the SRV queries
    EventPtr timer_;                      // the next round
    EventPtr done_;  // made active when a round's last answer is in: the sink hears from a
                     // callback of ours alone, with nothing of evdns or the query on the stack
    // The round in progress.
    std::vector<Host> hosts_;
    std::vector<Call *> calls_;
    std::unique_ptr<DnsQuery> srv_query_;
    int pending_ = 0;
    std::string round_error_;
    std::optional<uint32_t> min_ttl_;
};

DnsDiscovery::DnsDiscovery(event_base *base, const UpstreamConfig &upstream, DiscoverySink &sink)
    : base_(base),
      report_(sink),
      name_(upstream.discovery.name),
      port_(static_cast<uint16_t>(upstream.discovery.port)),
      interval_(upstream.discovery.interval),
      srv_(name_.starts_with('_')),
      dns_(evdns_base_new(base, 0)),
      timer_(evtimer_new(base, timer_cb, this)),
      done_(event_new(base, -1, 0, done_cb, this)) {
    evdns_set_log_fn(evdns_log);  // process-wide, and the same for every source
    if (!dns_ || !timer_ || !done_) {
        setup_error_ = "dns: cannot set up a resolver";
        return;
    }
    const std::string &resolver = upstream.discovery.resolver;
    if (resolver.empty()) {
        // Read once, here: what glibc would use. Without a usable file evdns asks 127.0.0.1,
        // as glibc does. Its hosts file is left out: evdns_base_resolve_* never consult it.
        evdns_base_resolv_conf_parse(dns_.get(),
                                     DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC,
                                     "/etc/resolv.conf");
        search_ = true;
        via_ = " (nameservers of /etc/resolv.conf)";
    } else {
        if (evdns_base_nameserver_ip_add(dns_.get(), resolver.c_str()) != 0) {
            setup_error_ = "dns: cannot use resolver \"" + resolver + "\"";
            return;
        }
        via_ = " (resolver " + resolver + ")";
    }
    char seconds[32];  // evdns takes fractions of a second
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(query_timeout) / 1000);
    evdns_base_set_option(dns_.get(), "timeout", seconds);
    evdns_base_set_option(dns_.get(), "attempts", std::to_string(kAttempts).c_str());
    for (int i = 0; i < evdns_base_count_nameservers(dns_.get()); ++i) {
        sockaddr_storage ss{};
        int len = evdns_base_get_nameserver_addr(dns_.get(), i, reinterpret_cast<sockaddr *>(&ss),
                                                 sizeof ss);
        if (len > 0 && size_t(len) <= sizeof ss)
            servers_.push_back(
                SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&ss), socklen_t(len)));
    }
    if (servers_.empty()) setup_error_ = "dns: no nameserver to ask";
}

DnsDiscovery::~DnsDiscovery() {
    // Before evdns_base_free: a cancelled request is off evdns's lists, and its callback,
    // still to come, finds no owner and frees the call. (A handle whose callback is already
    // queued ignores the cancel; the callback runs all the same.)
    for (Call *call : calls_) {
        call->owner = nullptr;
        evdns_cancel_request(dns_.get(), call->request);
    }
}

void DnsDiscovery::start() {
    if (!setup_error_.empty()) {
        if (done_) event_active(done_.get(), 0, 0);
        return;
    }
    begin_round();
}

void DnsDiscovery::begin_round() {
    hosts_.clear();
    srv_query_.reset();
    round_error_.clear();
    min_ttl_.reset();
    pending_ = 0;
    if (!srv_) {
        hosts_.push_back(Host{name_, port_, 1, {}});
        resolve(0);
    } else {
        ++pending_;
        srv_query_ = std::make_unique<DnsQuery>(
            base_, servers_, name_, dns::kTypeSrv, query_timeout, kAttempts,
            [this](DnsQuery::Outcome outcome) { on_srv_answer(std::move(outcome)); });
        srv_query_->start();
    }
    if (pending_ == 0) event_active(done_.get(), 0, 0);
}

// A and AAAA at once; each answer comes back through on_evdns.
void DnsDiscovery::resolve(size_t host) {
    // The configured name may be short ("api") and rely on resolv.conf's search list; an SRV
    // target is always a full name.
    int flags = search_ && !srv_ ? 0 : DNS_QUERY_NO_SEARCH;
    const std::string &name = hosts_[host].name;
    for (bool v6 : {false, true}) {
        auto call = std::make_unique<Call>(Call{this, host, v6 ? "AAAA" : "A"});
        call->request =
            v6 ? evdns_base_resolve_ipv6(dns_.get(), name.c_str(), flags, on_evdns, call.get())
               : evdns_base_resolve_ipv4(dns_.get(), name.c_str(), flags, on_evdns, call.get());
        if (!call->request) {  // no callback will come
            fail("dns: " + name + " " + call->family + ": cannot ask (bad name?)");
            continue;
        }
        calls_.push_back(call.release());
        ++pending_;
    }
}

void DnsDiscovery::on_evdns(int result, char type, int count, int ttl, void *addresses, void *arg) {
    std::unique_ptr<Call> call(static_cast<Call *>(arg));
    DnsDiscovery *self = call->owner;
    if (!self) return;
    std::erase(self->calls_, call.get());
    self->on_address_answer(*call, result, type, count, ttl, addresses);
}

void DnsDiscovery::on_address_answer(const Call &call, int result, char type, int count, int ttl,
                                     const void *addresses) {
    Host &host = hosts_[call.host];
    if (result == DNS_ERR_NONE && type == DNS_IPv4_A) {
        const auto *a = static_cast<const in_addr *>(addresses);
        for (int i = 0; i < count; ++i) {
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            sin.sin_addr = a[i];
            host.addresses.push_back(
                SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&sin), sizeof sin));
        }
        note_ttl(ttl);
    } else if (result == DNS_ERR_NONE && type == DNS_IPv6_AAAA) {
        const auto *a = static_cast<const in6_addr *>(addresses);
        for (int i = 0; i < count; ++i) {
            sockaddr_in6 sin6{};
            sin6.sin6_family = AF_INET6;
            sin6.sin6_addr = a[i];
            host.addresses.push_back(
                SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&sin6), sizeof sin6));
        }
        note_ttl(ttl);
    } else if (result == DNS_ERR_NODATA || (result == DNS_ERR_NOTEXIST && srv_)) {
        // The name has no record of this family (or, as an SRV target, does not exist): no
        // address from here, which is an answer, not a failure.
    } else {
        fail("dns: " + host.name + " " + call.family + ": " + evdns_err_to_string(result) + via_);
    }
    operation_done();
}

void DnsDiscovery::on_srv_answer(DnsQuery::Outcome outcome) {
    const dns::Message &m = outcome.message;
    std::string what = "dns: " + name_ + " SRV: ";
    if (!outcome.error.empty()) {
        fail(what + outcome.error);
    } else if (m.rcode == dns::kNxDomain) {
        fail(what + "name does not exist" + via_);
    } else if (m.rcode != dns::kNoError) {
        fail(what +
             (m.rcode == dns::kServFail ? "server failed"
                                        : "error code " + std::to_string(m.rcode)) +
             via_);
    } else {
        for (const dns::Record &rr : m.answers)
            if (rr.type == dns::kTypeSrv) note_ttl(rr.ttl);
        std::vector<dns::Record> records = usable_srv_records(m.answers);
        for (const dns::Record &rr : records) {
            hosts_.push_back(Host{rr.target, rr.port, rr.weight, {}});
            Host &host = hosts_.back();
            for (const dns::Record &extra : m.additional) {
                if (extra.name != rr.target) continue;
                host.addresses.push_back(extra.address);
                note_ttl(extra.ttl);
            }
            if (host.addresses.empty()) resolve(hosts_.size() - 1);
        }
    }
    operation_done();
}

void DnsDiscovery::fail(std::string why) {
    if (round_error_.empty()) round_error_ = std::move(why);
}

void DnsDiscovery::note_ttl(int64_t ttl) {
    // evdns hands a TTL with the top bit set over as a negative int: 0 then (RFC 2181 8).
    uint32_t seconds = ttl < 0 || ttl > 0x7fffffff ? 0 : uint32_t(ttl);
    if (!min_ttl_ || seconds < *min_ttl_) min_ttl_ = seconds;
}

void DnsDiscovery::operation_done() {
    if (--pending_ == 0) event_active(done_.get(), 0, 0);
}

void DnsDiscovery::finish_round() {
    srv_query_.reset();  // safe here: its callback is not on the stack
    if (!setup_error_.empty()) return report_.error(setup_error_);
    if (!round_error_.empty()) {
        arm(interval_);
        return report_.error(std::move(round_error_));
    }
    std::vector<DiscoveredTarget> targets;
    for (const Host &host : hosts_) {
        for (SocketAddress address : host.addresses) {
            if (address.family() == AF_INET)
                reinterpret_cast<sockaddr_in *>(&address.storage)->sin_port = htons(host.port);
            else
                reinterpret_cast<sockaddr_in6 *>(&address.storage)->sin6_port = htons(host.port);
            targets.push_back(DiscoveredTarget{address, host.weight});
        }
    }
    if (srv_ && !hosts_.empty() && targets.empty()) {
        arm(interval_);
        return report_.error("dns: " + name_ + " SRV: no target has an address" + via_);
    }
    hosts_.clear();
    arm(dns_refresh_delay(interval_, min_ttl_));
    report_.targets(std::move(targets));  // last: the sink may destroy us
}

void DnsDiscovery::arm(Millis delay) {
    timeval tv = to_timeval(delay);
    evtimer_add(timer_.get(), &tv);
}

void DnsDiscovery::done_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsDiscovery *>(arg)->finish_round();
}

void DnsDiscovery::timer_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsDiscovery *>(arg)->begin_round();
}

}  // namespace

std::vector<dns::Record> usable_srv_records(const std::vector<dns::Record> &answers) {
    std::vector<dns::Record> out;
    for (const dns::Record &rr : answers) {
        if (rr.type != dns::kTypeSrv || rr.target.empty()) continue;
        if (!out.empty() && rr.priority > out.front().priority) continue;
        if (!out.empty() && rr.priority < out.front().priority) out.clear();
        out.push_back(rr);
        if (out.back().weight == 0) out.back().weight = 1;
    }
    return out;
}

Millis dns_query_timeout() {
    return query_timeout;
}

void set_dns_query_timeout(Millis timeout) {
    query_timeout = timeout;
}

Millis dns_refresh_delay(Millis interval, std::optional<uint32_t> min_ttl) {
    if (!min_ttl) return interval;
    Millis floor = std::min(kMinRefresh, interval);
    return std::max(std::min(interval, Millis(*min_ttl) * 1000), floor);
}

std::unique_ptr<DiscoverySource> make_dns_discovery(event_base *base,
                                                    const UpstreamConfig &upstream,
                                                    DiscoverySink &sink) {
    if (upstream.discovery.type != "dns") return nullptr;
    return std::make_unique<DnsDiscovery>(base, upstream, sink);
}

}  // namespace torii
