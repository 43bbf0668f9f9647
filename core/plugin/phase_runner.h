// Runs a phase's hooks for a request, in chain order (nginx's ngx_http_core_run_phases in
// spirit: a short loop over a flat array). A hook that pauses leaves the position in the
// request; host->resume() continues from the next hook and then tells the PhaseOwner.
#pragma once

#include <torii/plugin.h>

#include <cstdint>

namespace torii {

struct Request;
class PhaseOwner;

// The connection phase of TCP servers (the descriptor's `connect` hook, ABI 1.2). It is no
// torii_phase_t (the public enum lists the phases of an HTTP request, and its values are
// ABI): the runner numbers it after them.
inline constexpr int kPhaseConnect = TORII_PHASE_COUNT;
inline constexpr int kPhaseSlots = TORII_PHASE_COUNT + 1;

enum class PhaseResult {
    done,     // every hook continued
    respond,  // a hook answered: req.plugin_response holds it
    paused,   // a hook paused: owner->on_phase_resumed comes later (or never, if aborted)
    error,    // a hook failed or broke the contract: answer 500
};

PhaseResult run_phase(Request &req, int phase, PhaseOwner *owner);
// What the caller does with a phase's outcome when it did not simply finish: sends the
// plugin's answer (respond), 500 (error), or nothing yet (paused). True for done: go on.
bool phase_goes_on(Request &req, PhaseResult result);
// The same for an action handed to PhaseOwner::on_phase_resumed.
bool resumed_goes_on(Request &req, int action);
// The log phase, then request_done for every instance of the chain. Safe to call once
// per request whatever happened before.
void run_log_phase(Request &req);
// host->req_ctx: the per-request slot of the instance whose hook runs now (req.hook_inst),
// or null outside a hook.
void **current_plugin_slot(Request &req);

// pause/resume tokens (host->pause / host->resume).
uint64_t pause_request(Request &req);
int resume_request(uint64_t token, int action);
Request *token_request(uint64_t token);
// The request is going away: a later resume() of its token does nothing.
void cancel_pause(Request &req);

}  // namespace torii
