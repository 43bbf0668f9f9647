#include "bench/loadgen/load_loop.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <ctime>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string_view>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/loadgen/response_framer.h"

namespace torii::loadgen {

namespace {

constexpr int64_t kNs = 1'000'000'000;
constexpr int64_t kRetryNs = 10'000'000;  // a failed connect is tried again after 10 ms

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * kNs + ts.tv_nsec;
}

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    ~Fd() { reset(); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }
    int get() const { return fd_; }

private:
    int fd_ = -1;
};

enum class ConnState { kDown, kConnecting, kIdle, kBusy };

struct Conn {
    Fd fd;
    ConnState state = ConnState::kDown;
    unsigned target = 0;  // index into Options::targets
    ResponseFramer framer;
    uint64_t request = 0;     // index of the request in flight
    std::string_view unsent;  // what is left to write of it
    int64_t retry_at = 0;     // kDown: when to connect again
};

// What the loop keeps per target: its address, its requests ready to write, its free
// connections and the due requests waiting for one (FIFO).
struct TargetState {
    sockaddr_in addr{};
    std::vector<std::string> requests;  // one per path
    std::vector<Conn *> idle;
    std::deque<uint64_t> waiting;
    Report *report = nullptr;
    int64_t last_measured_end = 0;
};

class LoadLoop {
public:
    LoadLoop(const Options &o, std::vector<Report> *r) : o_(o), reports_(r) {}
    bool run(std::string *error);

private:
    int64_t due_at(uint64_t i) const {
        return t0_ + static_cast<int64_t>(std::llround(static_cast<double>(i) * period_ns_));
    }
    // Slices go round the targets, a whole number of requests each: the one whose slice
    // holds request i.
    uint64_t slice_of(uint64_t i) const { return i / per_slice_; }
    unsigned target_of(uint64_t i) const {
        if (targets_.size() == 1) return 0;
        return static_cast<unsigned>(slice_of(i) % targets_.size());
    }
    int64_t next_wake(int64_t deadline) const;
    bool measured(uint64_t i) const { return i >= warm_count_; }
    void connect(Conn &c, int64_t now);
    void close_conn(Conn &c, int64_t retry_at);
    void fail(Conn &c, int64_t now, bool failed);
    void dispatch(int64_t now);
    void send_some(Conn &c, int64_t now);
    void on_event(Conn &c, uint32_t events, int64_t now);
    void on_response(Conn &c, int64_t now);
    bool wait(int64_t deadline);

    const Options &o_;
    std::vector<Report> *reports_;
    Fd epoll_;
    std::vector<TargetState> targets_;
    std::unique_ptr<Conn[]> conns_;
    unsigned conn_count_ = 0;  // connections per target times targets
    unsigned down_ = 0;        // connections in kDown: the loop looks for them only when there are
    int64_t t0_ = 0;
    double period_ns_ = 0;
    uint64_t per_slice_ = 1;   // requests in a slice: --slice at the rate, at least one
    uint64_t warm_count_ = 0;  // requests due in the warm-up
    uint64_t total_ = 0;       // requests in the whole schedule
    uint64_t issued_ = 0;      // requests whose due time has come
    uint64_t finished_ = 0;    // of which answered or failed
    char buf_[64 * 1024];
};

void LoadLoop::connect(Conn &c, int64_t now) {
    c.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    c.framer.reset();
    c.unsent = {};
    if (c.fd.get() < 0) {
        c.state = ConnState::kDown;
        c.retry_at = now + kRetryNs;
        return;
    }
    const int one = 1;
    setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in &addr = targets_[c.target].addr;
    if (::connect(c.fd.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof addr) < 0 &&
        errno != EINPROGRESS) {
        c.fd.reset();
        c.state = ConnState::kDown;
        c.retry_at = now + kRetryNs;
        return;
    }
    // Edge-triggered: every read drains to EAGAIN (or to the end of the answer awaited).
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &c;
    epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev);
    c.state = ConnState::kConnecting;
    --down_;
}

