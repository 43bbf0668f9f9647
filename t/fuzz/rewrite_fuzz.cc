// The header_rewrite plugin (plugins/header_rewrite) through torii's plugin host: request
// and response fields set, added and removed with templates (host->template_compile and
// template_expand, core/http/variables.cc), the header checks of core/plugin/host_api.cc,
// and the upstream path rewritten by a regex with $1-style captures (pcre2_substitute).
//
// Input: an option byte (which keys are set), then lines: the path regex, its replacement,
// a field name and template for request_set, request_add, response_set and response_add,
// a name to remove, then a request (fuzz_request.h). The target writes the plugin's table
// into a config, loads it with the real plugin set, and runs the upstream and response
// phases on the request. Checked: every field a plugin leaves is one the head it goes into
// can carry (no CR, LF or NUL, a non-empty name without ':' or white space), and the path
// still starts with '/'.
#include <string>

#include "core/config/config.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_plugins.h"
#include "t/fuzz/fuzz_request.h"
#include "t/fuzz/fuzz_targets.h"
#include "t/fuzz/toml_text.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 4 * 1024;

void check_fields(const HeaderList &fields) {
    for (const Header &h : fields) {
        FUZZ_CHECK(!h.name.empty());
        for (char c : h.name)
            FUZZ_CHECK(c != ':' && static_cast<unsigned char>(c) > ' ' &&
                       static_cast<unsigned char>(c) < 0x7f);
        for (char c : h.value)
            FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    }
}

// What a client's parser would have let through: the request's own fields are valid.
bool client_fields_valid(const HeaderList &fields) {
    for (const Header &h : fields) {
        if (h.name.empty()) return false;
        for (char c : h.name)
            if (c == ':' || static_cast<unsigned char>(c) <= ' ' ||
                static_cast<unsigned char>(c) >= 0x7f)
                return false;
        for (char c : h.value)
            if (c == '\r' || c == '\0') return false;
    }
    return true;
}

}  // namespace

int torii_fuzz_rewrite(const uint8_t *data, size_t size) {
    static bool pinned = (fuzz::pin_plugin("header_rewrite"), true);
    (void)pinned;
    if (size > kMaxInput) return 0;
    fuzz::Input in(data, size);
    uint8_t opt = in.byte();
    std::string_view regex = in.field(), replace = in.field();
    std::string_view names[4], values[4];
    for (int i = 0; i < 4; ++i) {
        names[i] = in.field();
        values[i] = in.field();
    }
    std::string_view removed = in.field();

    static const char *const kTables[4] = {"request_set", "request_add", "response_set",
                                           "response_add"};
    std::string conf = "[main]\nplugin_dir = " + fuzz::toml_string(fuzz::plugin_dir()) +
                       "\n[[plugin]]\nname = \"header_rewrite\"\n"
                       "[[server]]\nlisten = \"127.0.0.1:8080\"\n"
                       "[[server.location]]\npath = \"/\"\nreturn = { status = 200 }\n"
                       "[server.location.plugins.header_rewrite]\n";
    for (int i = 0; i < 4; ++i)
        if (opt & (1u << i))
            conf += std::string(kTables[i]) + " = { " + fuzz::toml_string(names[i]) + " = " +
                    fuzz::toml_string(values[i]) + " }\n";
    if (opt & 0x10)
        conf += "request_remove = [" + fuzz::toml_string(removed) + "]\n" + "response_remove = [" +
                fuzz::toml_string(removed) + "]\n";
    if (opt & 0x20)
        conf += "path = { regex = " + fuzz::toml_string(regex) +
                ", replace = " + fuzz::toml_string(replace) + " }\n";

    auto config = load_config_from_string(conf, "fuzz/rewrite.toml");
    if (!config) return 0;  // a header name TOML or the loader refuses
    auto plugins = PluginSet::load(*config.value());
    if (!plugins && fuzz::verbose()) std::fprintf(stderr, "rewrite: %s\n", plugins.error().c_str());
    if (!plugins) return 0;  // a template or regex header_rewrite refuses: its create() said why

    Request req;
    fuzz::fill_request(req, in);
    if (!client_fields_valid(req.headers) || req.path.empty() || req.path.front() != '/') return 0;
    req.chain = &plugins.value()->location_chain(0, 0);
    req.response.status = 200;
    PhaseResult up = run_phase(req, TORII_PHASE_UPSTREAM, nullptr);
    FUZZ_CHECK(up == PhaseResult::done);
    check_fields(req.headers);
    FUZZ_CHECK(!req.path.empty() && req.path.front() == '/');
    PhaseResult down = run_phase(req, TORII_PHASE_RESPONSE, nullptr);
    FUZZ_CHECK(down == PhaseResult::done);
    check_fields(req.response.headers);
    if (fuzz::verbose()) {
        std::fprintf(stderr, "rewrite: path %.*s\n", static_cast<int>(req.path.size()),
                     req.path.data());
        for (const Header &h : req.headers)
            std::fprintf(stderr, "  request %.*s: %.*s\n", static_cast<int>(h.name.size()),
                         h.name.data(), static_cast<int>(h.value.size()), h.value.data());
        for (const Header &h : req.response.headers)
            std::fprintf(stderr, "  response %.*s: %.*s\n", static_cast<int>(h.name.size()),
                         h.name.data(), static_cast<int>(h.value.size()), h.value.data());
    }
    run_log_phase(req);
    return 0;
}
