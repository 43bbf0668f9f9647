// The fuzz targets' entry functions. Each t/fuzz/<name>_fuzz.cc defines one; the libFuzzer
// shim (libfuzzer_main.cc) calls it in the fuzz build (make fuzz, clang), and the replay test
// (t/unit/fuzz/fuzz_replay_test.cc) runs every seed and regression input through it in the
// ordinary build, so both exercise the same code. An entry returns 0, and abort()s (through
// FUZZ_CHECK) when torii broke one of the invariants it checks.
#pragma once

#include <cstddef>
#include <cstdint>

int torii_fuzz_http1_request(const uint8_t *data, size_t size);
int torii_fuzz_http1_response(const uint8_t *data, size_t size);
int torii_fuzz_proxy_protocol(const uint8_t *data, size_t size);
int torii_fuzz_config(const uint8_t *data, size_t size);
int torii_fuzz_template(const uint8_t *data, size_t size);
int torii_fuzz_rewrite(const uint8_t *data, size_t size);
int torii_fuzz_jwt(const uint8_t *data, size_t size);
int torii_fuzz_http2_frames(const uint8_t *data, size_t size);
int torii_fuzz_dns_response(const uint8_t *data, size_t size);

namespace torii::fuzz {

struct Target {
    const char *name;  // the folder under t/fuzz/corpus and t/fuzz/regressions
    int (*entry)(const uint8_t *, size_t);
};

inline constexpr Target kTargets[] = {
    {"http1_request", torii_fuzz_http1_request},
    {"http1_response", torii_fuzz_http1_response},
    {"proxy_protocol", torii_fuzz_proxy_protocol},
    {"config", torii_fuzz_config},
    {"template", torii_fuzz_template},
    {"rewrite", torii_fuzz_rewrite},
    {"jwt", torii_fuzz_jwt},
    {"http2_frames", torii_fuzz_http2_frames},
    {"dns_response", torii_fuzz_dns_response},
};

}  // namespace torii::fuzz
