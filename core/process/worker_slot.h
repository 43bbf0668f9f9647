// One worker's corner of the master's shared status page: the request line of the request
// the worker started last, so the master can name it when the worker crashes (a plugin's
// bug is usually triggered by one request, and this is the first clue to which).
//
// Only that worker writes its slot and the master reads it only after waitpid() reported the
// worker dead, so no lock or atomic is needed: a request costs one bounded copy. A crash in
// the middle of that copy could leave a mixed line; the log shows it as it is.
//
// The slot also counts the worker's open client connections, read live by the admin
// /status of any worker (how much an old, draining generation still holds): an atomic,
// written once per connection opened or closed.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace torii {

struct WorkerSlot {
    static constexpr size_t kLineMax = 256;

    uint32_t len;
    uint32_t truncated;  // the request line was longer than kLineMax
    char line[kLineMax];
    std::atomic<uint32_t> connections_open;

    void clear() noexcept {
        len = 0;
        truncated = 0;
        connections_open.store(0, std::memory_order_relaxed);
    }

    void set_connections(size_t n) noexcept {
        connections_open.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
    }
    uint32_t connections() const noexcept {
        return connections_open.load(std::memory_order_relaxed);
    }

    // "METHOD TARGET", cut at kLineMax bytes.
    void set_request(std::string_view method, std::string_view target) noexcept {
        size_t m = std::min(method.size(), kLineMax - 1);
        if (m) std::memcpy(line, method.data(), m);  // (an empty view may hold no pointer)
        line[m] = ' ';
        size_t t = std::min(target.size(), kLineMax - 1 - m);
        if (t) std::memcpy(line + m + 1, target.data(), t);
        truncated = t < target.size() || m < method.size();
        len = static_cast<uint32_t>(m + 1 + t);
    }

    // For the master's log: printable ASCII only (a crashed worker's slot is not trusted),
    // "..." marks a cut line, empty when the worker started no request.
    std::string request_line() const {
        std::string out;
        size_t n = std::min<size_t>(len, kLineMax);
        out.reserve(n + 3);
        for (size_t i = 0; i < n; ++i) {
            auto c = static_cast<unsigned char>(line[i]);
            out += c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? static_cast<char>(c) : '?';
        }
        if (truncated && n) out += "...";
        return out;
    }
};

}  // namespace torii
