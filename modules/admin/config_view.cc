#include "modules/admin/config_view.h"

#include <string>

#include "core/base/json_escape.h"
#include "core/config/config.h"
#include "core/http/request.h"
#include "core/plugin/chain_origin.h"
#include "core/plugin/phase_runner.h"
#include "core/worker/worker.h"

namespace torii {

namespace {

const char *origin_name(ChainOrigin o) {
    switch (o) {
        case ChainOrigin::inherited:
            return "inherited";
        case ChainOrigin::switched_on:
            return "switched_on";
        default:
            return "own";
    }
}

void append_strings(std::string &out, const std::vector<std::string> &list) {
    out += '[';
    for (size_t i = 0; i < list.size(); ++i) {
        out += i ? "," : "";
        append_json_string(out, list[i]);
    }
    out += ']';
}

struct ChainWriter {
    std::string &out;
    const PhaseChain *server;  // null for the server's own chain
    const LocationConfig *location;

    void member(const PluginInstance *inst) {
        out += "{\"plugin\":";
        append_json_string(out, inst->plugin->name());
        out += ",\"from\":\"";
        out += origin_name(chain_origin(inst, server, location));
        out += "\"}";
    }
    void phase(const char *name, const std::vector<PhaseHook> &hooks, bool first = false) {
        out += first ? "\"" : ",\"";
        out += name;
        out += "\":[";
        for (size_t i = 0; i < hooks.size(); ++i) {
            out += i ? "," : "";
            member(hooks[i].inst);
        }
        out += ']';
    }
    void balance(const UpstreamConfig *up, const PhaseChain &chain) {
        out += ",\"balance\":";
        if (!up) {
            out += "null";
            return;
        }
        out += "{\"balancer\":";
        append_json_string(out, up->balancer);
        out += ",\"admitters\":[";
        for (size_t i = 0; i < chain.admitters.size(); ++i) {
            out += i ? "," : "";
            member(chain.admitters[i]);
        }
        out += "]}";
    }
};

const char *match_name(MatchType m) {
    switch (m) {
        case MatchType::exact:
            return "exact";
        case MatchType::regex:
            return "regex";
        default:
            return "prefix";
    }
}

void append_location(std::string &out, const Config &config, const PhaseChain &server_chain,
                     const PhaseChain &chain, const LocationConfig &loc) {
    out += "{\"path\":";
    append_json_string(out, loc.path);
    out += ",\"match\":\"";
    out += match_name(loc.match);
    out += "\",\"upstream\":";
    if (loc.upstream.empty())
        out += "null";
    else
        append_json_string(out, loc.upstream);
    out += ",\"return\":";
    out += loc.return_action ? std::to_string(loc.return_action->status) : "null";
    std::vector<std::string> off;
    for (const PluginUse &u : loc.plugins)
        if (!u.enabled) off.push_back(u.name);
    out += ",\"disabled\":";
    append_strings(out, off);
    // pre_route is the server's: it runs before a location is chosen.
    ChainWriter w{out, &server_chain, &loc};
    out += ",\"chain\":{";
    ChainWriter{out, nullptr, nullptr}.phase("pre_route",
                                             server_chain.phases[TORII_PHASE_PRE_ROUTE], true);
    w.phase("access", chain.phases[TORII_PHASE_ACCESS]);
    w.balance(config.find_upstream(loc.upstream), chain);
    w.phase("upstream", chain.phases[TORII_PHASE_UPSTREAM]);
    w.phase("response", chain.phases[TORII_PHASE_RESPONSE]);
    w.phase("log", chain.phases[TORII_PHASE_LOG]);
    out += "}}";
}

void append_server(std::string &out, const Config &config, const PluginSet &plugins, size_t s) {
    const ServerConfig &sc = config.servers[s];
    const PhaseChain &chain = plugins.server_chain(s);
    bool tcp = sc.protocol == ServerProtocol::tcp;
    out += "{\"listen\":";
    append_strings(out, sc.listen_text);
    out += ",\"server_name\":";
    append_strings(out, sc.server_name);
    out += tcp ? ",\"protocol\":\"tcp\"" : ",\"protocol\":\"http\"";
    out += sc.tls ? ",\"tls\":true" : ",\"tls\":false";
    out += ",\"upstream\":";
    if (sc.upstream.empty())
        out += "null";
    else
        append_json_string(out, sc.upstream);
    ChainWriter w{out, nullptr, nullptr};
    out += ",\"chain\":{";
    if (tcp) {
        w.phase("connect", chain.phases[kPhaseConnect], true);
        w.balance(config.find_upstream(sc.upstream), chain);
    } else {
        w.phase("pre_route", chain.phases[TORII_PHASE_PRE_ROUTE], true);
        w.phase("response", chain.phases[TORII_PHASE_RESPONSE]);
    }
    w.phase("log", chain.phases[TORII_PHASE_LOG]);
    out += "},\"locations\":[";
    for (size_t l = 0; l < sc.locations.size(); ++l) {
        out += l ? "," : "";
        append_location(out, config, chain, plugins.location_chain(s, l), sc.locations[l]);
    }
    out += "]}";
}

}  // namespace

void serve_config_view(Request &req, const Worker &worker) {
    const Config &config = worker.config();
    std::string body = "{\"generation\":" + std::to_string(worker.generation()) + ",\"file\":";
    append_json_string(body, config.file);
    body += ",\"servers\":[";
    for (size_t s = 0; s < config.servers.size(); ++s) {
        body += s ? "," : "";
        append_server(body, config, worker.plugins(), s);
    }
    body += "]}\n";
    respond(req, 200, body, "application/json");
}

}  // namespace torii
