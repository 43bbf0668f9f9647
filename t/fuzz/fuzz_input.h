// Helpers the fuzz targets share: cutting one input into a few parameters and fields, and
// the check that turns a broken invariant into a crash libFuzzer reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// A crash with a message: what libFuzzer saves as a reproducer, and what fails the replay.
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

namespace torii::fuzz {

// TORII_FUZZ_VERBOSE=1 makes a target say what an input did (replaying one by hand).
inline bool verbose() {
    static const bool on = std::getenv("TORII_FUZZ_VERBOSE") != nullptr;
    return on;
}

// Reads an input front to back: single bytes for options, then '\n'-separated fields,
// then whatever remains. Past the end everything is 0 or empty, so any input is usable.
class Input {
public:
    Input(const uint8_t *data, size_t size) : rest_(reinterpret_cast<const char *>(data), size) {}

    uint8_t byte() {
        if (rest_.empty()) return 0;
        auto b = static_cast<uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }
    // Up to the next '\n' (not included; consumed).
    std::string_view field() {
        size_t nl = rest_.find('\n');
        std::string_view f = rest_.substr(0, nl);
        rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
        return f;
    }
    std::string_view rest() {
        std::string_view r = rest_;
        rest_ = {};
        return r;
    }
    bool empty() const { return rest_.empty(); }

private:
    std::string_view rest_;
};

}  // namespace torii::fuzz
