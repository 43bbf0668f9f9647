#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/shm/shared_zone.h"

using namespace torii;

TEST_CASE("counters are exact across processes") {
    SharedZone *zone = SharedZone::create(1024);
    REQUIRE(zone);
    constexpr int kChildren = 4, kAdds = 5000;
    pid_t pids[kChildren];
    for (int c = 0; c < kChildren; ++c) {
        pids[c] = fork();
        REQUIRE(pids[c] >= 0);
        if (pids[c] == 0) {
            for (int i = 0; i < kAdds; ++i)
                zone->counter_add("hits", 1);
            _exit(0);
        }
    }
    for (int i = 0; i < kAdds; ++i)
        zone->counter_add("hits", 1);
    for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
    }
    CHECK(zone->counter_get("hits") == (kChildren + 1) * kAdds);
    SharedZone::destroy(zone);
}

TEST_CASE("slots: one address for every process, exact under concurrent atomic adds") {
    SharedZone *zone = SharedZone::create(64);
    REQUIRE(zone);
    auto *counters = static_cast<int64_t *>(zone->slot("hits", 2 * sizeof(int64_t)));
    REQUIRE(counters);
    CHECK(reinterpret_cast<uintptr_t>(counters) % 8 == 0);
    CHECK((counters[0] == 0 && counters[1] == 0));
    constexpr int kChildren = 3, kAdds = 20000;
    pid_t pids[kChildren];
    for (int c = 0; c < kChildren; ++c) {
        pids[c] = fork();
        REQUIRE(pids[c] >= 0);
        if (pids[c] == 0) {
            // The same key gives the same bytes in another process.
            auto *mine = static_cast<int64_t *>(zone->slot("hits", 2 * sizeof(int64_t)));
            for (int i = 0; i < kAdds; ++i) {
                __atomic_fetch_add(&mine[0], 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&mine[1], 2, __ATOMIC_RELAXED);
            }
            _exit(mine == counters ? 0 : 1);
        }
    }
    for (int i = 0; i < kAdds; ++i)
        __atomic_fetch_add(&counters[0], 1, __ATOMIC_RELAXED);
    for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    CHECK(counters[0] == (kChildren + 1) * kAdds);
    CHECK(counters[1] == kChildren * 2 * kAdds);
    // The value is an ordinary entry to readers.
    int64_t copy[2] = {};
    size_t len = sizeof copy;
    CHECK(zone->kv_get("hits", copy, &len) == 0);
    CHECK((len == sizeof copy && copy[0] == counters[0]));
    // Another length, an expiring entry, a length over the limit: no slot.
    CHECK(zone->slot("hits", 8) == nullptr);
    CHECK(zone->kv_set("ttl", "x", 1, 60000));
    CHECK(zone->slot("ttl", 1) == nullptr);
    CHECK(zone->slot("big", SharedZone::kMaxValue + 1) == nullptr);
    CHECK(zone->slot("max", SharedZone::kMaxValue) != nullptr);
    // A slot is pinned: it cannot be deleted from under the workers that hold it.
    CHECK_FALSE(zone->kv_delete("hits"));
    CHECK(zone->slot("hits", 2 * sizeof(int64_t)) == counters);
    SharedZone::destroy(zone);
}

