// Forwards one request to an upstream and relays the response: the protocol-neutral half of
// proxying. Toward the target it speaks through an UpstreamStream (HTTP/1.1 today), toward
// the client through the request's Downstream.
//
//   start ─► pick target (balancer, peer_admit) ─► upstream phase (once) ─► open stream
//        ─► on_stream_ready: send head, stream the body ─► on_stream_head: response phase,
//           head to the client ─► on_stream_body... ─► on_stream_end ─► done
//
// A failed attempt moves on to another target while `retries` allow: a connect failure or
// timeout always, a reset or silence before any response byte for idempotent requests whose
// body has not been forwarded yet. A pooled connection the target had closed is retried
// once on a fresh connection to the same target. Bodies move between evbuffers with
// backpressure both ways.
#pragma once

#include <memory>

#include <torii/plugin.h>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/http/request.h"
#include "core/proxy/tried_targets.h"
#include "core/proxy/upstream_stream.h"

namespace torii {

class UpstreamRuntime;

class ProxySession final : public RequestHandler,
                           public UpstreamStreamHandler,
                           public PhaseOwner,
                           public Recycled<ProxySession> {
public:
    ProxySession(Request &req, UpstreamRuntime &upstream);
    ~ProxySession() override;

    void start() noexcept;

private:
    enum class State {
        picking,    // choosing a target (at start and between attempts)
        streaming,  // an attempt is under way on stream_
        done,       // finished or failed; nothing more will happen
    };

    // RequestHandler
    void on_request_body(Request &req) noexcept override;
    void on_response_drained(Request &req) noexcept override;
    void on_request_abort(Request &req) noexcept override;
    // UpstreamStreamHandler
    void on_stream_ready(UpstreamStream &s) override;
    void on_stream_interim(UpstreamStream &s, const ResponseHead &head) override;
    void on_stream_head(UpstreamStream &s, const ResponseHead &head) override;
    void on_stream_body(UpstreamStream &s, evbuffer *data) override;
    void on_stream_end(UpstreamStream &s, const HeaderList *trailers) override;
    void on_stream_drained(UpstreamStream &s) override;
    void on_stream_error(UpstreamStream &s, UpstreamError err, const char *why) override;
    void on_stream_upgrade(UpstreamStream &s, const ResponseHead &head) override;
    // PhaseOwner (the upstream phase may pause)
    void on_phase_resumed(Request &req, int phase, int action) noexcept override;

    void do_prepare();
    void do_open();
    void do_report(torii_peer_outcome_t outcome, int status);
    void do_attempt();
    void do_send_body();
    void do_attempt_failed(int status, bool connecting, const char *why);
    void do_fail(int status);
    void do_drop_stream();
    bool idempotent() const;

    Request &req_;
    UpstreamRuntime &upstream_;
    State state_ = State::picking;
    std::unique_ptr<UpstreamStream> stream_;
    UpstreamRequest up_;  // the head we send (built once, sent on every attempt)
    TriedTargets tried_;
    int target_ = -1;
    int attempts_ = 0;
    uint64_t attempt_start_us_ = 0;
    int last_status_ = 502;        // what the last failed attempt would answer
    int64_t deadline_ms_ = 0;      // a gRPC call's deadline (monotonic ms), 0: none
    bool deadline_binds_ = false;  // it comes before read_timeout: its expiry is the call's
    bool stale_retry_used_ = false;
    bool prepared_ = false;        // upstream phase done, head built
    bool vetoed_ = false;          // a plugin kept some target out (peer_admit)
    bool ready_ = false;           // the stream of this attempt may send
    bool body_forwarded_ = false;  // some request body reached the upstream
    // A stream an HTTP/2 target declines (REFUSED_STREAM, above its GOAWAY's last id, or a
    // connection that failed first) was not processed and may go to another target, a POST
    // too (RFC 9113 8.7); the body it took is sent again from this copy. Kept while every
    // forwarded byte fits in kReplayBodyMax and a retry is left; null otherwise.
    static constexpr size_t kReplayBodyMax = 64 * 1024;
    EvbufferPtr replay_;
    bool replay_whole_ = true;  // every forwarded byte of this attempt is in replay_
    void keep_for_replay(evbuffer *body);
    bool request_sent_ = false;  // head and whole body went to the stream
    bool head_received_ = false;
};

}  // namespace torii
