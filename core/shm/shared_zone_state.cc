// The shared zone in a file across a graceful stop and the next start, so that rate-limit
// buckets and breaker states are not reset by a restart (nginx keeps limit_req zones across
// a reload only; torii keeps them across both).
//
// File layout (native byte order: the file never leaves the machine that wrote it):
//   "torii-zone-state 1\n", the boot id (/proc/sys/kernel/random/boot_id, 36 bytes + "\n"),
//   then per entry: key length (u8), key, value length (u16), value, counter (i64),
//   absolute CLOCK_MONOTONIC expiry in ms (u64, 0 = none); then a u32 entry count as a trailer.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

#include "core/shm/shared_zone.h"
#include "core/shm/shared_zone_internal.h"

namespace torii {

namespace {

constexpr char kMagic[] = "torii-zone-state 1\n";

std::string boot_id() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;
}

template <class T>
void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

struct Reader {
    const std::string &data;
    size_t pos;
    bool ok = true;
    template <class T>
    T get() {
        T v{};
        if (pos + sizeof v > data.size()) {
            ok = false;
            return v;
        }
        std::memcpy(&v, data.data() + pos, sizeof v);
        pos += sizeof v;
        return v;
    }
    std::string_view bytes(size_t n) {
        if (pos + n > data.size()) {
            ok = false;
            return {};
        }
        std::string_view v(data.data() + pos, n);
        pos += n;
        return v;
    }
};

}  // namespace

bool SharedZone::save_state(const std::string &path, std::initializer_list<std::string_view> skip,
                            std::string *error) const {
    std::string out = kMagic;
    out += boot_id() + "\n";
    uint64_t now = zone_monotonic_ms();
    uint32_t count = 0;
    const_cast<SharedZone *>(this)->lock();
    for (size_t i = 0; i < h_->capacity; ++i) {
        const Entry &e = h_->entries[i];
        if (e.state != kZoneUsed || (e.expires_ms && e.expires_ms <= now)) continue;
        std::string_view key(e.key, e.key_len);
        bool skipped = false;
        for (std::string_view prefix : skip)
            skipped = skipped || key.starts_with(prefix);
        if (skipped) continue;
        put<uint8_t>(out, e.key_len);
        out.append(e.key, e.key_len);
        put<uint16_t>(out, e.value_len);
        out.append(e.value, e.value_len);
        put<int64_t>(out, __atomic_load_n(&e.counter, __ATOMIC_RELAXED));  // may be pinned
        put<uint64_t>(out, e.expires_ms);
        ++count;
    }
    const_cast<SharedZone *>(this)->unlock();
    put<uint32_t>(out, count);

    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error = tmp + ": " + std::strerror(errno);
        return false;
    }
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::write(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = tmp + ": " + std::strerror(errno);
            ::close(fd);
            ::unlink(tmp.c_str());
            return false;
        }
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        *error = path + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

long SharedZone::load_state(const std::string &path, std::string *error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return 0;  // nothing saved: a first start, or after a crash
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string head = std::string(kMagic) + boot_id() + "\n";
    if (data.compare(0, sizeof kMagic - 1, kMagic) != 0) {
        *error = path + ": not a torii zone state file";
        return -1;
    }
    if (data.compare(0, head.size(), head) != 0) {
        *error = path + ": written before the machine restarted; its times mean nothing now";
        return -1;
    }
    if (data.size() < head.size() + sizeof(uint32_t)) {
        *error = path + ": truncated";
        return -1;
    }
    uint32_t count = 0;
    std::memcpy(&count, data.data() + data.size() - sizeof count, sizeof count);
    std::string body = data.substr(0, data.size() - sizeof count);
    Reader r{body, head.size()};
    uint64_t now = zone_monotonic_ms();
    long restored = 0;
    uint32_t seen = 0;
    lock();
    while (r.ok && r.pos < body.size()) {
        uint8_t key_len = r.get<uint8_t>();
        std::string_view key = r.bytes(key_len);
        uint16_t value_len = r.get<uint16_t>();
        std::string_view value = r.bytes(value_len);
        int64_t counter = r.get<int64_t>();
        uint64_t expires = r.get<uint64_t>();
        if (!r.ok || key_len == 0 || key_len > kMaxKey || value_len > kMaxValue) {
            r.ok = false;
            break;
        }
        ++seen;
        if (expires && expires <= now) continue;  // its time has passed
        Entry *e = find(key, true);
        if (!e) break;  // full: keep what fitted
        e->counter = counter;
        e->value_len = value_len;
        std::memcpy(e->value, value.data(), value_len);
        e->expires_ms = expires;
        ++restored;
    }
    unlock();
    if (!r.ok || seen != count) {
        *error = path + ": damaged after " + std::to_string(seen) + " entries";
        return -1;
    }
    return restored;
}

}  // namespace torii