void LoadLoop::close_conn(Conn &c, int64_t retry_at) {
    if (c.state == ConnState::kIdle) std::erase(targets_[c.target].idle, &c);
    c.fd.reset();
    c.state = ConnState::kDown;
    c.retry_at = retry_at;
    ++down_;
    ++targets_[c.target].report->reconnects;
}

// Drops the connection: the request in flight, if any, ends as an error. It is made again at
// once after a close between requests, kRetryNs after a failure.
void LoadLoop::fail(Conn &c, int64_t now, bool failed) {
    Report &r = *targets_[c.target].report;
    if (c.state == ConnState::kBusy) {
        ++finished_;
        if (measured(c.request)) ++r.errors;
    } else if (failed) {
        ++r.connection_errors;
    }
    close_conn(c, failed ? now + kRetryNs : now);
}

void LoadLoop::dispatch(int64_t now) {
    for (; issued_ < total_ && due_at(issued_) <= now; ++issued_) {
        TargetState &t = targets_[target_of(issued_)];
        t.waiting.push_back(issued_);
        if (t.waiting.size() > t.report->max_queue && measured(issued_))
            t.report->max_queue = t.waiting.size();
    }
    for (TargetState &t : targets_) {
        while (!t.waiting.empty() && !t.idle.empty()) {
            Conn &c = *t.idle.back();
            t.idle.pop_back();
            c.state = ConnState::kBusy;
            c.request = t.waiting.front();
            t.waiting.pop_front();
            c.unsent = t.requests[c.request % t.requests.size()];
            c.framer.reset();
            if (measured(c.request)) ++t.report->sent;
            send_some(c, now);
        }
    }
}

void LoadLoop::send_some(Conn &c, int64_t now) {
    while (!c.unsent.empty()) {
        const ssize_t n = ::send(c.fd.get(), c.unsent.data(), c.unsent.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;  // EPOLLOUT goes on
            fail(c, now, true);
            return;
        }
        c.unsent.remove_prefix(static_cast<size_t>(n));
    }
}

void LoadLoop::on_response(Conn &c, int64_t now) {
    ++finished_;
    TargetState &t = targets_[c.target];
    if (measured(c.request)) {
        Report &r = *t.report;
        ++r.completed;
        const int status = c.framer.status();
        if (status < 200 || status > 299) ++r.non_2xx;
        const int64_t latency = now - due_at(c.request);
        r.latency_us.record(latency > 0 ? static_cast<uint64_t>(latency) / 1000 : 0);
        t.last_measured_end = now;
    }
    if (c.framer.keep_alive()) {
        c.state = ConnState::kIdle;
        t.idle.push_back(&c);
    } else {
        close_conn(c, now);  // answered, then closed as the response said: no error
    }
}

void LoadLoop::on_event(Conn &c, uint32_t events, int64_t now) {
    if (c.state == ConnState::kDown) return;
    if (c.state == ConnState::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail(c, now, true);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN))) return;
        c.state = ConnState::kIdle;
        targets_[c.target].idle.push_back(&c);
    }
    if (c.state == ConnState::kBusy && (events & EPOLLOUT)) send_some(c, now);
    if (c.state == ConnState::kDown) return;
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    for (;;) {
        const ssize_t n = ::recv(c.fd.get(), buf_, sizeof buf_, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {  // the peer closed, or an error
            const bool answered = c.state == ConnState::kBusy &&
                                  c.framer.finish_at_eof() == ResponseFramer::Result::kComplete;
            if (answered) {
                on_response(c, now);  // a body delimited by the close: the close is its end
            } else {
                // Closed between requests: no error; with a request in flight: its error.
                fail(c, now, c.state == ConnState::kBusy || n < 0);
            }
            return;
        }
        if (c.state != ConnState::kBusy) {  // bytes nobody asked for
            fail(c, now, true);
            return;
        }
        size_t used = 0;
        const auto result = c.framer.feed(std::string_view(buf_, static_cast<size_t>(n)), &used);
        if (result == ResponseFramer::Result::kError ||
            (result == ResponseFramer::Result::kComplete && used != static_cast<size_t>(n))) {
            fail(c, now, true);  // a bad response, or more than one answer to one request
            return;
        }
        if (result == ResponseFramer::Result::kComplete) {
            on_response(c, now);
            return;  // nothing more is expected until the next request is written
        }
    }
}

