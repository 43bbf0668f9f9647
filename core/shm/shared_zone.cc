#include "core/shm/shared_zone.h"
#include "core/shm/shared_zone_internal.h"

#include "core/shm/robust_mutex.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <cstring>
#include <new>

namespace torii {

uint64_t zone_monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

static uint64_t monotonic_ms() {
    return zone_monotonic_ms();
}

static uint64_t hash_key(std::string_view key) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

SharedZone *SharedZone::create(size_t capacity) {
    size_t bytes = sizeof(Header) + capacity * sizeof(Entry);
    void *mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    auto *h = static_cast<Header *>(mem);  // the mapping is zero-filled: every entry is empty
    robust_mutex_init(&h->mutex);
    h->capacity = capacity;
    auto *zone = new SharedZone();
    zone->h_ = h;
    zone->bytes_ = bytes;
    return zone;
}

void SharedZone::destroy(SharedZone *zone) {
    if (!zone) return;
    munmap(zone->h_, zone->bytes_);
    delete zone;
}

void SharedZone::lock() {
    // A worker that died inside a critical section left every entry consistent at each
    // store (see the updates below), so the table is usable as it is.
    robust_mutex_lock(&h_->mutex);
}

void SharedZone::unlock() {
    pthread_mutex_unlock(&h_->mutex);
}

// Linear probing. With create, reuses the first deleted slot on the way or the empty one
// that ends the probe. Called with the lock held.
SharedZone::Entry *SharedZone::find(std::string_view key, bool create) {
    if (key.empty() || key.size() > kMaxKey) return nullptr;
    size_t cap = h_->capacity;
    size_t i = hash_key(key) % cap;
    Entry *reuse = nullptr;
    uint64_t now = 0;
    for (size_t n = 0; n < cap; ++n, i = (i + 1) % cap) {
        Entry &e = h_->entries[i];
        if (e.state == kZoneEmpty) {
            if (!create) return nullptr;
            Entry *slot = reuse ? reuse : &e;
            slot->key_len = static_cast<uint8_t>(key.size());
            std::memcpy(slot->key, key.data(), key.size());
            slot->counter = 0;
            slot->pinned = 0;
            slot->value_len = 0;
            slot->expires_ms = 0;
            slot->state = kZoneUsed;
            h_->live++;
            return slot;
        }
        if (e.state == kZoneUsed && e.expires_ms) {
            // Any expired entry met on the way is reclaimed, whatever its key: otherwise a
            // zone used with TTLs fills with dead entries that only their own key frees.
            if (!now) now = monotonic_ms();
            if (e.expires_ms <= now) {
                e.state = kZoneDeleted;
                h_->live--;
            }
        }
        if (e.state == kZoneDeleted) {
            if (!reuse) reuse = &e;
            continue;
        }
        if (e.key_len == key.size() && std::memcmp(e.key, key.data(), key.size()) == 0) return &e;
    }
    if (create && reuse) {
        reuse->key_len = static_cast<uint8_t>(key.size());
        std::memcpy(reuse->key, key.data(), key.size());
        reuse->counter = 0;
        reuse->pinned = 0;
        reuse->value_len = 0;
        reuse->expires_ms = 0;
        reuse->state = kZoneUsed;
        h_->live++;
        return reuse;
    }
    return nullptr;
}

int64_t SharedZone::counter_add(std::string_view key, int64_t delta, bool *ok) {
    lock();
    Entry *e = find(key, true);
    int64_t v = 0;
    // Atomic: a pinned counter also changes without the lock.
    if (e) v = std::atomic_ref<int64_t>(e->counter).fetch_add(delta) + delta;
    unlock();
    if (ok) *ok = e != nullptr;
    return v;
}

int64_t *SharedZone::pin_counter(std::string_view key) {
    lock();
    Entry *e = find(key, true);
    if (e) {
        e->pinned = 1;
        e->expires_ms = 0;
    }
    unlock();
    return e ? &e->counter : nullptr;
}

void SharedZone::pinned_add(int64_t *counter, int64_t delta) {
    std::atomic_ref<int64_t>(*counter).fetch_add(delta, std::memory_order_relaxed);
}

int64_t SharedZone::counter_get(std::string_view key) {
    lock();
    Entry *e = find(key, false);
    int64_t v = e ? std::atomic_ref<int64_t>(e->counter).load(std::memory_order_relaxed) : 0;
    unlock();
    return v;
}

bool SharedZone::kv_set(std::string_view key, const void *value, size_t len, uint64_t ttl_ms) {
    if (len > kMaxValue) return false;
    lock();
    Entry *e = find(key, true);
    if (e) {
        std::memcpy(e->value, value, len);
        e->value_len = static_cast<uint16_t>(len);
        if (!e->pinned) e->expires_ms = ttl_ms ? monotonic_ms() + ttl_ms : 0;
    }
    unlock();
    return e != nullptr;
}

int SharedZone::kv_get(std::string_view key, void *buf, size_t *len) {
    lock();
    Entry *e = find(key, false);
    if (!e) {
        unlock();
        return 1;
    }
    size_t n = *len < e->value_len ? *len : e->value_len;
    std::memcpy(buf, e->value, n);
    *len = e->value_len;
    unlock();
    return 0;
}

bool SharedZone::kv_delete(std::string_view key) {
    lock();
    Entry *e = find(key, false);
    if (e && e->pinned) e = nullptr;  // the core adds to it without the lock: it stays
    if (e) {
        e->state = kZoneDeleted;
        h_->live--;
    }
    unlock();
    return e != nullptr;
}

bool SharedZone::update(std::string_view key, void (*fn)(void *, size_t *, void *), void *arg,
                        uint64_t ttl_ms) {
    lock();
    Entry *e = find(key, true);
    if (e) {
        size_t len = e->value_len;
        fn(e->value, &len, arg);
        e->value_len = static_cast<uint16_t>(len > kMaxValue ? kMaxValue : len);
        if (!e->pinned) e->expires_ms = ttl_ms ? monotonic_ms() + ttl_ms : 0;
    }
    unlock();
    return e != nullptr;
}

void *SharedZone::slot(std::string_view key, size_t len) {
    // Values are 8-byte aligned, for 64-bit atomic adds: so is everything before `value`
    // and the entry's size, which keeps the next entry's aligned too.
    static_assert(offsetof(Entry, value) % 8 == 0 && sizeof(Entry) % 8 == 0);
    if (len == 0 || len > kMaxValue) return nullptr;
    lock();
    Entry *e = find(key, true);
    void *value = nullptr;
    if (e && e->expires_ms == 0) {
        if (e->value_len == 0) {  // new (or made empty by an update): zeros of this length
            std::memset(e->value, 0, len);
            e->value_len = static_cast<uint16_t>(len);
        }
        if (e->value_len == len) {
            e->pinned = 1;  // as pin_counter's: never deleted nor expired under its holders
            value = e->value;
        }
    }
    unlock();
    return value;
}

void SharedZone::each(std::string_view prefix,
                      void (*fn)(std::string_view, int64_t, const void *, size_t, void *),
                      void *arg) {
    uint64_t now = monotonic_ms();
    lock();
    for (size_t i = 0; i < h_->capacity; ++i) {
        const Entry &e = h_->entries[i];
        if (e.state != kZoneUsed || (e.expires_ms && e.expires_ms <= now)) continue;
        std::string_view key(e.key, e.key_len);
        if (key.starts_with(prefix))
            fn(key, __atomic_load_n(&e.counter, __ATOMIC_RELAXED), e.value, e.value_len, arg);
    }
    unlock();
}

size_t SharedZone::size() const {
    return h_->live;
}
size_t SharedZone::capacity() const {
    return h_->capacity;
}

}  // namespace torii
