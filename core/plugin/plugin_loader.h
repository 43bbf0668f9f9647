// Loads a plugin's shared object: dlopen with RTLD_NOW|RTLD_LOCAL (a plugin's symbols never
// leak into torii or other plugins), looks up the one exported entry point, and checks the
// descriptor's ABI version and size. Errors name the file and both versions.
#pragma once

#include <torii/plugin.h>

#include <cstddef>
#include <memory>
#include <string>

#include "core/base/result.h"

namespace torii {

class LoadedPlugin {
public:
    LoadedPlugin(std::string name, std::string path, void *handle, const torii_plugin_t *desc)
        : name_(std::move(name)), path_(std::move(path)), handle_(handle), desc_(desc) {}
    ~LoadedPlugin();
    LoadedPlugin(const LoadedPlugin &) = delete;
    LoadedPlugin &operator=(const LoadedPlugin &) = delete;

    const std::string &name() const { return name_; }
    const std::string &path() const { return path_; }
    const torii_plugin_t &desc() const { return *desc_; }

private:
    std::string name_;
    std::string path_;
    void *handle_;
    const torii_plugin_t *desc_;
};

// A descriptor field, or NULL when the plugin was built with an older, shorter descriptor.
#define TORII_PLUGIN_HOOK(loaded, field)                                                     \
    ((loaded).desc().size >= offsetof(torii_plugin_t, field) + sizeof(torii_plugin_t::field) \
         ? (loaded).desc().field                                                             \
         : nullptr)

// A long-running master sets a private folder here: every .so is then loaded from a copy
// named after a hash of its content, so a plugin rebuilt on disk is really loaded again on
// reload (dlopen returns the cached image for a path it already has open). The copy is
// unlinked once mapped.
void set_plugin_copy_dir(const std::string &dir);

// `where` prefixes errors (the [[plugin]] entry's file:line).
Result<std::unique_ptr<LoadedPlugin>> load_plugin(const std::string &name, const std::string &path,
                                                  const std::string &where,
                                                  const torii_host_t *host);

}  // namespace torii
