#include "modules/discovery/dns_udp_query.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace torii {

DnsUdpQuery::DnsUdpQuery(event_base *base, std::vector<SocketAddress> servers, std::string name,
                         uint16_t type, Millis timeout, int attempts, Done done)
    : base_(base),
      servers_(std::move(servers)),
      name_(std::move(name)),
      wanted_(dns::normalize_name(name_)),
      type_(type),
      timeout_(timeout),
      attempts_(attempts < 1 ? 1 : attempts),
      done_(std::move(done)),
      timer_(evtimer_new(base, timer_cb, this)) {}

void DnsUdpQuery::start() {
    if (servers_.empty()) return attempt_failed("no DNS server", false);
    attempt();
}

void DnsUdpQuery::attempt() {
    const SocketAddress &server = servers_[sent_ % servers_.size()];
    ++sent_;
    read_ev_.reset();
    fd_.reset();
    why_ = "timeout from " + server.to_string();
    arc4random_buf(&id_, sizeof id_);
    Result<std::vector<uint8_t>> query = dns::build_query(id_, name_, type_);
    if (!query) return attempt_failed("cannot ask for \"" + name_ + "\": " + query.error(), false);
    fd_.reset(::socket(server.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd_.get() < 0) return attempt_failed(std::string("socket: ") + std::strerror(errno));
    // Connected: the kernel drops datagrams from anyone but the server, and an ICMP port
    // unreachable comes back as ECONNREFUSED instead of a silent timeout.
    if (::connect(fd_.get(), server.sa(), server.length) != 0 ||
        ::send(fd_.get(), query->data(), query->size(), 0) != ssize_t(query->size())) {
        std::string why = std::strerror(errno);
        return attempt_failed(why + " (" + server.to_string() + ")");
    }
    read_ev_.reset(event_new(base_, fd_.get(), EV_READ | EV_PERSIST, readable_cb, this));
    timeval tv = to_timeval(timeout_);
    if (!read_ev_ || event_add(read_ev_.get(), nullptr) != 0 || evtimer_add(timer_.get(), &tv) != 0)
        return attempt_failed("cannot wait for the answer", false);
}

void DnsUdpQuery::attempt_failed(std::string why, bool retry) {
    why_ = std::move(why);
    if (!retry) sent_ = attempts_;
    read_ev_.reset();
    fd_.reset();
    timeval now{0, 0};
    evtimer_add(timer_.get(), &now);
}

void DnsUdpQuery::on_timeout() {
    if (sent_ < attempts_) return attempt();
    finish(Outcome{why_, {}});
}

void DnsUdpQuery::on_readable() {
    const SocketAddress &server = servers_[(sent_ - 1) % servers_.size()];
    // One byte more than we asked for tells a datagram that did not fit from one that did.
    uint8_t buf[dns::kMaxUdpPayload + 1];
    for (int i = 0; i < 16; ++i) {
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
            if (err == ECONNREFUSED)
                return attempt_failed("connection refused by " + server.to_string());
            return attempt_failed(std::string(std::strerror(err)) + " (" + server.to_string() +
                                  ")");
        }
        // Not for this attempt (a late answer to the previous one, or forged): keep waiting.
        if (n < 2 || (buf[0] << 8 | buf[1]) != id_) continue;
        std::string bad = "bad answer from " + server.to_string() + ": ";
        if (size_t(n) > dns::kMaxUdpPayload) {
            why_ = bad + "larger than the " + std::to_string(dns::kMaxUdpPayload) + " bytes asked";
            continue;
        }
        Result<dns::Message> message = dns::parse_response(buf, size_t(n));
        if (!message) {
            why_ = bad + message.error();
            continue;
        }
        if (message->question != wanted_ || message->question_type != type_) {
            why_ = bad + "it answers another question";
            continue;
        }
        return finish(Outcome{"", std::move(*message)});
    }
}

void DnsUdpQuery::finish(Outcome outcome) {
    read_ev_.reset();
    fd_.reset();
    evtimer_del(timer_.get());
    Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(outcome));  // last: it may destroy us
}

void DnsUdpQuery::readable_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsUdpQuery *>(arg)->on_readable();
}

void DnsUdpQuery::timer_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsUdpQuery *>(arg)->on_timeout();
}

}  // namespace torii
