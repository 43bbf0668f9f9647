// Every seed and regression input of every fuzz target (t/fuzz/corpus/<target>/ and
// t/fuzz/regressions/<target>/) through the target's entry function, in the ordinary build:
// an input that once crashed torii stays a test without clang or libFuzzer. A broken
// invariant aborts (FUZZ_CHECK), which fails the run with the target's message.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "t/fuzz/fuzz_targets.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs(const std::string &kind, const char *target) {
    std::vector<fs::path> out;
    fs::path dir = fs::path(TORII_SOURCE_DIR) / "t/fuzz" / kind / target;
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file()) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

size_t replay(const char *target, int (*entry)(const uint8_t *, size_t), const std::string &kind) {
    size_t n = 0;
    for (const fs::path &p : inputs(kind, target)) {
        std::ifstream f(p, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        INFO("input ", p.string());
        CHECK(entry(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()) == 0);
        ++n;
    }
    return n;
}

}  // namespace

TEST_CASE("fuzz targets: every seed corpus input replays") {
    for (const torii::fuzz::Target &t : torii::fuzz::kTargets) {
        SUBCASE(t.name) {
            // Each target has seeds: a target without any would fuzz from nothing.
            CHECK(replay(t.name, t.entry, "corpus") > 0);
        }
    }
}

TEST_CASE("fuzz targets: every regression input replays") {
    for (const torii::fuzz::Target &t : torii::fuzz::kTargets) {
        SUBCASE(t.name) {
            replay(t.name, t.entry, "regressions");
        }
    }
}
