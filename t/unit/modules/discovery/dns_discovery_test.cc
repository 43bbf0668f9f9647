// The DNS source against real servers: Debian's dnsmasq on a loopback port (A, AAAA, SRV,
// hosts re-read on SIGHUP), and a scripted server on the test's own loop for the answers a
// good server never gives (forged, malformed, truncated, SERVFAIL, no additional data).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "modules/discovery/dns_discovery.h"
#include "t/unit/modules/discovery/discovery_test_support.h"
#include "t/unit/support/free_port.h"
#include "t/unit/support/temp_dir.h"

using namespace torii;
using namespace torii::testing;
using torii::test::free_port;
using torii::test::TempDir;

namespace {

constexpr const char *kDnsmasq = "/usr/sbin/dnsmasq";

// One blocking question, for the tests' own waiting: did the server answer at all?
bool answers(int port, const std::string &name) {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    timeval tv{0, 100'000};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(uint16_t(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr *>(&sin), sizeof sin) != 0) return false;
    Result<std::vector<uint8_t>> q = dns::build_query(42, name, dns::kTypeA);
    if (!q || ::send(fd.get(), q->data(), q->size(), 0) < 0) return false;
    uint8_t buf[1500];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    return n > 0 && dns::parse_response(buf, size_t(n)).ok();
}

// dnsmasq answering from `hosts` (re-read on reload()) on 127.0.0.1:port, with records
// of its own for the zone "test" only: any other name under test. is NXDOMAIN.
class Dnsmasq {
public:
    Dnsmasq(const std::string &dir, std::vector<std::string> args, int port = 0)
        : hosts_(dir + "/hosts"), port_(port ? port : free_port()), args_(std::move(args)) {
        if (::access(hosts_.c_str(), F_OK) != 0) write_hosts("");
        start();
    }
    ~Dnsmasq() { stop(); }

    int port() const { return port_; }
    std::string resolver() const { return "127.0.0.1:" + std::to_string(port_); }
    void write_hosts(const std::string &text) { std::ofstream(hosts_, std::ios::trunc) << text; }
    // SIGHUP is handled whenever dnsmasq gets to it: give it that time, or the next query may
    // still see the old hosts file (a test asking at once then got NXDOMAIN now and then).
    void reload() {
        REQUIRE(::kill(pid_, SIGHUP) == 0);
        ::usleep(300'000);
    }

    void start() {
        REQUIRE_MESSAGE(::access(kDnsmasq, X_OK) == 0, "needs Debian's dnsmasq");
        std::vector<std::string> argv = {
            kDnsmasq,
            "--no-daemon",
            "--port=" + std::to_string(port_),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--addn-hosts=" + hosts_,
            "--local=/test/",
            "--pid-file=",
            "--user=root",  // keep reading our 0700 directory after SIGHUP
            "--log-facility=/dev/null",
        };
        argv.insert(argv.end(), args_.begin(), args_.end());
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 1);
            ::dup2(null, 2);
            std::vector<char *> c;
            for (std::string &a : argv)
                c.push_back(a.data());
            c.push_back(nullptr);
            ::execv(kDnsmasq, c.data());
            ::_exit(127);
        }
        // Up to 5 s (a refused query returns at once, hence the sleep). On failure it is
        // stopped here: REQUIRE throws, and from the constructor no destructor would run.
        bool ready = false;
        bool exited = false;
        for (int i = 0; i < 50 && !ready && !exited; ++i) {
            ready = answers(port_, "ready.test");
            exited = !ready && ::waitpid(pid_, nullptr, WNOHANG) == pid_;
            if (!ready) ::usleep(100'000);
        }
        if (exited) pid_ = -1;
        if (!ready) stop();
        REQUIRE_MESSAGE(ready, (exited ? "dnsmasq exited" : "dnsmasq does not answer"));
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    std::string hosts_;
    int port_;
    std::vector<std::string> args_;
    pid_t pid_ = -1;
};

UpstreamConfig dns_upstream(const std::string &name, int port, const std::string &resolver,
                            Millis interval) {
    UpstreamConfig up;
    up.name = "api";
    up.discovery.type = "dns";
    up.discovery.name = name;
    up.discovery.port = port;
    up.discovery.resolver = resolver;
    up.discovery.interval = interval;
    return up;
}

// A DNS server on the test's loop that answers as `respond` says: zero or more datagrams
// for each query.
class ScriptedDns {
public:
    struct Query {
        uint16_t id;
        std::string name;  // lower case
        uint16_t type;
        std::vector<uint8_t> question;  // the question's bytes, as asked (case kept)
    };
    using Respond = std::function<std::vector<std::vector<uint8_t>>(const Query &)>;

    // What the TCP side sends for a query that came over TCP (length prefix included), and
    // whether it closes the connection then; nothing and no close: a server that stalls.
    struct TcpReply {
        std::vector<uint8_t> bytes;
        bool close = true;
    };
    using RespondTcp = std::function<TcpReply(const Query &)>;

    // UDP on a free port, and a TCP socket bound to the same port: refusing connections
    // until serve_tcp() (nobody else can be listening there).
    ScriptedDns(event_base *base, Respond respond) : base_(base), respond_(std::move(respond)) {
        for (int tries = 0; tries < 20 && tcp_fd_.get() < 0; ++tries) {
            fd_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr *>(&sin), sizeof sin) == 0);
            socklen_t len = sizeof sin;
            ::getsockname(fd_.get(), reinterpret_cast<sockaddr *>(&sin), &len);
            port_ = ntohs(sin.sin_port);
            tcp_fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (::bind(tcp_fd_.get(), reinterpret_cast<sockaddr *>(&sin), sizeof sin) != 0)
                tcp_fd_.reset();
        }
        REQUIRE(tcp_fd_.get() >= 0);
        ev_.reset(event_new(base, fd_.get(), EV_READ | EV_PERSIST, on_read, this));
        event_add(ev_.get(), nullptr);
    }
    std::string resolver() const { return "127.0.0.1:" + std::to_string(port_); }
    std::vector<Query> seen;
    int tcp_queries = 0;

    void serve_tcp(RespondTcp respond) {
        respond_tcp_ = std::move(respond);
        REQUIRE(::listen(tcp_fd_.get(), 8) == 0);
        accept_ev_.reset(event_new(base_, tcp_fd_.get(), EV_READ | EV_PERSIST, on_accept, this));
        event_add(accept_ev_.get(), nullptr);
    }

    // A TCP message: the 2-byte length, then `message`.
    static std::vector<uint8_t> framed(const std::vector<uint8_t> &message) {
        std::vector<uint8_t> out = {uint8_t(message.size() >> 8), uint8_t(message.size())};
        out.insert(out.end(), message.begin(), message.end());
        return out;
    }

    // A response to `q`: its question, then `records` (an answers, ar additional).
    static std::vector<uint8_t> reply(const Query &q, unsigned flags, unsigned an, unsigned ar,
                                      const Packet &records) {
        Packet p;
        p.header(q.id, flags, 1, an, 0, ar).bytes(q.question).bytes(records.b);
        return p.b;
    }

private:
    // The query in `buf` (a DNS message of n bytes); false when it is not one.
    static bool parse_query(const uint8_t *buf, ssize_t n, Query *out) {
        if (n < 12) return false;
        Query q{uint16_t(buf[0] << 8 | buf[1]), "", 0, {}};
        size_t at = 12;
        while (at < size_t(n) && buf[at] != 0) {
            if (!q.name.empty()) q.name += '.';
            for (size_t i = 1; i <= buf[at] && at + i < size_t(n); ++i)
                q.name += char(std::tolower(buf[at + i]));
            at += 1 + buf[at];
        }
        if (at + 5 > size_t(n)) return false;
        q.type = uint16_t(buf[at + 1] << 8 | buf[at + 2]);
        q.question.assign(buf + 12, buf + at + 5);
        *out = std::move(q);
        return true;
    }

    static void on_accept(evutil_socket_t fd, short, void *arg) {
        auto *self = static_cast<ScriptedDns *>(arg);
        int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) return;
        self->conns_.emplace_back(conn);
        // One read takes the whole query (a few dozen bytes on loopback).
        event_base_once(self->base_, conn, EV_READ, on_tcp_query, self, nullptr);
    }

