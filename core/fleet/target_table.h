// The machine's one target table: every upstream's targets with their weight, drain flag,
// health, in-flight count and last failure, in one MAP_SHARED mapping that the master makes
// before the first fork and keeps across reloads. Every worker reads it; what changes it:
//
//   the master     lays each loaded config down (apply_config) and, at start, the admin
//                  changes kept in [admin] state_file (apply_admin_state)
//   the fleet      (core/fleet/fleet.h) discovery results and active health checks
//   workers        passive health (failed attempts across all workers), in-flight counts,
//                  and the admin API's POST/PATCH/DELETE
//
// Membership (who is a target, its address, weight and drain flag) changes under the table's
// robust mutex and bumps the upstream's version; a worker compares that version before each
// pick and re-reads the members only when it moved. Health and in-flight counts are atomics
// read at pick time, so a health flap costs no lock and no rebuild.
//
// Targets are known by their stable id (core/config/target_id.h). A target leaving the set is
// `removed`: no new requests, its in-flight ones finish, and its slot is reused only once none
// is left and every worker has had time to notice. A config target deleted through the admin
// API leaves a tombstone, so that a reload does not bring it back.
//
// Fixed capacity, no allocation in shared memory, plain data: nothing a crash can leave
// half-built beyond one slot's fields.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/base/socket_address.h"

namespace torii {

struct Config;
struct UpstreamConfig;

enum class TargetSource : uint8_t { config, dns, file, etcd, admin };
const char *target_source_name(TargetSource source);
// "dns" -> dns, for a discovery type; config when unknown.
TargetSource target_source_for(std::string_view discovery_type);

enum class SlotState : uint32_t {
    free = 0,
    live = 1,
    removed = 2,  // left the set: drains its in-flight requests, then becomes free
    deleted = 3,  // tombstone of a config target deleted through the admin API
};

struct SharedTarget {
    // -- membership: written under the lock; workers re-read it when the version moves
    SlotState state;
    uint32_t upstream;  // index into the table's upstreams
    uint64_t id;
    SocketAddress sockaddr;
    char address[64];  // canonical "127.0.0.1:9001" / "[::1]:9001"
    int32_t weight;
    TargetSource source;
    bool drain;         // no new requests; in-flight ones finish (admin PATCH drain)
    bool admin_weight;  // weight and drain set through the admin API: kept over the config's
    bool admin_drain;
    uint64_t removed_ms;  // monotonic, when it became removed

    // -- health and load: atomics, read at pick time by every worker
    std::atomic<uint32_t> in_flight;  // requests on it now, all workers together
    std::atomic<uint32_t> fails;      // passive: failed attempts since fail_window_start_ms
    std::atomic<uint64_t> fail_window_start_ms;
    std::atomic<uint64_t> down_until_ms;  // passive: skipped until then (monotonic)
    std::atomic<int64_t> last_failure_unix_ms;
    std::atomic<uint64_t> up_since_ms;  // monotonic: joined or came back (slow_start); 0: always
    std::atomic<uint8_t> active_down;   // the active health check says down

    // -- the last active check: written by the fleet under the lock
    uint8_t check_result;      // 0 none yet, 1 passed, 2 failed
    uint16_t check_successes;  // consecutive
    uint16_t check_failures;   // consecutive
    int64_t check_unix_ms;
    char check_message[160];
};

struct SharedUpstream {
    bool used;
    char name[64];
    std::atomic<uint64_t> version;  // bumped on every membership change
    // The discovery source's state: failing since when and why (the last list is kept).
    bool source_failing;
    int64_t source_unix_ms;  // last success, or the first failure while failing
    char source_message[160];
};

class TargetTable {
public:
    static constexpr size_t kMaxUpstreams = 256;
    static constexpr size_t kMaxTargets = 4096;
    // A removed slot is reused only this long after every in-flight request on it ended, so
    // that a worker still holding its old index has long re-read the members.
    static constexpr uint64_t kReuseDelayMs = 60'000;

    // nullptr when the mapping cannot be made.
    static TargetTable *create();
    static void destroy(TargetTable *table);
    // The table of this process tree (set by the master before forking, or by a worker
    // serving alone); nullptr in tools and unit tests that run without one.
    static TargetTable *instance();
    static void set_instance(TargetTable *table);

    // -- the master, at start and on every reload, before the generation's workers fork.
    // Config targets become those written (new ones join, ramping up with slow_start when
    // `initial` is false; gone ones drain), admin weights/drain flags and tombstones stay,
    // and discovered targets of a source the upstream no longer has are removed.
    // Returns an error when the table is full (nothing changed for that upstream).
    Result<void> apply_config(const Config &config, bool initial);
    // The admin changes saved in [admin] state_file (admin_state_json), laid over the config.
    Result<void> apply_admin_state(std::string_view json);
    // Those changes as JSON, for the state file: added targets, changed weights/drain flags,
    // deleted config targets, per upstream.
    std::string admin_state_json();

