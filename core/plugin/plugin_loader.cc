#include "core/plugin/plugin_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <memory>

namespace torii {

LoadedPlugin::~LoadedPlugin() {
    if (handle_) dlclose(handle_);
}

static std::string version_text(unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

Result<std::unique_ptr<LoadedPlugin>> load_plugin(const std::string &name, const std::string &path,
                                                  const std::string &where,
                                                  const torii_host_t *host) {
    std::string prefix = where + ": plugin \"" + name + "\": ";
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        return make_error(prefix + "cannot load \"" + path + "\": no such file");
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        return make_error(prefix + "cannot load \"" + path +
                          "\": " + (why ? why : "dlopen failed"));
    }
    auto fail = [&](const std::string &why) {
        dlclose(handle);
        return make_error(prefix + why);
    };
    void *sym = dlsym(handle, "torii_plugin_entry");
    if (!sym)
        return fail("\"" + path +
                    "\" does not export torii_plugin_entry (is it a torii plugin, "
                    "built with TORII_EXPORT?)");
    auto entry = reinterpret_cast<torii_plugin_entry_fn>(sym);
    const torii_plugin_t *desc = entry(host);
    if (!desc) return fail("\"" + path + "\" refused to load (its entry point returned NULL)");
    if (desc->abi_major != TORII_PLUGIN_ABI_MAJOR)
        return fail("\"" + path + "\" was built for plugin ABI " +
                    version_text(desc->abi_major, desc->abi_minor) + ", this torii speaks " +
                    version_text(TORII_PLUGIN_ABI_MAJOR, TORII_PLUGIN_ABI_MINOR) +
                    ": rebuild it against this torii's <torii/plugin.h>");
    // The descriptor must at least reach the fields every version has.
    if (desc->size < offsetof(torii_plugin_t, create))
        return fail("\"" + path + "\" has a descriptor of " + std::to_string(desc->size) +
                    " bytes, too small to be a torii plugin");
    return std::make_unique<LoadedPlugin>(name, path, handle, desc);
}

}  // namespace torii