    static void on_tcp_query(evutil_socket_t fd, short, void *arg) {
        auto *self = static_cast<ScriptedDns *>(arg);
        uint8_t buf[600];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        Query q;
        if (n < 2 || !parse_query(buf + 2, n - 2, &q)) return;
        ++self->tcp_queries;
        TcpReply reply = self->respond_tcp_(q);
        if (!reply.bytes.empty()) ::send(fd, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL);
        if (reply.close)
            for (UniqueFd &c : self->conns_)
                if (c.get() == fd) c.reset();
    }

    static void on_read(evutil_socket_t fd, short, void *arg) {
        auto *self = static_cast<ScriptedDns *>(arg);
        uint8_t buf[1500];
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &len);
        Query q;
        if (!parse_query(buf, n, &q)) return;
        self->seen.push_back(q);
        for (const std::vector<uint8_t> &d : self->respond_(q))
            ::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr *>(&from), len);
    }

    event_base *base_;
    Respond respond_;
    RespondTcp respond_tcp_;
    UniqueFd fd_;
    UniqueFd tcp_fd_;
    EventPtr ev_;
    EventPtr accept_ev_;
    std::vector<UniqueFd> conns_;
    int port_ = 0;
};

// A DNS source whose loop outlives it. When it goes, the loop runs once more: libevent calls
// back a cancelled evdns request from the loop, and a loop that never ran again would never
// free the call (LeakSanitizer would say so). The fleet process _exit()s instead.
class DnsSource {
public:
    DnsSource(event_base *base, const UpstreamConfig &up, DiscoverySink &sink)
        : base_(base), source_(make_dns_discovery(base, up, sink)) {}
    ~DnsSource() {
        source_.reset();
        event_base_loop(base_, EVLOOP_NONBLOCK);
    }
    explicit operator bool() const { return bool(source_); }
    DiscoverySource *operator->() const { return source_.get(); }

private:
    event_base *base_;
    std::unique_ptr<DiscoverySource> source_;
};

