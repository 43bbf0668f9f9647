#include "core/plugin/phase_runner.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <unordered_map>

#include "core/base/log.h"
#include "core/http/request.h"
#include "core/plugin/plugin_set.h"
#include "core/worker/worker.h"

namespace torii {

namespace {
// Live pause tokens of this worker. Tokens are never reused, so a stale one finds nothing.
std::unordered_map<uint64_t, Request *> tokens;
uint64_t next_token = 1;
}  // namespace

static const char *phase_name(int phase) {
    static const char *const names[] = {"pre_route", "access", "balance", "upstream",
                                        "response",  "log",    "connect"};
    return phase >= 0 && phase < kPhaseSlots ? names[phase] : "?";
}

static bool pausable(int phase) {
    return phase == TORII_PHASE_PRE_ROUTE || phase == TORII_PHASE_ACCESS ||
           phase == TORII_PHASE_UPSTREAM || phase == kPhaseConnect;
}

static void ensure_ctx(Request &req) {
    if (req.plugin_ctx || !req.chain) return;
    size_t n = req.chain->total_slots;
    if (n == 0) return;
    req.plugin_ctx = reinterpret_cast<void **>(req.arena.alloc(n * sizeof(void *)));
    std::memset(req.plugin_ctx, 0, n * sizeof(void *));
}

void **current_plugin_slot(Request &req) {
    const PluginInstance *inst = req.hook_inst;
    if (!inst || !req.chain) return nullptr;
    ensure_ctx(req);
    if (!req.plugin_ctx) return nullptr;
    // request_done reaches the members of the chains; remember any other instance.
    auto member = [&](const PhaseChain *c) {
        return c && std::find(c->members.begin(), c->members.end(), inst) != c->members.end();
    };
    if (!member(req.chain) && !member(req.server_chain)) {
        bool known = false;
        for (uint8_t i = 0; i < req.ctx_outside_count; ++i)
            known = known || req.ctx_outside[i] == inst;
        if (!known) {
            if (req.ctx_outside_count == std::size(req.ctx_outside)) return nullptr;
            req.ctx_outside[req.ctx_outside_count++] = inst;
        }
    }
    return &req.plugin_ctx[inst->slot];
}

PhaseResult run_phase(Request &req, int phase, PhaseOwner *owner) {
    if (!req.chain) return PhaseResult::done;
    const std::vector<PhaseHook> &hooks = req.chain->phases[phase];
    if (req.phase != phase) {
        req.phase = phase;
        req.phase_pos = 0;
    }
    if (hooks.empty() || req.phase_pos >= hooks.size()) {
        req.phase = -1;
        return PhaseResult::done;
    }
    ensure_ctx(req);
    while (req.phase_pos < hooks.size()) {
        const PhaseHook &h = hooks[req.phase_pos++];
        auto *r = reinterpret_cast<torii_request_t *>(&req);
        req.hook_inst = h.inst;
        int action = h.fn(h.inst->instance, r, &req.plugin_ctx[h.inst->slot]);
        req.hook_inst = nullptr;
        if (action == TORII_PAUSE) {
            if (!pausable(phase) || !req.pause_token) {
                log_error("plugin \"%s\" paused in the %s phase %s", h.inst->plugin->name().c_str(),
                          phase_name(phase),
                          req.pause_token
                              ? "(pause is allowed in pre_route, access, upstream, connect)"
                              : "without taking a token with host->pause()");
                cancel_pause(req);
                req.phase = -1;
                return PhaseResult::error;
            }
            if (!req.resumed_early) {
                req.phase_owner = owner;
                return PhaseResult::paused;
            }
            // resume() was called before the hook returned: go on at once.
            req.resumed_early = false;
            action = req.resumed_action;
        }
        switch (action) {
            case TORII_CONTINUE:
                continue;
            case TORII_RESPOND:
                req.phase = -1;
                if (!req.plugin_response.status) {
                    log_error("plugin \"%s\" answered TORII_RESPOND without calling respond()",
                              h.inst->plugin->name().c_str());
                    return PhaseResult::error;
                }
                return PhaseResult::respond;
            default:
                log_error("plugin \"%s\" failed in the %s phase", h.inst->plugin->name().c_str(),
                          phase_name(phase));
                req.phase = -1;
                return PhaseResult::error;
        }
    }
    req.phase = -1;
    return PhaseResult::done;
}

bool phase_goes_on(Request &req, PhaseResult result) {
    switch (result) {
        case PhaseResult::done:
            return true;
        case PhaseResult::respond:
            send_plugin_response(req);
            return false;
        case PhaseResult::error:
            respond_error(req, 500);
            return false;
        case PhaseResult::paused:
            return false;
    }
    return false;
}

bool resumed_goes_on(Request &req, int action) {
    return phase_goes_on(req, action == TORII_CONTINUE  ? PhaseResult::done
                              : action == TORII_RESPOND ? PhaseResult::respond
                                                        : PhaseResult::error);
}

void run_log_phase(Request &req) {
    if (!req.chain) return;
    cancel_pause(req);
    const PhaseChain &chain = *req.chain;
    if (!chain.phases[TORII_PHASE_LOG].empty()) {
        ensure_ctx(req);
        req.phase = TORII_PHASE_LOG;
        for (const PhaseHook &h : chain.phases[TORII_PHASE_LOG]) {
            req.hook_inst = h.inst;
            h.fn(h.inst->instance, reinterpret_cast<torii_request_t *>(&req),
                 &req.plugin_ctx[h.inst->slot]);
        }
        req.hook_inst = nullptr;
        req.phase = -1;
    }
    if (req.plugin_ctx) {
        for (const PhaseChain *c : {req.chain, req.server_chain}) {
            if (!c) continue;
            for (PluginInstance *m : c->finishers) {
                if (!req.plugin_ctx[m->slot]) continue;
                m->plugin->desc().request_done(m->instance,
                                               reinterpret_cast<torii_request_t *>(&req),
                                               req.plugin_ctx[m->slot]);
                req.plugin_ctx[m->slot] = nullptr;
            }
        }
        // Balancers (outside both chains) that kept something through host->req_ctx.
        for (uint8_t i = 0; i < req.ctx_outside_count; ++i) {
            const PluginInstance *m = req.ctx_outside[i];
            auto done = TORII_PLUGIN_HOOK(*m->plugin, request_done);
            if (done && req.plugin_ctx[m->slot])
                done(m->instance, reinterpret_cast<torii_request_t *>(&req),
                     req.plugin_ctx[m->slot]);
            req.plugin_ctx[m->slot] = nullptr;
        }
        req.ctx_outside_count = 0;
    }
    req.chain = req.server_chain = nullptr;  // once per request
}

uint64_t pause_request(Request &req) {
    if (req.pause_token) return req.pause_token;
    req.pause_token = next_token++;
    req.resumed_early = false;
    tokens[req.pause_token] = &req;
    return req.pause_token;
}

Request *token_request(uint64_t token) {
    auto it = tokens.find(token);
    return it == tokens.end() ? nullptr : it->second;
}

void cancel_pause(Request &req) {
    req.resume_queued = false;
    if (!req.pause_token) return;
    tokens.erase(req.pause_token);
    req.pause_token = 0;
    req.phase_owner = nullptr;
}

// Continues a paused request from the event loop (Worker::defer_call): never inside the
// plugin's own call to resume(), which may come from a codec or upstream callback whose
// objects the continuation could change or free under it.
static void do_resume(uint64_t token) {
    auto it = tokens.find(token);
    if (it == tokens.end()) return;  // the request went away meanwhile
    Request &req = *it->second;
    tokens.erase(it);
    req.pause_token = 0;
    req.resume_queued = false;
    PhaseOwner *owner = req.phase_owner;
    req.phase_owner = nullptr;
    int action = req.resumed_action;
    int phase = req.phase;
    if (action == TORII_CONTINUE) {
        PhaseResult r = run_phase(req, phase, owner);
        if (r == PhaseResult::paused) return;
        action = r == PhaseResult::done      ? TORII_CONTINUE
                 : r == PhaseResult::respond ? TORII_RESPOND
                                             : TORII_ERROR;
    } else {
        req.phase = -1;
        if (action == TORII_RESPOND && !req.plugin_response.status) action = TORII_ERROR;
    }
    owner->on_phase_resumed(req, phase, action);
}

int resume_request(uint64_t token, int action) {
    auto it = tokens.find(token);
    if (it == tokens.end()) return TORII_NOT_FOUND;
    Request &req = *it->second;
    if (!req.phase_owner) {
        // Still inside the hook that paused: run_phase picks this up when it returns.
        tokens.erase(it);
        req.pause_token = 0;
        req.resumed_early = true;
        req.resumed_action = action;
        return TORII_OK;
    }
    if (req.resume_queued) return TORII_OK;  // the first resume() decides
    req.resume_queued = true;
    req.resumed_action = action;
    Worker::current().defer_call(do_resume, token);
    return TORII_OK;
}

}  // namespace torii