    // -- reading
    int find_upstream(std::string_view name) const;  // -1 when unknown
    uint64_t version(int upstream) const {
        return h_->upstreams[upstream].version.load(std::memory_order_acquire);
    }
    struct Member {
        uint32_t slot;
        uint64_t id;
        SocketAddress sockaddr;
        std::string address;
        int weight;
        TargetSource source;
        bool drain;
    };
    // The live targets of `upstream` in slot order, and the version they belong to.
    std::vector<Member> members(int upstream, uint64_t *version);
    SharedTarget &slot(uint32_t i) { return h_->targets[i]; }
    const SharedUpstream &upstream(int i) const { return h_->upstreams[i]; }

    // A consistent copy of the slots of `upstream` that are live or removed-but-busy, for
    // GET /upstreams (check_message and the like are read under the lock).
    struct Snapshot {
        uint32_t slot;
        uint64_t id;
        std::string address;
        int weight;
        TargetSource source;
        SlotState state;
        bool drain;
        bool active_down;
        uint64_t down_until_ms;
        uint32_t in_flight;
        int64_t last_failure_unix_ms;
        uint64_t up_since_ms;
        uint8_t check_result;
        int64_t check_unix_ms;
        std::string check_message;
    };
    std::vector<Snapshot> snapshot(int upstream);
    struct SourceStatus {
        bool failing;
        int64_t unix_ms;
        std::string message;
    };
    SourceStatus source_status(int upstream);

    // -- changes; each bumps the upstream's version
    enum class Change { ok, not_found, exists, full, discovered };
    // Admin API. add: a new target (source admin, or revives a tombstone); patch: weight
    // and/or drain; remove: the target leaves (a config target leaves a tombstone).
    Change admin_add(int upstream, const SocketAddress &address, int weight, bool drain);
    Change admin_patch(int upstream, const SocketAddress &address, std::optional<int> weight,
                       std::optional<bool> drain);
    Change admin_remove(int upstream, const SocketAddress &address);
    // Counts admin changes, so that the fleet knows when to rewrite the state file.
    uint64_t admin_changes() const { return h_->admin_changes.load(std::memory_order_acquire); }

    // A discovery source's complete list: its targets become exactly these (new ones join
    // and ramp up, missing ones are removed); a target another source already lists is left
    // to that source. Returns the number of additions and removals made.
    struct Discovered {
        SocketAddress address;
        int weight;
    };
    std::pair<size_t, size_t> replace_source(int upstream, TargetSource source,
                                             const std::vector<Discovered> &targets, bool *full);
    void set_source_status(int upstream, bool failing, std::string_view message);

    // -- health
    // Passive: an attempt on the target failed / succeeded (any worker). With `max_fails`
    // failures within `fail_timeout` the target is skipped for `fail_timeout`; true when
    // this call marked it down. Lock-free: atomics of the slot only.
    static bool note_failure(SharedTarget &t, int max_fails, uint64_t fail_timeout_ms,
                             uint64_t now_ms);
    static void note_success(SharedTarget &t) {
        // Read first: the common case writes nothing, so workers do not fight over the line.
        if (t.fails.load(std::memory_order_relaxed) != 0)
            t.fails.store(0, std::memory_order_relaxed);
    }
    // Active: the result of one check of `slot` (which must still hold `id`). Returns +1 when
    // this result marked the target up, -1 when it marked it down, 0 otherwise.
    int record_check(uint32_t slot, uint64_t id, bool ok, std::string_view message, int healthy,
                     int unhealthy);

private:
    struct Header {
        pthread_mutex_t mutex;
        std::atomic<uint64_t> admin_changes;
        SharedUpstream upstreams[kMaxUpstreams];
        SharedTarget targets[kMaxTargets];
    };
    TargetTable() = default;
    int ensure_upstream(std::string_view name);  // under the lock; -1 when full
    int find_upstream_locked(std::string_view name) const;
    // The live or tombstoned slot of `upstream` with that id / address, or -1.
    int find_slot(int upstream, uint64_t id) const;
    int find_live_address(int upstream, const SocketAddress &address) const;
    int take_free_slot(uint64_t now_ms);
    uint32_t add_locked(int upstream, uint32_t slot, uint64_t id, const SocketAddress &address,
                        int weight, TargetSource source, bool drain, uint64_t up_since_ms);
    void remove_locked(uint32_t slot, uint64_t now_ms);
    void bump(int upstream) {
        h_->upstreams[upstream].version.fetch_add(1, std::memory_order_acq_rel);
    }

    Header *h_ = nullptr;
};

}  // namespace torii
