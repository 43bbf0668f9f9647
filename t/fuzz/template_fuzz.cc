// Variables and templates (core/http/variables.cc): a template such as
// "$remote_addr:${http_x_user}" compiled at load, expanded per request into its arena,
// with the values a client controls (headers, cookies, query arguments, Host).
//
// Input: the template on the first line, then a request (fuzz_request.h). Checked: a
// template that compiles expands to its pieces' values joined, whatever the pieces' sizes
// (the expansion grows one arena string in place while lookups allocate around it); one
// that does not compile says why.
#include <string>

#include "core/http/variables.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_request.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 8 * 1024;

// Values that change between two lookups in the same request.
bool time_dependent(VarId id) {
    return id == VarId::request_time || id == VarId::time_local || id == VarId::time_iso8601 ||
           id == VarId::msec;
}

}  // namespace

int torii_fuzz_template(const uint8_t *data, size_t size) {
    if (size > kMaxInput) return 0;
    fuzz::Input in(data, size);
    std::string_view text = in.field();
    auto parts = parse_template(text);
    auto compiled = Template::compile(text);
    FUZZ_CHECK(parts.ok() == compiled.ok());
    if (!compiled) {
        FUZZ_CHECK(!compiled.error().empty());
        return 0;
    }
    Request req;
    fuzz::fill_request(req, in);
    std::string_view out = compiled.value().expand(req);
    // The same by hand, piece by piece, into a std::string.
    std::string expected;
    bool stable = true;
    for (const TemplatePart &p : parts.value()) {
        if (!p.is_var) {
            FUZZ_CHECK(!p.text.empty());
            expected += p.text;
            continue;
        }
        stable &= !time_dependent(p.var.id);
        std::string_view v;
        if (get_variable(req, p.var, &v)) expected.append(v);
    }
    if (compiled.value().constant()) FUZZ_CHECK(out == expected);
    if (stable && out != expected)
        std::fprintf(stderr, "expanded \"%.*s\", expected \"%s\"\n", static_cast<int>(out.size()),
                     out.data(), expected.c_str());
    FUZZ_CHECK(!stable || out == expected);
    // Expanding again in the same request gives the same text (the arena grew meanwhile).
    if (stable) FUZZ_CHECK(compiled.value().expand(req) == expected);
    return 0;
}
