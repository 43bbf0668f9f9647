#include "core/fleet/fleet.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/base/log.h"
#include "core/fleet/target_table.h"
#include "modules/discovery/discovery_source.h"
#include "modules/health/health_checker.h"

namespace torii {

// How often the fleet looks for unsaved admin changes: the state file lags the API by this.
static constexpr int64_t kStateTickMs = 200;

bool fleet_needed(const Config &config) {
    for (const auto &[name, u] : config.upstreams)
        if (u.health.enabled || !u.discovery.type.empty()) return true;
    return config.admin && !config.admin->state_file.empty();
}

Result<void> restore_admin_state(TargetTable &table, const Config &config) {
    if (!config.admin || config.admin->state_file.empty()) return {};
    const std::string &path = config.admin->state_file;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return {};
        return Error{"admin state_file " + path + ": " + strerror(errno)};
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    Result<void> applied = table.apply_admin_state(text);
    if (!applied) return Error{"admin state_file " + path + ": " + applied.error()};
    return {};
}

// Where one upstream's discovery source reports: into the table, and the log.
struct Fleet::Discovery final : DiscoverySink {
    Fleet &fleet;
    const UpstreamConfig &upstream;
    int index;
    TargetSource source;
    std::unique_ptr<DiscoverySource> impl;
    std::string last_error;

    Discovery(Fleet &f, const UpstreamConfig &u, int i)
        : fleet(f), upstream(u), index(i), source(target_source_for(u.discovery.type)) {}

    void on_targets(std::vector<DiscoveredTarget> targets) override {
        std::vector<TargetTable::Discovered> list;
        list.reserve(targets.size());
        for (const DiscoveredTarget &t : targets)
            list.push_back({t.address, t.weight});
        bool full = false;
        auto [added, removed] = fleet.table_.replace_source(index, source, list, &full);
        fleet.table_.set_source_status(index, false, "");
        if (!last_error.empty())
            log_notice("upstream \"%s\": %s discovery works again", upstream.name.c_str(),
                       target_source_name(source));
        last_error.clear();
        if (added || removed)
            log_notice("upstream \"%s\": %s discovery: %zu target(s), %zu joined, %zu left",
                       upstream.name.c_str(), target_source_name(source), targets.size(), added,
                       removed);
        if (full)
            log_error(
                "upstream \"%s\": the target table is full (%zu targets); some discovered "
                "targets were left out",
                upstream.name.c_str(), TargetTable::kMaxTargets);
    }

    void on_source_error(const std::string &message) override {
        fleet.table_.set_source_status(index, true, message);
        if (message == last_error) return;  // said once, not at every retry
        last_error = message;
        log_warn("upstream \"%s\": %s; keeping the last known targets", upstream.name.c_str(),
                 message.c_str());
    }
};

Fleet::Fleet(event_base *base, std::shared_ptr<const Config> config, TargetTable &table)
    : base_(base), config_(std::move(config)), table_(table) {}

Fleet::~Fleet() = default;

void Fleet::start() {
    for (const auto &[name, u] : config_->upstreams) {
        int index = table_.find_upstream(name);
        if (index < 0) continue;  // laid down by the master before the fork; cannot happen
        if (!u.discovery.type.empty()) {
            auto d = std::make_unique<Discovery>(*this, u, index);
            if (u.discovery.type == "dns") d->impl = make_dns_discovery(base_, u, *d);
            if (u.discovery.type == "file") d->impl = make_file_discovery(base_, u, *d);
            if (u.discovery.type == "etcd") d->impl = make_etcd_discovery(base_, u, *d);
            if (d->impl) {
                d->impl->start();
                discoveries_.push_back(std::move(d));
            } else {
                log_error("upstream \"%s\": %s discovery is not available in this build",
                          name.c_str(), u.discovery.type.c_str());
            }
        }
        if (u.health.enabled) {
            checkers_.push_back(std::make_unique<HealthChecker>(base_, u, table_, index));
            checkers_.back()->start();
        }
    }
    if (config_->admin && !config_->admin->state_file.empty()) {
        state_timer_.reset(event_new(base_, -1, EV_PERSIST, on_state_tick_cb, this));
        timeval tv = to_timeval(kStateTickMs);
        event_add(state_timer_.get(), &tv);
    }
}

void Fleet::on_state_tick_cb(evutil_socket_t, short, void *ctx) {
    static_cast<Fleet *>(ctx)->save_state();
}

// The admin changes as JSON, written whole to a temporary file and renamed over the old one:
// a crash at any point leaves either the old state or the new, never half of one.
void Fleet::save_state() {
    if (!config_->admin || config_->admin->state_file.empty()) return;
    uint64_t changes = table_.admin_changes();
    if (changes == saved_changes_) return;
    const std::string &path = config_->admin->state_file;
    std::string tmp = path + ".tmp";
    std::string json = table_.admin_state_json();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    size_t off = 0;
    while (ok && off < json.size()) {
        ssize_t n = ::write(fd, json.data() + off, json.size() - off);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        off += ok ? static_cast<size_t>(n) : 0;
    }
    ok = ok && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    ok = ok && ::rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) {
        log_error("admin state_file %s: cannot write it: %s; retrying", path.c_str(),
                  strerror(errno));
        return;
    }
    saved_changes_ = changes;
}

}  // namespace torii
