#include "core/fleet/target_table.h"

#include <jansson.h>
#include <sys/mman.h>
#include <time.h>

#include <cstring>
#include <memory>

#include "core/config/config.h"
#include "core/config/target_id.h"
#include "core/shm/robust_mutex.h"

namespace torii {

static TargetTable *g_table = nullptr;

TargetTable *TargetTable::instance() {
    return g_table;
}
void TargetTable::set_instance(TargetTable *table) {
    g_table = table;
}

const char *target_source_name(TargetSource source) {
    switch (source) {
        case TargetSource::config:
            return "config";
        case TargetSource::dns:
            return "dns";
        case TargetSource::file:
            return "file";
        case TargetSource::etcd:
            return "etcd";
        case TargetSource::admin:
            return "admin";
    }
    return "config";
}

TargetSource target_source_for(std::string_view type) {
    if (type == "dns") return TargetSource::dns;
    if (type == "file") return TargetSource::file;
    if (type == "etcd") return TargetSource::etcd;
    return TargetSource::config;
}

// The same clock as Worker::now_ms (machine-wide, so every process agrees).
static uint64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

static int64_t unix_ms() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

static void copy_text(char *dst, size_t cap, std::string_view src) {
    size_t n = src.size() < cap - 1 ? src.size() : cap - 1;
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

static bool same_address(const SocketAddress &a, const SocketAddress &b) {
    return a.same_host(b) && a.port() == b.port();
}

TargetTable *TargetTable::create() {
    void *mem =
        mmap(nullptr, sizeof(Header), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    auto *table = new TargetTable();
    table->h_ = static_cast<Header *>(mem);  // zero-filled: every slot free, every atomic 0
    robust_mutex_init(&table->h_->mutex);
    return table;
}

void TargetTable::destroy(TargetTable *table) {
    if (!table) return;
    munmap(table->h_, sizeof(Header));
    if (g_table == table) g_table = nullptr;
    delete table;
}

int TargetTable::find_upstream_locked(std::string_view name) const {
    for (size_t i = 0; i < kMaxUpstreams; ++i) {
        const SharedUpstream &u = h_->upstreams[i];
        if (u.used && name == u.name) return static_cast<int>(i);
    }
    return -1;
}

int TargetTable::find_upstream(std::string_view name) const {
    // Upstream records are only ever added, each fully written before `used` is set, so a
    // reader needs no lock.
    return find_upstream_locked(name);
}

int TargetTable::ensure_upstream(std::string_view name) {
    int i = find_upstream_locked(name);
    if (i >= 0) return i;
    if (name.size() >= sizeof(SharedUpstream::name)) return -1;
    for (size_t k = 0; k < kMaxUpstreams; ++k) {
        SharedUpstream &u = h_->upstreams[k];
        if (u.used) continue;
        copy_text(u.name, sizeof u.name, name);
        std::atomic_thread_fence(std::memory_order_release);
        u.used = true;
        return static_cast<int>(k);
    }
    return -1;
}

int TargetTable::find_slot(int upstream, uint64_t id) const {
    for (size_t i = 0; i < kMaxTargets; ++i) {
        const SharedTarget &t = h_->targets[i];
        if ((t.state == SlotState::live || t.state == SlotState::deleted) &&
            t.upstream == static_cast<uint32_t>(upstream) && t.id == id)
            return static_cast<int>(i);
    }
    return -1;
}

int TargetTable::find_live_address(int upstream, const SocketAddress &address) const {
    for (size_t i = 0; i < kMaxTargets; ++i) {
        const SharedTarget &t = h_->targets[i];
        if (t.state == SlotState::live && t.upstream == static_cast<uint32_t>(upstream) &&
            same_address(t.sockaddr, address))
            return static_cast<int>(i);
    }
    return -1;
}

int TargetTable::take_free_slot(uint64_t now) {
    int reusable = -1;
    for (size_t i = 0; i < kMaxTargets; ++i) {
        SharedTarget &t = h_->targets[i];
        if (t.state == SlotState::free) return static_cast<int>(i);
        if (reusable < 0 && t.state == SlotState::removed &&
            t.in_flight.load(std::memory_order_acquire) == 0 && now - t.removed_ms > kReuseDelayMs)
            reusable = static_cast<int>(i);
    }
    return reusable;
}

uint32_t TargetTable::add_locked(int upstream, uint32_t slot, uint64_t id,
                                 const SocketAddress &address, int weight, TargetSource source,
                                 bool drain, uint64_t up_since) {
    SharedTarget &t = h_->targets[slot];
    t.upstream = static_cast<uint32_t>(upstream);
    t.id = id;
    t.sockaddr = address;
    copy_text(t.address, sizeof t.address, address.to_string());
    t.weight = weight;
    t.source = source;
    t.drain = drain;
    t.admin_weight = false;
    t.admin_drain = false;
    t.removed_ms = 0;
    t.in_flight.store(0, std::memory_order_relaxed);
    t.fails.store(0, std::memory_order_relaxed);
    t.fail_window_start_ms.store(0, std::memory_order_relaxed);
    t.down_until_ms.store(0, std::memory_order_relaxed);
    t.last_failure_unix_ms.store(0, std::memory_order_relaxed);
    t.up_since_ms.store(up_since, std::memory_order_relaxed);
    t.active_down.store(0, std::memory_order_relaxed);
    t.check_result = 0;
    t.check_successes = 0;
    t.check_failures = 0;
    t.check_unix_ms = 0;
    t.check_message[0] = '\0';
    std::atomic_thread_fence(std::memory_order_release);
    t.state = SlotState::live;
    return slot;
}

void TargetTable::remove_locked(uint32_t slot, uint64_t now) {
    SharedTarget &t = h_->targets[slot];
    t.state = SlotState::removed;
    t.removed_ms = now;
}

// ---- the master: config and saved admin changes ---------------------------------------------

Result<void> TargetTable::apply_config(const Config &config, bool initial) {
    RobustLock lock(&h_->mutex);
    uint64_t now = monotonic_ms();
    for (const auto &[name, u] : config.upstreams) {
        int up = ensure_upstream(name);
        if (up < 0)
            return Error{"upstream \"" + name + "\": the target table is full (" +
                         std::to_string(kMaxUpstreams) + " upstreams at most)"};
        bool changed = false;
        std::vector<bool> present(u.targets.size(), false);
        TargetSource discovered = target_source_for(u.discovery.type);
        for (uint32_t i = 0; i < kMaxTargets; ++i) {
            SharedTarget &t = h_->targets[i];
            if (t.upstream != static_cast<uint32_t>(up)) continue;
            if (t.state != SlotState::live && t.state != SlotState::deleted) continue;
            if (t.source == TargetSource::config) {
                size_t k = 0;
                while (k < u.targets.size() && u.targets[k].id != t.id)
                    ++k;
                if (k == u.targets.size()) {  // no longer in the file
                    remove_locked(i, now);
                    changed = true;
                    continue;
                }
                present[k] = true;
                if (t.state == SlotState::live && !t.admin_weight &&
                    t.weight != u.targets[k].weight) {
                    t.weight = u.targets[k].weight;
                    changed = true;
                }
            } else if (t.source != TargetSource::admin && t.source != discovered &&
                       t.state == SlotState::live) {
                remove_locked(i, now);  // that discovery source is gone from the upstream
                changed = true;
            }
        }
        for (size_t k = 0; k < u.targets.size(); ++k) {
            if (present[k]) continue;
            const TargetConfig &tc = u.targets[k];
            // Added through the admin API or found by discovery first: now the file has it.
            int same = find_live_address(up, tc.sockaddr);
            if (same >= 0 && h_->targets[same].source != TargetSource::config) {
                h_->targets[same].source = TargetSource::config;
                h_->targets[same].id = tc.id;
                changed = true;
                continue;
            }
            int slot = take_free_slot(now);
            if (slot < 0)
                return Error{"upstream \"" + name + "\": the target table is full (" +
                             std::to_string(kMaxTargets) + " targets at most)"};
            add_locked(up, static_cast<uint32_t>(slot), tc.id, tc.sockaddr, tc.weight,
                       TargetSource::config, false, initial ? 0 : now);
            changed = true;
        }
        if (changed) bump(up);
    }
    return {};
}

namespace {
struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;
}  // namespace

std::string TargetTable::admin_state_json() {
    JsonPtr root(json_object());
    json_t *ups = json_object();
    json_object_set_new(root.get(), "version", json_integer(1));
    json_object_set_new(root.get(), "upstreams", ups);
    {
        RobustLock lock(&h_->mutex);
        for (uint32_t u = 0; u < kMaxUpstreams; ++u) {
            if (!h_->upstreams[u].used) continue;
            json_t *add = json_array(), *patch = json_array(), *del = json_array();
            for (uint32_t i = 0; i < kMaxTargets; ++i) {
                const SharedTarget &t = h_->targets[i];
                if (t.upstream != u) continue;
                if (t.state == SlotState::deleted) {
                    json_array_append_new(del, json_string(t.address));
                } else if (t.state == SlotState::live && t.source == TargetSource::admin) {
                    json_array_append_new(add, json_pack("{s:s,s:i,s:b}", "address", t.address,
                                                         "weight", t.weight, "drain", t.drain));
                } else if (t.state == SlotState::live && (t.admin_weight || t.admin_drain)) {
                    json_t *p = json_pack("{s:s}", "address", t.address);
                    if (t.admin_weight) json_object_set_new(p, "weight", json_integer(t.weight));
                    if (t.admin_drain) json_object_set_new(p, "drain", json_boolean(t.drain));
                    json_array_append_new(patch, p);
                }
            }
            if (!json_array_size(add) && !json_array_size(patch) && !json_array_size(del)) {
                json_decref(add);
                json_decref(patch);
                json_decref(del);
                continue;
            }
            json_t *entry = json_object();
            json_object_set_new(entry, "add", add);
            json_object_set_new(entry, "patch", patch);
            json_object_set_new(entry, "delete", del);
            json_object_set_new(ups, h_->upstreams[u].name, entry);
        }
    }
    char *text = json_dumps(root.get(), JSON_INDENT(2) | JSON_SORT_KEYS);
    std::string out = text ? text : "{}";
    free(text);
    out += '\n';
    return out;
}

Result<void> TargetTable::apply_admin_state(std::string_view text) {
    json_error_t err;
    JsonPtr root(json_loadb(text.data(), text.size(), 0, &err));
    if (!root) return Error{"line " + std::to_string(err.line) + ": " + err.text};
    json_t *ups = json_object_get(root.get(), "upstreams");
    if (!json_is_object(ups)) return Error{"expected {\"upstreams\": {...}}"};
    std::string skipped;
    const char *name;
    json_t *entry;
    json_object_foreach(ups, name, entry) {
        int up = find_upstream(name);
        if (up < 0) {
            skipped += std::string(skipped.empty() ? "" : ", ") + name;
            continue;
        }
        auto address_of = [](json_t *v) -> std::optional<SocketAddress> {
            const char *a = json_is_string(v) ? json_string_value(v) : nullptr;
            if (!a) return std::nullopt;
            Result<SocketAddress> r = SocketAddress::parse(a);
            if (!r) return std::nullopt;
            return r.value();
        };
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(entry, "delete"), i, v) {
            if (auto a = address_of(v)) admin_remove(up, *a);
        }
        json_array_foreach(json_object_get(entry, "add"), i, v) {
            auto a = address_of(json_object_get(v, "address"));
            if (!a) continue;
            json_t *w = json_object_get(v, "weight");
            int weight = json_is_integer(w) ? static_cast<int>(json_integer_value(w)) : 1;
            bool drain = json_is_true(json_object_get(v, "drain"));
            if (admin_add(up, *a, weight, drain) == Change::exists)
                admin_patch(up, *a, weight, drain);
        }
        json_array_foreach(json_object_get(entry, "patch"), i, v) {
            auto a = address_of(json_object_get(v, "address"));
            if (!a) continue;
            json_t *w = json_object_get(v, "weight"), *d = json_object_get(v, "drain");
            std::optional<int> weight;
            std::optional<bool> drain;
            if (json_is_integer(w)) weight = static_cast<int>(json_integer_value(w));
            if (json_is_boolean(d)) drain = json_is_true(d);
            admin_patch(up, *a, weight, drain);
        }
    }
    if (!skipped.empty())
        return Error{"changes for upstreams no longer configured were skipped: " + skipped};
    return {};
}

// ---- reading ------------------------------------------------------------------------------------

std::vector<TargetTable::Member> TargetTable::members(int upstream, uint64_t *version) {
    std::vector<Member> out;
    RobustLock lock(&h_->mutex);
    *version = h_->upstreams[upstream].version.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < kMaxTargets; ++i) {
        const SharedTarget &t = h_->targets[i];
        if (t.state != SlotState::live || t.upstream != static_cast<uint32_t>(upstream)) continue;
        out.push_back(Member{i, t.id, t.sockaddr, t.address, t.weight, t.source, t.drain});
    }
    return out;
}

std::vector<TargetTable::Snapshot> TargetTable::snapshot(int upstream) {
    std::vector<Snapshot> out;
    RobustLock lock(&h_->mutex);
    for (uint32_t i = 0; i < kMaxTargets; ++i) {
        const SharedTarget &t = h_->targets[i];
        if (t.upstream != static_cast<uint32_t>(upstream)) continue;
        uint32_t in_flight = t.in_flight.load(std::memory_order_relaxed);
        bool shown =
            t.state == SlotState::live ||
            ((t.state == SlotState::removed || t.state == SlotState::deleted) && in_flight > 0);
        if (!shown) continue;
        out.push_back(Snapshot{i, t.id, t.address, t.weight, t.source, t.state, t.drain,
                               t.active_down.load(std::memory_order_relaxed) != 0,
                               t.down_until_ms.load(std::memory_order_relaxed), in_flight,
                               t.last_failure_unix_ms.load(std::memory_order_relaxed),
                               t.up_since_ms.load(std::memory_order_relaxed), t.check_result,
                               t.check_unix_ms, t.check_message});
    }
    return out;
}

TargetTable::SourceStatus TargetTable::source_status(int upstream) {
    RobustLock lock(&h_->mutex);
    const SharedUpstream &u = h_->upstreams[upstream];
    return SourceStatus{u.source_failing, u.source_unix_ms, u.source_message};
}

// ---- changes --------------------------------------------------------------------------------

TargetTable::Change TargetTable::admin_add(int up, const SocketAddress &address, int weight,
                                           bool drain) {
    RobustLock lock(&h_->mutex);
    uint64_t now = monotonic_ms();
    if (find_live_address(up, address) >= 0) return Change::exists;
    for (uint32_t i = 0; i < kMaxTargets; ++i) {
        SharedTarget &t = h_->targets[i];
        if (t.state != SlotState::deleted || t.upstream != static_cast<uint32_t>(up) ||
            !same_address(t.sockaddr, address))
            continue;
        // A config target deleted earlier comes back: its tombstone lives again.
        t.weight = weight;
        t.drain = drain;
        t.admin_weight = true;
        t.admin_drain = drain;
        t.up_since_ms.store(now, std::memory_order_relaxed);
        t.down_until_ms.store(0, std::memory_order_relaxed);
        t.state = SlotState::live;
        bump(up);
        h_->admin_changes.fetch_add(1, std::memory_order_acq_rel);
        return Change::ok;
    }
    int slot = take_free_slot(now);
    if (slot < 0) return Change::full;
    add_locked(up, static_cast<uint32_t>(slot),
               stable_target_id(h_->upstreams[up].name, address, 0), address, weight,
               TargetSource::admin, drain, now);
    bump(up);
    h_->admin_changes.fetch_add(1, std::memory_order_acq_rel);
    return Change::ok;
}

TargetTable::Change TargetTable::admin_patch(int up, const SocketAddress &address,
                                             std::optional<int> weight, std::optional<bool> drain) {
    RobustLock lock(&h_->mutex);
    int slot = find_live_address(up, address);
    if (slot < 0) return Change::not_found;
    SharedTarget &t = h_->targets[slot];
    if (weight) {
        t.weight = *weight;
        t.admin_weight = t.source != TargetSource::admin;
    }
    if (drain) {
        t.drain = *drain;
        t.admin_drain = t.source != TargetSource::admin;
    }
    bump(up);
    h_->admin_changes.fetch_add(1, std::memory_order_acq_rel);
    return Change::ok;
}

TargetTable::Change TargetTable::admin_remove(int up, const SocketAddress &address) {
    RobustLock lock(&h_->mutex);
    int slot = find_live_address(up, address);
    if (slot < 0) return Change::not_found;
    SharedTarget &t = h_->targets[slot];
    if (t.source != TargetSource::config && t.source != TargetSource::admin)
        return Change::discovered;
    if (t.source == TargetSource::config) {
        t.state = SlotState::deleted;  // a tombstone, so that a reload does not revive it
        t.removed_ms = monotonic_ms();
    } else {
        remove_locked(static_cast<uint32_t>(slot), monotonic_ms());
    }
    bump(up);
    h_->admin_changes.fetch_add(1, std::memory_order_acq_rel);
    return Change::ok;
}

std::pair<size_t, size_t> TargetTable::replace_source(int up, TargetSource source,
                                                      const std::vector<Discovered> &targets,
                                                      bool *full) {
    RobustLock lock(&h_->mutex);
    uint64_t now = monotonic_ms();
    size_t added = 0, removed = 0;
    bool changed = false;
    for (uint32_t i = 0; i < kMaxTargets; ++i) {
        SharedTarget &t = h_->targets[i];
        if (t.state != SlotState::live || t.upstream != static_cast<uint32_t>(up) ||
            t.source != source)
            continue;
        const Discovered *d = nullptr;
        for (const Discovered &x : targets)
            if (same_address(x.address, t.sockaddr)) d = &x;
        if (!d) {
            remove_locked(i, now);
            ++removed;
            changed = true;
        } else if (!t.admin_weight && t.weight != d->weight) {
            t.weight = d->weight;
            changed = true;
        }
    }
    for (const Discovered &d : targets) {
        if (find_live_address(up, d.address) >= 0) continue;  // ours already, or another's
        bool tombstoned = false;
        for (uint32_t i = 0; i < kMaxTargets && !tombstoned; ++i) {
            const SharedTarget &t = h_->targets[i];
            tombstoned = t.state == SlotState::deleted && t.upstream == static_cast<uint32_t>(up) &&
                         same_address(t.sockaddr, d.address);
        }
        if (tombstoned) continue;  // deleted through the admin API: stays out
        int slot = take_free_slot(now);
        if (slot < 0) {
            if (full) *full = true;
            break;
        }
        add_locked(up, static_cast<uint32_t>(slot),
                   stable_target_id(h_->upstreams[up].name, d.address, 0), d.address, d.weight,
                   source, false, now);
        ++added;
        changed = true;
    }
    if (changed) bump(up);
    return {added, removed};
}

void TargetTable::set_source_status(int up, bool failing, std::string_view message) {
    RobustLock lock(&h_->mutex);
    SharedUpstream &u = h_->upstreams[up];
    if (!failing || !u.source_failing) u.source_unix_ms = unix_ms();
    u.source_failing = failing;
    copy_text(u.source_message, sizeof u.source_message, message);
}

// ---- health -------------------------------------------------------------------------------

bool TargetTable::note_failure(SharedTarget &t, int max_fails, uint64_t fail_timeout,
                               uint64_t now) {
    t.last_failure_unix_ms.store(unix_ms(), std::memory_order_relaxed);
    uint64_t start = t.fail_window_start_ms.load(std::memory_order_relaxed);
    if (now - start > fail_timeout &&
        t.fail_window_start_ms.compare_exchange_strong(start, now, std::memory_order_relaxed))
        t.fails.store(0, std::memory_order_relaxed);  // a new window
    uint32_t limit = static_cast<uint32_t>(max_fails > 0 ? max_fails : 1);
    uint32_t fails = t.fails.fetch_add(1, std::memory_order_relaxed) + 1;
    // Exactly one worker wins the reset from the count that crossed the limit, and marks.
    if (fails >= limit && t.fails.compare_exchange_strong(fails, 0, std::memory_order_relaxed)) {
        t.down_until_ms.store(now + fail_timeout, std::memory_order_release);
        return true;
    }
    return false;
}

int TargetTable::record_check(uint32_t slot, uint64_t id, bool ok, std::string_view message,
                              int healthy, int unhealthy) {
    RobustLock lock(&h_->mutex);
    SharedTarget &t = h_->targets[slot];
    if (t.state != SlotState::live || t.id != id) return 0;
    t.check_result = ok ? 1 : 2;
    t.check_unix_ms = unix_ms();
    copy_text(t.check_message, sizeof t.check_message, message);
    if (ok) {
        t.check_failures = 0;
        if (t.check_successes < UINT16_MAX) t.check_successes++;
    } else {
        t.check_successes = 0;
        if (t.check_failures < UINT16_MAX) t.check_failures++;
    }
    bool down = t.active_down.load(std::memory_order_relaxed) != 0;
    if (down && ok && t.check_successes >= healthy) {
        t.up_since_ms.store(monotonic_ms(), std::memory_order_relaxed);
        t.active_down.store(0, std::memory_order_release);
        return 1;
    }
    if (!down && !ok && t.check_failures >= unhealthy) {
        t.active_down.store(1, std::memory_order_release);
        return -1;
    }
    return 0;
}

}  // namespace torii
