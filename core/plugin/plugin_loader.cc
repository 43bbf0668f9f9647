#include "core/plugin/plugin_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <memory>

namespace torii {

LoadedPlugin::~LoadedPlugin() {
    if (handle_) dlclose(handle_);
}

static std::string version_text(unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

namespace {
std::string copy_dir;
}

void set_plugin_copy_dir(const std::string &dir) {
    copy_dir = dir;
}

// Copies `path` to copy_dir as "<name>-<content hash>.so"; returns the copy's path, or
// an empty string when the file cannot be read or written.
static std::string content_addressed_copy(const std::string &path) {
    int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return {};
    std::string data;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(in, buf, sizeof buf)) > 0)
        data.append(buf, static_cast<size_t>(n));
    ::close(in);
    if (n < 0) return {};
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : data)
        h = (h ^ c) * 1099511628211ull;
    std::string base = path.substr(path.rfind('/') + 1);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    std::string copy = copy_dir + "/" + base + "-" + hex;
    int out = ::open(copy.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
    if (out < 0) return {};
    bool ok = ::write(out, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    ::close(out);
    return ok ? copy : std::string();
}

Result<std::unique_ptr<LoadedPlugin>> load_plugin(const std::string &name, const std::string &path,
                                                  const std::string &where,
                                                  const torii_host_t *host) {
    std::string prefix = where + ": plugin \"" + name + "\": ";
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        return make_error(prefix + "cannot load \"" + path + "\": no such file");
    std::string load_path = path;
    if (!copy_dir.empty()) {
        load_path = content_addressed_copy(path);
        if (load_path.empty())
            return make_error(prefix + "cannot copy \"" + path + "\" into " + copy_dir);
    }
    void *handle = dlopen(load_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (load_path != path) ::unlink(load_path.c_str());  // mapped already, or failed
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
