// JWT verification (plugins/auth/jwt_verify.c and jwt_claims.c: base64url, the header and
// claims read by jansson, HS256 and ES256, exp/nbf/iss/aud and required claims) through the
// auth plugin's access phase, loaded by the real plugin set as torii loads it.
//
// Input: an option byte, then either a whole token (raw mode), or a JOSE header and a claims
// set, one line each, that the target encodes and signs with HS256 itself, with the right
// key or a wrong one, so the fuzzer reaches the claim checks behind the signature. The
// request goes to /hs/ (HS256 only) or to /es/ (ES256, a public key whose private half no
// one has). Checked: the phase answers (401) or lets through, never fails; it lets through
// only a token signed here with the right key, and then names a consumer.
#include <openssl/evp.h>

#include <string>

#include "core/config/config.h"
#include "core/http/request.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_set.h"
#include "t/fuzz/fuzz_input.h"
#include "t/fuzz/fuzz_plugins.h"
#include "t/fuzz/fuzz_targets.h"

using namespace torii;

namespace {

constexpr size_t kMaxInput = 8 * 1024;
constexpr std::string_view kSecret = "fuzz-secret-0123456789-abcdefghijklmnop";

const char *const kConfig = R"([main]
plugin_dir = "@DIR@"
[[plugin]]
name = "auth"
[[server]]
listen = "127.0.0.1:8080"
[[server.location]]
path = "/hs/"
return = { status = 200 }
[server.location.plugins.auth]
type = "jwt"
secret = "@SECRET@"
issuer = "torii-fuzz"
audience = "api"
require_claims = ["sub", "scope"]
clock_skew = "30s"
[[server.location]]
path = "/es/"
return = { status = 200 }
[server.location.plugins.auth]
type = "jwt"
es256_low_s = true
public_key = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMl9sUp9StvOFZ/Ei6xQSQTHYeVSv
GPmVCsSaXA4Fklto5IK8bH5ep2AUNdo20ntI9a+rTu0MCCr1pgRKMIvjVg==
-----END PUBLIC KEY-----
"""
)";

struct Loaded {
    std::shared_ptr<const Config> config;
    std::unique_ptr<PluginSet> plugins;
};

// Loaded once: the plugin instances are read-only after create(), as in a worker.
const Loaded &loaded() {
    static Loaded *l = [] {
        fuzz::pin_plugin("auth");
        std::string text = kConfig;
        text.replace(text.find("@DIR@"), 5, fuzz::plugin_dir());
        text.replace(text.find("@SECRET@"), 8, kSecret);
        auto config = load_config_from_string(text, "fuzz/jwt.toml");
        if (!config) std::fprintf(stderr, "jwt fuzz config: %s\n", config.error().c_str());
        FUZZ_CHECK(config.ok());
        auto plugins = PluginSet::load(*config.value());
        if (!plugins) std::fprintf(stderr, "jwt fuzz plugins: %s\n", plugins.error().c_str());
        FUZZ_CHECK(plugins.ok());
        return new Loaded{config.value(), std::move(plugins.value())};
    }();
    return *l;
}

std::string b64url(std::string_view in) {
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        uint32_t v =
            uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
        for (int s = 18; s >= 0; s -= 6)
            out += kAlphabet[(v >> s) & 63];
    }
    if (i + 1 == in.size()) {
        uint32_t v = uint32_t(uint8_t(in[i])) << 16;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
    } else if (i + 2 == in.size()) {
        uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
    }
    return out;
}

std::string hs256(std::string_view key, std::string_view msg) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                   reinterpret_cast<const unsigned char *>(msg.data()), msg.size(), mac, sizeof mac,
                   &len))
        return {};
    return std::string(reinterpret_cast<const char *>(mac), len);
}

}  // namespace

int torii_fuzz_jwt(const uint8_t *data, size_t size) {
    if (size > kMaxInput) return 0;
    const Loaded &l = loaded();
    fuzz::Input in(data, size);
    uint8_t opt = in.byte();
    bool es = opt & 1;
    bool sign = opt & 2;
    bool right_key = opt & 4;
    std::string token;
    if (sign) {
        std::string_view header = in.field();
        std::string_view claims = in.field();
        token = b64url(header) + "." + b64url(claims);
        token += "." + b64url(hs256(right_key ? kSecret : "not-the-secret", token));
    } else {
        token = in.rest();
    }
    // Tokens arrive in a header value: nothing a client parser would refuse there.
    for (char c : token)
        if (c == '\r' || c == '\n' || c == '\0') return 0;

    Request req;
    req.input.method = "GET";
    req.input.target = es ? "/es/" : "/hs/";
    req.path = req.input.target;
    req.remote_addr = "127.0.0.1";
    std::string bearer = ((opt & 8) ? "bearer " : "Bearer ") + token;
    req.input.headers.add("Authorization", bearer);
    req.headers.add("Authorization", bearer);
    req.chain = &l.plugins->location_chain(0, es ? 1 : 0);
    PhaseResult r = run_phase(req, TORII_PHASE_ACCESS, nullptr);
    if (fuzz::verbose())
        std::fprintf(stderr, "jwt: %s, %s\n", r == PhaseResult::done ? "let through" : "refused",
                     r == PhaseResult::done ? std::string(req.consumer).c_str()
                                            : std::string(req.plugin_response.body).c_str());
    FUZZ_CHECK(r == PhaseResult::done || r == PhaseResult::respond);
    if (r == PhaseResult::done) {
        // Only a token this target signed with the secret can pass.
        FUZZ_CHECK(sign && right_key && !es);
        FUZZ_CHECK(!req.consumer.empty());
    } else {
        FUZZ_CHECK(req.plugin_response.status == 401);
    }
    run_log_phase(req);
    return 0;
}
