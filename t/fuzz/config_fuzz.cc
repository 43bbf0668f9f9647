// The config loader (core/config/config_loader.cc): TOML text in, a Config or one error
// message out, never a crash nor an exception past load_config_from_string. A config that
// loads is also dumped (core/process/config_dump.cc, `torii -T`), and the dump must load
// again and dump to the same text: config_dump.h promises that loading the dump gives the
// same configuration.
//
// Input: the config file's text. The round trip needs the config's plugins loaded; it runs
// when they are among those the fuzz build makes (fuzz_plugins.h), so no input makes the
// target dlopen a file it names.
#include <string>

#include "core/config/config.h"
#include "core/plugin/plugin_set.h"
#include "core/process/config_dump.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_plugins.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 16 * 1024;

// A copy of `c` whose plugins are loaded from the fuzz plugin folder, or null when it uses
// a plugin that is not there (or one at a path of its own).
std::shared_ptr<Config> with_fuzz_plugins(const Config &c) {
    auto copy = std::make_shared<Config>(c);
    copy->main.plugin_dir = fuzz::plugin_dir();
    for (PluginDecl &d : copy->plugins) {
        if (d.path != c.main.plugin_dir + "/" + d.name + ".so" || !fuzz::is_fuzz_plugin(d.name))
            return nullptr;
        d.path = fuzz::plugin_dir() + "/" + d.name + ".so";
    }
    for (const auto &[name, up] : copy->upstreams)
        if (!fuzz::is_fuzz_plugin(up.balancer)) return nullptr;
    return copy;
}

// The dump of `text`'s configuration, or empty when it does not load or cannot be dumped.
std::string load_and_dump(const std::string &text, bool must_load) {
    auto loaded = load_config_from_string(text, "fuzz/fuzz.toml");
    if (!loaded && fuzz::verbose()) std::fprintf(stderr, "config: %s\n", loaded.error().c_str());
    if (!loaded) {
        FUZZ_CHECK(!loaded.error().empty());
        if (must_load) std::fprintf(stderr, "the dump does not load: %s\n", loaded.error().c_str());
        FUZZ_CHECK(!must_load);
        return {};
    }
    std::shared_ptr<Config> config = with_fuzz_plugins(*loaded.value());
    FUZZ_CHECK(config || !must_load);
    if (!config) return {};
    auto plugins = PluginSet::load(*config);
    // A plugin may refuse its table (create() fails): that is the plugin's answer, not the
    // loader's; the dump of a config that loaded once must load again, though.
    if (!plugins) {
        if (fuzz::verbose()) std::fprintf(stderr, "config plugins: %s\n", plugins.error().c_str());
        if (must_load)
            std::fprintf(stderr, "the dump's plugins fail: %s\n", plugins.error().c_str());
        FUZZ_CHECK(!must_load);
        return {};
    }
    return dump_effective_config(*config, *plugins.value());
}

}  // namespace

int torii_fuzz_config(const uint8_t *data, size_t size) {
    static bool pinned = (fuzz::pin_plugin("header_rewrite"), fuzz::pin_plugin("auth"),
                          fuzz::pin_plugin("round_robin"), true);
    (void)pinned;
    if (size > kMaxInput) return 0;
    std::string text(reinterpret_cast<const char *>(data), size);
    std::string dump = load_and_dump(text, false);
    if (dump.empty()) return 0;
    if (fuzz::verbose()) std::fprintf(stderr, "config: loaded, dumped, loading the dump\n");
    std::string again = load_and_dump(dump, true);
    if (again != dump)
        std::fprintf(stderr, "first dump:\n%s\nits own dump:\n%s\n", dump.c_str(), again.c_str());
    FUZZ_CHECK(again == dump);
    return 0;
}
