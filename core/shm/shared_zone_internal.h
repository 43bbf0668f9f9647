// What shared_zone.cc and shared_zone_state.cc both need of the zone's layout.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "core/shm/shared_zone.h"

namespace torii {

enum : uint8_t { kZoneEmpty = 0, kZoneUsed = 1, kZoneDeleted = 2 };

struct SharedZone::Entry {
    uint8_t state;
    uint8_t key_len;
    uint16_t value_len;
    // A counter the core adds to without the lock (pin_counter): never deleted, never
    // expires; every read of `counter` is atomic for this reason.
    uint8_t pinned;
    int64_t counter;
    uint64_t expires_ms;  // CLOCK_MONOTONIC is machine-wide, so every worker agrees
    char key[kMaxKey];
    char value[kMaxValue];
};

struct SharedZone::Header {
    pthread_mutex_t mutex;
    size_t capacity;
    size_t live;
    Entry entries[];
};

uint64_t zone_monotonic_ms();

}  // namespace torii
