// Counters and small key/value entries shared by every worker process: one anonymous
// MAP_SHARED mapping made before the workers fork, guarded by a robust process-shared
// mutex (a worker that dies holding it does not wedge the others). It is what makes rate
// limits, breaker states and counters exact across workers, and it lives in the master, so
// it survives a reload.
//
// A fixed open-addressing table: bounded memory, no allocation after creation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace torii {

class SharedZone {
public:
    static constexpr size_t kMaxKey = 64;
    static constexpr size_t kMaxValue = 256;

    // nullptr when the mapping cannot be made.
    static SharedZone *create(size_t capacity);
    static void destroy(SharedZone *zone);

    // The new value; 0 and *ok=false when the table is full or the key too long.
    int64_t counter_add(std::string_view key, int64_t delta, bool *ok = nullptr);
    // The core's own counters, bumped on every connection ("torii|connections",
    // "torii|accepted"): the entry is pinned (kv_delete refuses it, a TTL is ignored, so it
    // never moves) and the caller adds to it with pinned_add, an atomic add without the
    // lock or the probe. nullptr when the table is full or the key too long.
    int64_t *pin_counter(std::string_view key);
    static void pinned_add(int64_t *counter, int64_t delta);
    int64_t counter_get(std::string_view key);
    bool kv_set(std::string_view key, const void *value, size_t len, uint64_t ttl_ms);
    // 0 found (copies min(*len, size) bytes, sets *len to the size), 1 absent or expired.
    int kv_get(std::string_view key, void *buf, size_t *len);
    bool kv_delete(std::string_view key);
    // Runs fn(value, &len, arg) under the lock on the key's bytes (len 0 when new); false
    // when the table is full. A value fn leaves at len 0 is kept as an empty value.
    bool update(std::string_view key, void (*fn)(void *value, size_t *len, void *arg), void *arg,
                uint64_t ttl_ms);
    // The value bytes of `key` at a fixed address, for lock-free counters (host->shared_slot):
    // found, or made `len` bytes of zeros (len 1..kMaxValue, 8-byte aligned), and pinned as
    // pin_counter's entries are (kv_delete refuses it, a TTL is ignored). nullptr when the
    // table is full, the key too long, or the entry holds a value of another length or has
    // an expiry. Entries never move, so the pointer stays good in every process that maps
    // the zone (workers fork after the zone exists). Writers must use atomic operations
    // only; update() or kv_set() on the same key would race with them.
    void *slot(std::string_view key, size_t len);
    // Calls fn for each live entry whose key starts with prefix, with the lock held.
    void each(std::string_view prefix,
              void (*fn)(std::string_view key, int64_t counter, const void *value, size_t len,
                         void *arg),
              void *arg);
    size_t size() const;  // live entries
    size_t capacity() const;

    // State across a stop and a start (core/shm/shared_zone_state.cc): every live entry
    // whose key does not start with one of `skip`, with its counter, value and expiry, into
    // `path` (written whole, then renamed over it); and back, before any worker runs.
    // Expiries and the timestamps plugins keep in values are CLOCK_MONOTONIC, which only
    // means something on the boot that wrote them: a file from another boot is ignored.
    bool save_state(const std::string &path, std::initializer_list<std::string_view> skip,
                    std::string *error) const;
    // Entries restored (expired ones dropped); -1 with *error on a damaged or foreign file.
    long load_state(const std::string &path, std::string *error);

private:
    SharedZone() = default;
    struct Entry;
    struct Header;
    Entry *find(std::string_view key, bool create);
    void lock();
    void unlock();

    Header *h_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace torii
