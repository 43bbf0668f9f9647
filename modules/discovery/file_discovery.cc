#include "modules/discovery/file_discovery.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "core/base/libevent_ptr.h"
#include "modules/discovery/discovery_report.h"

namespace torii {

namespace {

// Plain digits with a value in [lo, hi]; nothing else (no sign, no spaces, no hex).
std::optional<int> parse_number(std::string_view text, int lo, int hi) {
    if (text.empty() || text.size() > 7) return std::nullopt;
    int value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    if (value < lo || value > hi) return std::nullopt;
    return value;
}

// "\"TEXT\": WHAT", appended piece by piece: g++ 12 at -O3 reports a false -Wrestrict on
// "\"" + std::string(...).
std::string quoted(std::string_view text, std::string_view what) {
    std::string m = "\"";
    m += text;
    m += "\": ";
    m += what;
    return m;
}

Result<SocketAddress> parse_address(std::string_view text) {
    std::string_view host;
    std::string_view port_text;
    bool v6 = text.starts_with('[');
    if (v6) {
        size_t close = text.find(']');
        if (close == std::string_view::npos || text.substr(close + 1, 1) != ":")
            return make_error(quoted(text, "expected [IPv6]:port"));
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) return make_error(quoted(text, "expected host:port"));
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    std::optional<int> port = parse_number(port_text, 1, 65535);
    if (!port) return make_error(quoted(text, "port must be 1..65535"));
    std::string host_z(host);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&ss);
        if (inet_pton(AF_INET6, host_z.c_str(), &sin6->sin6_addr) != 1)
            return make_error(quoted(host_z, "not an IPv6 address"));
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(uint16_t(*port));
        len = sizeof *sin6;
    } else {
        auto *sin = reinterpret_cast<sockaddr_in *>(&ss);
        if (host_z == "localhost") host_z = "127.0.0.1";
        if (inet_pton(AF_INET, host_z.c_str(), &sin->sin_addr) != 1)
            return make_error(quoted(host_z, "expected an IP address or localhost"));
        sin->sin_family = AF_INET;
        sin->sin_port = htons(uint16_t(*port));
        len = sizeof *sin;
    }
    SocketAddress address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&ss), len);
    if (address.is_wildcard()) return make_error(quoted(text, "not an address to connect to"));
    return address;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// The line's words, comments cut off.
std::vector<std::string_view> words(std::string_view line) {
    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i]))
            ++i;
        size_t start = i;
        while (i < line.size() && !is_space(line[i]))
            ++i;
        if (i > start) out.push_back(line.substr(start, i - start));
    }
    return out;
}

struct Stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    timespec mtime;

    explicit Stamp(const struct stat &st)
        : dev(st.st_dev), ino(st.st_ino), size(st.st_size), mtime(st.st_mtim) {}
    bool operator==(const Stamp &o) const {
        return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
               mtime.tv_nsec == o.mtime.tv_nsec;
    }
};

class FileDiscovery final : public DiscoverySource {
public:
    FileDiscovery(event_base *base, const UpstreamConfig &upstream, DiscoverySink &sink)
        : report_(sink),
          path_(upstream.discovery.path),
          interval_(upstream.discovery.interval),
          timer_(evtimer_new(base, timer_cb, this)) {}

    // The first check runs from the loop, like every later one: the sink never hears from
    // inside start().
    void start() override {
        if (timer_) event_active(timer_.get(), EV_TIMEOUT, 0);
    }

private:
    void check();
    Result<std::string> read(Stamp &stamp) const;
    static void timer_cb(evutil_socket_t, short, void *arg);

    DiscoveryReport report_;
    std::string path_;
    Millis interval_;
    EventPtr timer_;
    std::optional<Stamp> seen_;  // the version last read (none: read at the next check)
    bool recheck_ = false;       // read it again even if the stamp is the same
};

void FileDiscovery::timer_cb(evutil_socket_t, short, void *arg) {
    auto *self = static_cast<FileDiscovery *>(arg);
    timeval tv = to_timeval(self->interval_);
    evtimer_add(self->timer_.get(), &tv);
    self->check();  // last: the sink may destroy us
}

void FileDiscovery::check() {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
        seen_.reset();
        return report_.error("file " + path_ + ": " + std::strerror(errno));
    }
    if (seen_ && *seen_ == Stamp(st) && !recheck_) return;
    Stamp stamp(st);
    Result<std::string> text = read(stamp);
    if (!text) {
        seen_.reset();
        return report_.error("file " + path_ + ": " + text.error());
    }
    seen_ = stamp;
    // Timestamps move in clock ticks: a second write within the tick of the one just read
    // may leave the same time and size. While the file is that fresh, read it again next
    // time (the report says nothing if the list is the same).
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    recheck_ = now.tv_sec - stamp.mtime.tv_sec < 2;
    Result<std::vector<DiscoveredTarget>> targets = parse_targets_file(*text);
    if (!targets) return report_.error("file " + path_ + ": " + targets.error());
    report_.targets(std::move(*targets));
}

// The whole file, and the stamp of what was read (the opened file's, which may be newer than
// the stat() before it).
Result<std::string> FileDiscovery::read(Stamp &stamp) const {
    UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st;
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return make_error(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return make_error("not a regular file");
    stamp = Stamp(st);
    std::string text;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(std::strerror(errno));
        if (n == 0) break;
        text.append(buf, size_t(n));
        if (text.size() > kMaxTargetsFile)
            return make_error("larger than " + std::to_string(kMaxTargetsFile) + " bytes");
    }
    return text;
}

}  // namespace

Result<std::vector<DiscoveredTarget>> parse_targets_file(std::string_view text) {
    std::vector<DiscoveredTarget> targets;
    size_t number = 0;
    while (!text.empty()) {
        ++number;
        size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        std::string at = "line " + std::to_string(number) + ": ";
        // A NUL would end the text inet_pton() sees, and "10.0.0.1\0junk" would pass.
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && !is_space(c)) || c == 0x7f)
                return make_error(at + "control character");
        std::vector<std::string_view> w = words(line);
        if (w.empty()) continue;
        if (w.size() > 2) return make_error(at + "unexpected \"" + std::string(w[2]) + "\"");
        Result<SocketAddress> address = parse_address(w[0]);
        if (!address) return make_error(at + address.error());
        DiscoveredTarget target{*address, 1};
        if (w.size() == 2) {
            std::optional<int> weight = parse_number(w[1], 1, kMaxDiscoveredWeight);
            if (!weight)
                return make_error(at + "weight \"" + std::string(w[1]) + "\" is not 1..1000000");
            target.weight = *weight;
        }
        targets.push_back(target);
    }
    return targets;
}

std::unique_ptr<DiscoverySource> make_file_discovery(event_base *base,
                                                     const UpstreamConfig &upstream,
                                                     DiscoverySink &sink) {
    if (upstream.discovery.type != "file") return nullptr;
    return std::make_unique<FileDiscovery>(base, upstream, sink);
}

}  // namespace torii