TEST_CASE("pinned counters: added to without the lock, never deleted or expired") {
    SharedZone *zone = SharedZone::create(4);
    REQUIRE(zone);
    int64_t *open = zone->pin_counter("torii|connections");
    REQUIRE(open);
    SharedZone::pinned_add(open, 3);
    SharedZone::pinned_add(open, -1);
    CHECK(zone->counter_get("torii|connections") == 2);
    CHECK(zone->counter_add("torii|connections", 5) == 7);  // the keyed path sees the same
    CHECK_FALSE(zone->kv_delete("torii|connections"));      // a plugin cannot move it
    CHECK(zone->kv_set("torii|connections", "x", 1, 1));    // a TTL is ignored
    usleep(5'000);
    CHECK(zone->counter_get("torii|connections") == 7);
    CHECK(zone->pin_counter("torii|connections") == open);  // a second worker, same entry
    int64_t seen = -1;
    zone->each(
        "torii|",
        [](std::string_view, int64_t c, const void *, size_t, void *arg) {
            *static_cast<int64_t *>(arg) = c;
        },
        &seen);
    CHECK(seen == 7);
    // Across processes, as the workers add.
    pid_t kid = fork();
    if (kid == 0) {
        for (int i = 0; i < 10000; ++i)
            SharedZone::pinned_add(open, 1);
        _exit(0);
    }
    for (int i = 0; i < 10000; ++i)
        SharedZone::pinned_add(open, -1);
    int status = 0;
    waitpid(kid, &status, 0);
    CHECK(zone->counter_get("torii|connections") == 7);
    SharedZone::destroy(zone);
}

TEST_CASE("kv values: set, get, overwrite, delete, expiry, limits") {
    SharedZone *zone = SharedZone::create(64);
    REQUIRE(zone);
    CHECK(zone->kv_set("k", "hello", 5, 0));
    char buf[16];
    size_t len = sizeof buf;
    CHECK(zone->kv_get("k", buf, &len) == 0);
    CHECK(std::string(buf, len) == "hello");
    CHECK(zone->kv_set("k", "hi", 2, 0));
    len = sizeof buf;
    CHECK(zone->kv_get("k", buf, &len) == 0);
    CHECK(std::string(buf, len) == "hi");
    CHECK(zone->kv_delete("k"));
    len = sizeof buf;
    CHECK(zone->kv_get("k", buf, &len) == 1);

    CHECK(zone->kv_set("short", "x", 1, 1));  // 1 ms
    usleep(5000);
    len = sizeof buf;
    CHECK(zone->kv_get("short", buf, &len) == 1);

    std::string long_key(SharedZone::kMaxKey + 1, 'k');
    CHECK_FALSE(zone->kv_set(long_key, "x", 1, 0));
    std::string big(SharedZone::kMaxValue + 1, 'v');
    CHECK_FALSE(zone->kv_set("big", big.data(), big.size(), 0));
    SharedZone::destroy(zone);
}

TEST_CASE("a full table refuses new keys but keeps serving existing ones") {
    SharedZone *zone = SharedZone::create(8);
    REQUIRE(zone);
    for (int i = 0; i < 8; ++i)
        CHECK(zone->counter_add("key" + std::to_string(i), 1) == 1);
    bool ok = true;
    zone->counter_add("one-too-many", 1, &ok);
    CHECK_FALSE(ok);
    CHECK(zone->counter_add("key3", 1) == 2);
    CHECK(zone->kv_delete("key0"));
    zone->counter_add("now-fits", 1, &ok);
    CHECK(ok);
    SharedZone::destroy(zone);
}

TEST_CASE("each visits live entries under a prefix") {
    SharedZone *zone = SharedZone::create(64);
    REQUIRE(zone);
    zone->counter_add("stats|a", 3);
    zone->counter_add("stats|b", 4);
    zone->counter_add("other", 100);
    int64_t sum = 0;
    zone->each(
        "stats|",
        [](std::string_view, int64_t counter, const void *, size_t, void *arg) {
            *static_cast<int64_t *>(arg) += counter;
        },
        &sum);
    CHECK(sum == 7);
    SharedZone::destroy(zone);
}

TEST_CASE("expired entries of other keys are reclaimed for new ones") {
    SharedZone *zone = SharedZone::create(8);
    REQUIRE(zone);
    for (int i = 0; i < 8; ++i)
        CHECK(zone->kv_set("k" + std::to_string(i), "v", 1, 1));
    usleep(20000);
    CHECK(zone->kv_set("fresh", "v", 1, 0));
    CHECK(zone->size() <= 8);
    SharedZone::destroy(zone);
}

// ---- the state file of a stop and a start (core/shm/shared_zone_state.cc) ------------------

namespace {
std::string state_path(const char *name) {
    return std::string("/tmp/torii-zone-state-") + std::to_string(getpid()) + "-" + name;
}
}  // namespace

TEST_CASE("state file: counters, values and expiries come back; skipped prefixes do not") {
    SharedZone *a = SharedZone::create(64);
    REQUIRE(a);
    a->counter_add("rl#1", 7);
    CHECK(a->kv_set("rl|1|=alice", "\x01\x02\x03", 3, 0));
    CHECK(a->kv_set("cb|srv|/api/", "open", 4, 60'000));  // expires in a minute
    CHECK(a->kv_set("short", "x", 1, 30));                // expires before the load
    a->counter_add("torii|connections", 5);
    std::string path = state_path("roundtrip"), error;
    REQUIRE(a->save_state(path, {"torii|"}, &error));
    usleep(60'000);

    SharedZone *b = SharedZone::create(64);
    REQUIRE(b);
    CHECK(b->load_state(path, &error) == 3);
    CHECK(b->counter_get("rl#1") == 7);
    char buf[16];
    size_t len = sizeof buf;
    REQUIRE(b->kv_get("rl|1|=alice", buf, &len) == 0);
    CHECK(std::string(buf, len) == "\x01\x02\x03");
    len = sizeof buf;
    CHECK(b->kv_get("cb|srv|/api/", buf, &len) == 0);
    len = sizeof buf;
    CHECK(b->kv_get("short", buf, &len) == 1);  // its time had passed
    CHECK(b->counter_get("torii|connections") == 0);
    unlink(path.c_str());
    SharedZone::destroy(a);
    SharedZone::destroy(b);
}

TEST_CASE("state file: missing is nothing, damaged or from another boot is refused") {
    SharedZone *zone = SharedZone::create(64);
    REQUIRE(zone);
    std::string error;
    CHECK(zone->load_state(state_path("absent"), &error) == 0);

    zone->counter_add("n", 1);
    std::string path = state_path("damaged");
    REQUIRE(zone->save_state(path, {}, &error));
    std::string bytes;
    {
        FILE *f = fopen(path.c_str(), "rb");
        REQUIRE(f);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            bytes.append(chunk, n);
        fclose(f);
    }
    auto write = [&](const std::string &content) {
        FILE *f = fopen(path.c_str(), "wb");
        fwrite(content.data(), 1, content.size(), f);
        fclose(f);
    };
    SharedZone *fresh = SharedZone::create(64);
    write(bytes.substr(0, bytes.size() - 6));  // cut inside the last entry
    CHECK(fresh->load_state(path, &error) == -1);
    CHECK(error.find("damaged") != std::string::npos);

    std::string other = bytes;
    size_t boot = other.find('\n') + 1;  // the boot id line follows the magic
    other[boot] = other[boot] == 'a' ? 'b' : 'a';
    write(other);
    CHECK(fresh->load_state(path, &error) == -1);
    CHECK(error.find("restarted") != std::string::npos);

    write("something else entirely\n");
    CHECK(fresh->load_state(path, &error) == -1);
    CHECK(fresh->counter_get("n") == 0);
    unlink(path.c_str());
    SharedZone::destroy(zone);
    SharedZone::destroy(fresh);
}
