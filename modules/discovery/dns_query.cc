#include "modules/discovery/dns_query.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/base/text_checks.h"

namespace torii {

DnsQuery::DnsQuery(event_base *base, std::vector<SocketAddress> servers, std::string name,
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

void DnsQuery::start() {
    if (servers_.empty()) return attempt_failed("no DNS server", false);
    attempt();
}

void DnsQuery::attempt() {
    const SocketAddress &server = servers_[sent_ % servers_.size()];
    ++sent_;
    read_ev_.reset();
    fd_.reset();
    why_ = "timeout from " + server.to_string();
    arc4random_buf(&id_, sizeof id_);
    Result<std::vector<uint8_t>> query = dns::build_query(id_, name_, type_);
    if (!query) return attempt_failed("cannot ask for \"" + name_ + "\": " + query.error(), false);
    query_ = *query;
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

void DnsQuery::attempt_failed(std::string why, bool retry) {
    why_ = std::move(why);
    if (!retry) sent_ = attempts_;
    read_ev_.reset();
    fd_.reset();
    timeval now{0, 0};
    evtimer_add(timer_.get(), &now);
}

void DnsQuery::on_timeout() {
    if (tcp_ && fd_.get() >= 0) return tcp_failed("timeout");
    if (sent_ < attempts_ && !tcp_) return attempt();
    finish(Outcome{why_, {}});
}

std::optional<dns::Message> DnsQuery::accept_answer(const uint8_t *data, size_t len,
                                                    std::string *why) const {
    Result<dns::Message> message = dns::parse_response(data, len);
    if (!message) {
        *why = message.error();
        return std::nullopt;
    }
    if (message->question != wanted_ || message->question_type != type_) {
        *why = "it answers another question";
        return std::nullopt;
    }
    return std::move(*message);
}

void DnsQuery::on_readable() {
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
        if (size_t(n) > dns::kMaxUdpPayload) {
            why_ = "bad answer from " + server.to_string() + ": larger than the " +
                   std::to_string(dns::kMaxUdpPayload) + " bytes asked";
            continue;
        }
        std::string why;
        std::optional<dns::Message> message = accept_answer(buf, size_t(n), &why);
        if (!message) {
            why_ = "bad answer from " + server.to_string() + ": " + why;
            continue;
        }
        if (message->truncated) return ask_over_tcp(server);
        return finish(Outcome{"", std::move(*message)});
    }
}

void DnsQuery::ask_over_tcp(const SocketAddress &server) {
    read_ev_.reset();
    fd_.reset();
    evtimer_del(timer_.get());
    tcp_ = true;
    tcp_server_ = server;
    tcp_sent_ = 0;
    tcp_in_.clear();
    const uint16_t len = static_cast<uint16_t>(query_.size());
    query_.insert(query_.begin(), {static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
    fd_.reset(::socket(server.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd_.get() < 0) return tcp_failed("socket: " + errno_text(errno));
    if (::connect(fd_.get(), server.sa(), server.length) != 0 && errno != EINPROGRESS)
        return tcp_failed(errno_text(errno));
    read_ev_.reset(event_new(base_, fd_.get(), EV_WRITE | EV_READ | EV_PERSIST, tcp_cb, this));
    timeval tv = to_timeval(timeout_);
    if (!read_ev_ || event_add(read_ev_.get(), nullptr) != 0 || evtimer_add(timer_.get(), &tv) != 0)
        return tcp_failed("cannot wait for the answer");
}

void DnsQuery::tcp_failed(const std::string &why) {
    // No other attempt: the server has the records, it only failed to hand them over.
    attempt_failed(
        "answer truncated over UDP, and over TCP: " + why + " (" + tcp_server_.to_string() + ")",
        false);
}

void DnsQuery::on_tcp_event(short what) {
    if (tcp_sent_ < query_.size() && (what & EV_WRITE)) {
        int err = 0;
        socklen_t errlen = sizeof err;
        getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &errlen);
        if (err != 0) return tcp_failed(errno_text(err));
        ssize_t n =
            ::send(fd_.get(), query_.data() + tcp_sent_, query_.size() - tcp_sent_, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) return tcp_failed(errno_text(errno));
        if (n > 0) tcp_sent_ += size_t(n);
        if (tcp_sent_ == query_.size()) {  // all out: from now on, reading only
            read_ev_.reset(event_new(base_, fd_.get(), EV_READ | EV_PERSIST, tcp_cb, this));
            if (!read_ev_ || event_add(read_ev_.get(), nullptr) != 0)
                return tcp_failed("cannot wait for the answer");
        }
        return;
    }
    if (!(what & EV_READ)) return;
    // The length first, then the message it announces (at most 65,535 bytes): never more.
    auto want = [this] {
        return tcp_in_.size() < 2 ? size_t{2} : 2 + (size_t(tcp_in_[0]) << 8 | tcp_in_[1]);
    };
    const size_t had = tcp_in_.size();
    tcp_in_.resize(want());
    ssize_t n = ::recv(fd_.get(), tcp_in_.data() + had, tcp_in_.size() - had, 0);
    if (n < 0) {
        tcp_in_.resize(had);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        return tcp_failed(errno_text(errno));
    }
    tcp_in_.resize(had + size_t(n));
    if (n == 0) return tcp_failed("connection closed before the answer");
    if (tcp_in_.size() < want()) return;  // more to come (the event is level-triggered)
    const uint8_t *msg = tcp_in_.data() + 2;
    const size_t len = tcp_in_.size() - 2;
    if (len < 2) return tcp_failed("an answer of " + std::to_string(len) + " bytes");
    if ((msg[0] << 8 | msg[1]) != id_) return tcp_failed("the answer has another id");
    std::string why;
    std::optional<dns::Message> message = accept_answer(msg, len, &why);
    if (!message) return tcp_failed(why);
    if (message->truncated) return tcp_failed("truncated again");
    finish(Outcome{"", std::move(*message)});
}

void DnsQuery::finish(Outcome outcome) {
    read_ev_.reset();
    fd_.reset();
    evtimer_del(timer_.get());
    Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(outcome));  // last: it may destroy us
}

void DnsQuery::readable_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsQuery *>(arg)->on_readable();
}

void DnsQuery::tcp_cb(evutil_socket_t, short what, void *arg) {
    static_cast<DnsQuery *>(arg)->on_tcp_event(what);
}

void DnsQuery::timer_cb(evutil_socket_t, short, void *arg) {
    static_cast<DnsQuery *>(arg)->on_timeout();
}

}  // namespace torii