constexpr unsigned kNoError = 0x8180;  // response, RD, RA, rcode 0
constexpr unsigned kNxDomain = 0x8183;
constexpr unsigned kServFail = 0x8182;
constexpr unsigned kTruncated = 0x8380;

}  // namespace

TEST_CASE("dns discovery: A and AAAA from dnsmasq, re-resolved when the TTL runs out") {
    TempDir dir;
    // The TXT record keeps the name in existence when its addresses go: NOERROR, no data.
    Dnsmasq server(dir.path, {"--local-ttl=1", "--txt-record=api.test,x"});
    server.write_hosts("127.0.0.2 api.test\n127.0.0.3 api.test\n::1 api.test\n");
    server.reload();

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    // An interval of a minute: only the TTL of 1 s can explain a second lookup in time.
    UpstreamConfig up = dns_upstream("api.test", 9001, server.resolver(), 60'000);
    DnsSource source(base.get(), up, sink);
    REQUIRE(source);
    CHECK_FALSE(make_file_discovery(base.get(), up, sink));
    source->start();
    CHECK(sink.events.empty());
    auto heard = [&](size_t n) { return [&sink, n] { return sink.events.size() >= n; }; };
    REQUIRE(run_until(base.get(), heard(1), 5000));
    CHECK(sink.events[0] == "list: 127.0.0.2:9001*1 127.0.0.3:9001*1 [::1]:9001*1");

    // One address added, two removed; dnsmasq re-reads its hosts file on SIGHUP.
    server.write_hosts("127.0.0.3 api.test\n127.0.0.4 api.test\n");
    server.reload();
    REQUIRE(run_until(base.get(), heard(2), 5000));
    CHECK(sink.events[1] == "list: 127.0.0.3:9001*1 127.0.0.4:9001*1");

    // The name is there without an address: the DNS says "none", every target goes.
    server.write_hosts("");
    server.reload();
    REQUIRE(run_until(base.get(), heard(3), 5000));
    CHECK(sink.events[2] == "list: ");
    run_for(base.get(), 1500);
    CHECK(sink.events.size() == 3);  // no TTL in a NODATA answer: next look in a minute
}

// Lost and unanswered queries wait 0.5 s per attempt instead of 2 s (set_dns_query_timeout).
struct ShortQueryTimeout {
    Millis saved = dns_query_timeout();
    ShortQueryTimeout() { set_dns_query_timeout(500); }
    ~ShortQueryTimeout() { set_dns_query_timeout(saved); }
};

TEST_CASE("dns discovery: errors keep the last list, and recovery is reported") {
    ShortQueryTimeout short_timeout;
    TempDir dir;
    Dnsmasq server(dir.path, {"--local-ttl=1"});
    server.write_hosts("127.0.0.2 api.test\n");
    server.reload();

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    auto heard = [&](size_t n) { return [&sink, n] { return sink.events.size() >= n; }; };

    SUBCASE("NXDOMAIN") {
        UpstreamConfig up = dns_upstream("nope.test", 9001, server.resolver(), 200);
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 5000));
        CHECK(sink.events[0].starts_with("error: dns: nope.test A"));  // or AAAA
        CHECK(
            sink.events[0].ends_with(": name does not exist (resolver " + server.resolver() + ")"));
        run_for(base.get(), 600);
        CHECK(sink.events.size() == 1);  // asked again, the same error is not repeated
    }
    SUBCASE("the server goes away and comes back") {
        UpstreamConfig up = dns_upstream("api.test", 9001, server.resolver(), 300);
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 5000));
        CHECK(sink.events[0] == "list: 127.0.0.2:9001*1");
        server.stop();
        // evdns: 0.5 s per attempt here, 2 attempts.
        REQUIRE(run_until(base.get(), heard(2), 10'000));
        CHECK(sink.events[1].starts_with("error: dns: api.test A"));
        CHECK(sink.events[1].ends_with(": request timed out (resolver " + server.resolver() + ")"));
        server.start();
        REQUIRE(run_until(base.get(), heard(3), 10'000));
        CHECK(sink.events[2] == "list: 127.0.0.2:9001*1");  // the same list: it recovered
    }
}

TEST_CASE("dns discovery: SRV records from dnsmasq, the lowest priority only") {
    TempDir dir;
    Dnsmasq server(dir.path, {"--local-ttl=1", "--srv-host=_api._tcp.test,a.test,9001,10,5",
                              "--srv-host=_api._tcp.test,b.test,9002,10,0",
                              "--srv-host=_api._tcp.test,c.test,9003,20,1"});
    server.write_hosts("127.0.0.2 a.test\n127.0.0.3 b.test\n::1 b.test\n127.0.0.4 c.test\n");
    server.reload();

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    UpstreamConfig up = dns_upstream("_api._tcp.test", 0, server.resolver(), 500);
    DnsSource source(base.get(), up, sink);
    source->start();
    auto heard = [&](size_t n) { return [&sink, n] { return sink.events.size() >= n; }; };
    REQUIRE(run_until(base.get(), heard(1), 5000));
    CHECK(sink.events[0] == "list: 127.0.0.2:9001*5 127.0.0.3:9002*1 [::1]:9002*1");

    server.write_hosts("127.0.0.2 a.test\n127.0.0.5 b.test\n127.0.0.4 c.test\n");
    server.reload();
    REQUIRE(run_until(base.get(), heard(2), 5000));
    CHECK(sink.events[1] == "list: 127.0.0.2:9001*5 127.0.0.5:9002*1");

    // Neither target of priority 10 has an address any more: an error, not an empty list.
    server.write_hosts("127.0.0.4 c.test\n");
    server.reload();
    REQUIRE(run_until(base.get(), heard(3), 5000));
    CHECK(sink.events[2] == "error: dns: _api._tcp.test SRV: no target has an address (resolver " +
                                server.resolver() + ")");
}

TEST_CASE("dns discovery: an SRV set too large for UDP is read over TCP") {
    // 80 targets: about 2 KiB of records, over the 1232 bytes asked for over UDP. dnsmasq
    // sets TC there and answers whole over TCP (its same port).
    TempDir dir;
    std::vector<std::string> args = {"--local-ttl=60"};
    std::string hosts;
    for (int i = 0; i < 80; ++i) {
        args.push_back("--srv-host=_big._tcp.test,t" + std::to_string(i) + ".test," +
                       std::to_string(9000 + i) + ",10,1");
        hosts += "127.0.1." + std::to_string(i + 1) + " t" + std::to_string(i) + ".test\n";
    }
    Dnsmasq server(dir.path, args);
    server.write_hosts(hosts);
    server.reload();

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    UpstreamConfig up = dns_upstream("_big._tcp.test", 0, server.resolver(), 60'000);
    DnsSource source(base.get(), up, sink);
    source->start();
    REQUIRE(run_until(
        base.get(), [&] { return !sink.events.empty(); }, 5000));
    const std::string &list = sink.events[0];
    REQUIRE_MESSAGE(list.rfind("list: ", 0) == 0, list);
    size_t targets = 0;
    for (size_t at = list.find(' '); at != std::string::npos; at = list.find(' ', at + 1))
        ++targets;
    CHECK(targets == 80);
    CHECK(list.find(" 127.0.1.1:9000*1") != std::string::npos);
    CHECK(list.find(" 127.0.1.80:9079*1") != std::string::npos);
}

TEST_CASE("dns discovery: SRV answers a good server never gives") {
    ShortQueryTimeout short_timeout;
    EventBasePtr base(event_base_new());
    RecordingSink sink;
    auto heard = [&](size_t n) { return [&sink, n] { return sink.events.size() >= n; }; };
    // What the scripted server says to an SRV query; A and AAAA are answered below.
    std::function<std::vector<std::vector<uint8_t>>(const ScriptedDns::Query &)> srv;
    ScriptedDns server(base.get(), [&](const ScriptedDns::Query &q) {
        if (q.type == dns::kTypeSrv) return srv(q);
        std::vector<std::vector<uint8_t>> out;
        if (q.name == "t1.test" && q.type == dns::kTypeA) {
            Packet a;
            a.a(12, "", 60, 0x7f000007);
            out.push_back(ScriptedDns::reply(q, kNoError, 1, 0, a));
        } else if (q.name == "t1.test") {
            out.push_back(ScriptedDns::reply(q, kNoError, 0, 0, Packet{}));  // NODATA
        } else {
            out.push_back(ScriptedDns::reply(q, kNxDomain, 0, 0, Packet{}));
        }
        return out;
    });
    UpstreamConfig up = dns_upstream("_svc._tcp.test", 0, server.resolver(), 60'000);
    std::string what = "error: dns: _svc._tcp.test SRV: ";
    std::string from = server.resolver();
    // One round of the source against the server as scripted now: its first event.
    auto first_event = [&] {
        sink.events.clear();
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 5000));
        return sink.events[0];
    };

    SUBCASE("no additional data: targets through evdns, one of them without a name") {
        srv = [](const ScriptedDns::Query &q) {
            Packet p;
            p.srv(12, 30, 1, 3, 7001, "t1.test").srv(12, 30, 1, 2, 7002, "gone.test");
            // A forged answer first (another id), then the real one.
            ScriptedDns::Query forged = q;
            forged.id ^= 1;
            Packet fake;
            fake.srv(12, 30, 1, 1, 6666, "t1.test");
            return std::vector<std::vector<uint8_t>>{
                ScriptedDns::reply(forged, kNoError, 1, 0, fake),
                ScriptedDns::reply(q, kNoError, 2, 0, p)};
        };
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 5000));
        CHECK(sink.events[0] == "list: 127.0.0.7:7001*3");
        int lookups = 0;
        for (const ScriptedDns::Query &q : server.seen)
            lookups += q.name == "gone.test";
        CHECK(lookups == 2);  // A and AAAA
    }
    SUBCASE("the first answer lost, the retry answered") {
        int asked = 0;
        srv = [&asked](const ScriptedDns::Query &q) {
            std::vector<std::vector<uint8_t>> out;
            if (++asked == 1) return out;
            Packet p;
            p.srv(12, 30, 1, 1, 7001, "t1.test").a(-1, "t1.test", 30, 0x7f000008);
            out.push_back(ScriptedDns::reply(q, kNoError, 1, 1, p));
            return out;
        };
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 5000));
        // The address of the additional section, not t1.test's A record (127.0.0.7).
        CHECK(sink.events[0] == "list: 127.0.0.8:7001*1");
        CHECK(asked == 2);
        CHECK(server.seen.size() == 2);
        CHECK(server.seen[0].id != server.seen[1].id);  // a new id for the retry
    }
    SUBCASE("malformed answers") {
        srv = [](const ScriptedDns::Query &q) {
            Packet p;
            p.u16(0xc000 | 0x3000).rr_fixed(dns::kTypeSrv, 1, 30, 0);
            return std::vector<std::vector<uint8_t>>{ScriptedDns::reply(q, kNoError, 1, 0, p)};
        };
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 8000));
        CHECK(sink.events[0] ==
              what + "bad answer from " + from + ": compression pointer does not point backwards");
        CHECK(server.seen.size() == 2);
    }
    SUBCASE("an answer to another question") {
        srv = [](const ScriptedDns::Query &q) {
            ScriptedDns::Query other = q;  // the same name, asked for its A records
            other.question[other.question.size() - 4] = 0;
            other.question[other.question.size() - 3] = dns::kTypeA;
            return std::vector<std::vector<uint8_t>>{
                ScriptedDns::reply(other, kNoError, 0, 0, Packet{})};
        };
        DnsSource source(base.get(), up, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 8000));
        CHECK(sink.events[0].starts_with(what + "bad answer from " + from));
    }
    SUBCASE("truncated, SERVFAIL, NXDOMAIN, NODATA, not offered") {
        unsigned flags = 0;
        Packet records;
        unsigned count = 0;
        srv = [&](const ScriptedDns::Query &q) {
            return std::vector<std::vector<uint8_t>>{
                ScriptedDns::reply(q, flags, count, 0, records)};
        };
        // Truncated: asked again over TCP (RFC 7766), where this server does not listen.
        flags = kTruncated;
        CHECK(first_event() == what + "answer truncated over UDP, and over TCP: connection " +
                                   "refused (" + from + ")");
        flags = kServFail;
        CHECK(first_event() == what + "server failed (resolver " + from + ")");
        flags = kNxDomain;
        CHECK(first_event() == what + "name does not exist (resolver " + from + ")");
        flags = kNoError;
        CHECK(first_event() == "list: ");
        records.srv(12, 30, 0, 0, 0, "");  // target ".": not offered here
        count = 1;
        CHECK(first_event() == "list: ");
    }
    SUBCASE("truncated over UDP, then over TCP: whole, or failing each way") {
        Packet one;
        one.srv(12, 30, 1, 4, 7001, "t1.test");
        srv = [&](const ScriptedDns::Query &q) {  // over UDP: more than fits, says the server
            return std::vector<std::vector<uint8_t>>{
                ScriptedDns::reply(q, kTruncated, 0, 0, Packet{})};
        };
        std::function<ScriptedDns::TcpReply(const ScriptedDns::Query &)> tcp;
        server.serve_tcp([&](const ScriptedDns::Query &q) { return tcp(q); });
        const std::string tcp_failed = what + "answer truncated over UDP, and over TCP: ";
        tcp = [&](const ScriptedDns::Query &q) {
            return ScriptedDns::TcpReply{
                ScriptedDns::framed(ScriptedDns::reply(q, kNoError, 1, 0, one))};
        };
        CHECK(first_event() == "list: 127.0.0.7:7001*4");
        CHECK(server.tcp_queries == 1);
        tcp = [&](const ScriptedDns::Query &q) {
            ScriptedDns::Query other = q;
            other.id ^= 1;
            return ScriptedDns::TcpReply{
                ScriptedDns::framed(ScriptedDns::reply(other, kNoError, 1, 0, one))};
        };
        CHECK(first_event() == tcp_failed + "the answer has another id (" + from + ")");
        tcp = [&](const ScriptedDns::Query &q) {
            return ScriptedDns::TcpReply{
                ScriptedDns::framed(ScriptedDns::reply(q, kTruncated, 0, 0, Packet{}))};
        };
        CHECK(first_event() == tcp_failed + "truncated again (" + from + ")");
        tcp = [&](const ScriptedDns::Query &q) {  // half of the answer, then the close
            std::vector<uint8_t> b =
                ScriptedDns::framed(ScriptedDns::reply(q, kNoError, 1, 0, one));
            b.resize(b.size() / 2);
            return ScriptedDns::TcpReply{b};
        };
        CHECK(first_event() == tcp_failed + "connection closed before the answer (" + from + ")");
        tcp = [&](const ScriptedDns::Query &) { return ScriptedDns::TcpReply{{0, 1, 0}}; };
        CHECK(first_event() == tcp_failed + "an answer of 1 bytes (" + from + ")");
        tcp = [&](const ScriptedDns::Query &q) {
            std::vector<uint8_t> b =
                ScriptedDns::framed(ScriptedDns::reply(q, kNoError, 1, 0, one));
            b[4] = 0x01;  // the QR bit gone: a query, not a response
            return ScriptedDns::TcpReply{b};
        };
        CHECK(first_event() == tcp_failed + "not a response (" + from + ")");
        tcp = [&](const ScriptedDns::Query &) { return ScriptedDns::TcpReply{{}, false}; };
        CHECK(first_event() == tcp_failed + "timeout (" + from + ")");  // the query timeout
    }
    SUBCASE("nobody listening") {
        int port = free_port();
        UpstreamConfig closed =
            dns_upstream("_svc._tcp.test", 0, "127.0.0.1:" + std::to_string(port), 60'000);
        DnsSource source(base.get(), closed, sink);
        source->start();
        REQUIRE(run_until(base.get(), heard(1), 2000));  // ICMP says so at once
        CHECK(sink.events[0] == what + "connection refused by 127.0.0.1:" + std::to_string(port));
    }
}

TEST_CASE("dns discovery: destroyed with lookups in flight") {
    // Nothing answers: the evdns requests and the SRV query are pending when the source goes.
    EventBasePtr base(event_base_new());
    RecordingSink sink;
    ScriptedDns silent(
        base.get(), [](const ScriptedDns::Query &) { return std::vector<std::vector<uint8_t>>{}; });
    for (const char *name : {"api.test", "_svc._tcp.test"}) {
        UpstreamConfig up = dns_upstream(name, 9001, silent.resolver(), 1000);
        std::unique_ptr<DiscoverySource> source = make_dns_discovery(base.get(), up, sink);
        source->start();
        run_for(base.get(), 50);
        source.reset();
        // evdns still runs the cancelled requests' callbacks; they must find no source.
        run_for(base.get(), 50);
    }
    CHECK(silent.seen.size() == 3);  // A + AAAA, then the SRV query
    CHECK(sink.events.empty());
}
