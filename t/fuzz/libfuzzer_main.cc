// The libFuzzer side of a target: the fuzz build compiles this once per target with
// TORII_FUZZ_ENTRY naming its entry function (t/fuzz/fuzz.cmake).
#include <netdb.h>

#include <cstring>

#include "core/base/log.h"
#include "t/fuzz/fuzz_targets.h"

// torii logs every refused request and closed connection at info or notice: at thousands
// of inputs a second that is all a run would print. Errors still show.
extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    torii::Log::set_level(torii::LogLevel::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return TORII_FUZZ_ENTRY(data, size);
}

// Addresses in a fuzzed config may name hosts: torii resolves them at load. The fuzz build
// links with --wrap=getaddrinfo so that only numeric addresses and "localhost" resolve, and
// a run never asks a DNS server (off the network, and no lookup slower than an input).
extern "C" int __real_getaddrinfo(const char *node, const char *service, const addrinfo *hints,
                                  addrinfo **res);
extern "C" int __wrap_getaddrinfo(const char *node, const char *service, const addrinfo *hints,
                                  addrinfo **res) {
    if (node && std::strcmp(node, "localhost") != 0) {
        addrinfo numeric{};
        if (hints) numeric = *hints;
        numeric.ai_flags |= AI_NUMERICHOST;
        return __real_getaddrinfo(node, service, &numeric, res);
    }
    return __real_getaddrinfo(node, service, hints, res);
}