bool LoadLoop::wait(int64_t deadline) {
    epoll_event events[256];
    const int64_t left = std::max<int64_t>(deadline - now_ns(), 0);
    const timespec ts{static_cast<time_t>(left / kNs), static_cast<long>(left % kNs)};
    int n = epoll_pwait2(epoll_.get(), events, 256, &ts, nullptr);
    if (n < 0 && errno == ENOSYS)  // before Linux 5.11: milliseconds, rounded up
        n = epoll_wait(epoll_.get(), events, 256, static_cast<int>((left + 999'999) / 1'000'000));
    if (n < 0) return errno == EINTR;
    const int64_t now = now_ns();
    for (int i = 0; i < n; ++i)
        on_event(*static_cast<Conn *>(events[i].data.ptr), events[i].events, now);
    return true;
}

// When to wake for the schedule: the due time of the next request whose target has a
// connection free to take it. While a target's requests wait, the next of its connections to
// free up takes them (their latency runs from their due times anyway), and waking for each
// due time would take the CPU the server needs; but another target's slice coming up must
// wake the loop even when every connection of this one is stuck.
int64_t LoadLoop::next_wake(int64_t deadline) const {
    if (issued_ >= total_) return deadline;
    const size_t n = targets_.size();
    uint64_t i = issued_;
    for (size_t k = 0; k < n && i < total_; ++k) {
        if (!targets_[target_of(i)].idle.empty()) return std::min(deadline, due_at(i));
        if (n == 1) break;
        i = (slice_of(i) + 1) * per_slice_;  // the first request of the next slice
    }
    return deadline;
}

bool LoadLoop::run(std::string *error) {
    const unsigned ntargets = static_cast<unsigned>(o_.targets.size());
    reports_->assign(ntargets, Report{});
    targets_.resize(ntargets);
    for (unsigned k = 0; k < ntargets; ++k) {
        const Target &tg = o_.targets[k];
        TargetState &t = targets_[k];
        t.report = &(*reports_)[k];
        t.addr.sin_family = AF_INET;
        t.addr.sin_port = htons(tg.port);
        if (inet_pton(AF_INET, tg.host.c_str(), &t.addr.sin_addr) != 1) {
            *error = "not an IPv4 address: " + tg.host;
            return false;
        }
        std::string common = "Host: " + tg.host + ":" + std::to_string(tg.port) + "\r\n";
        for (const auto &h : o_.headers) {
            if (strncasecmp(h.c_str(), "host:", 5) == 0) common.clear();
        }
        for (const auto &h : o_.headers)
            common += h + "\r\n";
        for (const auto &p : o_.paths)
            t.requests.push_back("GET " + p + " HTTP/1.1\r\n" + common + "\r\n");
        t.idle.reserve(o_.connections);
    }

    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (epoll_.get() < 0) {
        *error = std::string("epoll_create1: ") + strerror(errno);
        return false;
    }
    conn_count_ = o_.connections * ntargets;
    conns_ = std::make_unique<Conn[]>(conn_count_);

    // Every connection is up before the schedule starts: their handshakes are no latency.
    int64_t now = now_ns();
    const int64_t connect_deadline = now + static_cast<int64_t>(o_.connect_s * kNs);
    down_ = conn_count_;
    for (unsigned i = 0; i < conn_count_; ++i) {
        conns_[i].target = i / o_.connections;
        connect(conns_[i], now);
    }
    for (;;) {
        size_t up = 0;
        for (const TargetState &t : targets_)
            up += t.idle.size();
        if (up == conn_count_) break;
        now = now_ns();
        for (unsigned i = 0; down_ > 0 && i < conn_count_; ++i) {
            if (conns_[i].state == ConnState::kDown) {
                const Target &tg = o_.targets[conns_[i].target];
                *error = "cannot connect to " + tg.host + ":" + std::to_string(tg.port);
                return false;
            }
        }
        if (now >= connect_deadline) {
            *error = "connecting timed out";
            return false;
        }
        if (!wait(connect_deadline)) {
            *error = std::string("epoll: ") + strerror(errno);
            return false;
        }
    }
    for (Report &r : *reports_) {
        r.connection_errors = 0;
        r.reconnects = 0;
    }

    // Every target takes warmup_s + duration_s of the schedule, in whole slices when there
    // are several (main checks they are whole): the whole schedule is that many times longer.
    period_ns_ = static_cast<double>(kNs) / o_.rate;
    if (ntargets == 1) {
        warm_count_ = static_cast<uint64_t>(std::ceil(o_.warmup_s * o_.rate));
        total_ = warm_count_ + static_cast<uint64_t>(std::llround(o_.duration_s * o_.rate));
    } else {
        per_slice_ = std::max<int64_t>(1, std::llround(o_.slice_s * o_.rate));
        const uint64_t round = per_slice_ * ntargets;  // one slice each
        warm_count_ = static_cast<uint64_t>(std::llround(o_.warmup_s / o_.slice_s)) * round;
        total_ =
            warm_count_ + static_cast<uint64_t>(std::llround(o_.duration_s / o_.slice_s)) * round;
    }
    for (uint64_t i = warm_count_; i < total_; ++i)
        ++(*reports_)[target_of(i)].due;
    t0_ = now_ns();
    const int64_t measure_start = due_at(warm_count_);
    const int64_t measure_end = due_at(total_);
    const int64_t drain_end = measure_end + static_cast<int64_t>(o_.drain_s * kNs);
    while (finished_ < total_) {
        now = now_ns();
        if (now >= drain_end) break;
        int64_t deadline = drain_end;
        for (unsigned i = 0; down_ > 0 && i < conn_count_; ++i) {
            Conn &c = conns_[i];
            if (c.state == ConnState::kDown && c.retry_at <= now) connect(c, now);
            if (c.state == ConnState::kDown) deadline = std::min(deadline, c.retry_at);
        }
        dispatch(now);
        deadline = next_wake(deadline);
        if (!wait(deadline)) {
            *error = std::string("epoll: ") + strerror(errno);
            return false;
        }
    }
    // What the drain did not see answered counts as an error, and on its own. A target's
    // rate is over its share of the measured schedule (its due requests at the rate),
    // stretched as the whole was when the last answers came late (one target: completed over
    // the time they took).
    const double span = static_cast<double>(measure_end - measure_start);
    for (TargetState &t : targets_) {
        Report &r = *t.report;
        const uint64_t measured_finished = r.completed + r.errors;
        r.unfinished = r.due > measured_finished ? r.due - measured_finished : 0;
        r.errors += r.unfinished;
        const double stretch =
            span > 0
                ? std::max(1.0, static_cast<double>(t.last_measured_end - measure_start) / span)
                : 1.0;
        const double seconds = static_cast<double>(r.due) / o_.rate * stretch;
        r.achieved_rate = seconds > 0 ? static_cast<double>(r.completed) / seconds : 0;
    }
    return true;
}

}  // namespace

bool run_load(const Options &options, std::vector<Report> *reports, std::string *error) {
    LoadLoop loop(options, reports);
    return loop.run(error);
}

}  // namespace torii::loadgen
