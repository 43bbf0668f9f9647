// The bundled plugins a fuzz target may load, and where they are: the fuzz build makes
// them instrumented in build-fuzz/plugins (t/fuzz/fuzz.cmake); the replay test finds the
// ordinary build's in build/plugins (TORII_FUZZ_PLUGIN_DIR either way).
#pragma once

#include <dlfcn.h>

#include <string>
#include <string_view>

namespace torii::fuzz {

inline const std::string &plugin_dir() {
    static const std::string dir = TORII_FUZZ_PLUGIN_DIR;
    return dir;
}

inline bool is_fuzz_plugin(std::string_view name) {
    return name == "header_rewrite" || name == "auth" || name == "round_robin";
}

// Keeps `name`.so mapped for the life of the process. A plugin set dlcloses its plugins when
// it goes; libFuzzer keeps pointers to a library's coverage counters, which must not be
// unmapped between inputs (and reloading it for each input would be slow).
inline void pin_plugin(const char *name) {
    std::string path = plugin_dir() + "/" + name + ".so";
    dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
}

}  // namespace torii::fuzz
