// An upstream as one worker sees it at runtime: its targets with their keep-alive pools.
// Who the targets are, their weight, health and in-flight counts live in the machine's
// target table (core/fleet/target_table.h), shared by every worker; the runtime mirrors the
// membership into local slots when the table's version for this upstream moves, and reads
// health and load from it at each pick.
//
// Picking a target is the balancer plugin's job (TORII_PHASE_BALANCE): the runtime keeps
// the peer set it reads (address, weight, health, in-flight, latency) up to date and feeds
// back each attempt's outcome.
//
// Local slot indexes are what requests hold (tried targets, streams, pooled connections), so
// a slot keeps its index while it lives: a target that leaves the set stops taking requests,
// finishes those it has, and only then is its slot emptied (and maybe reused).
#pragma once

#include <torii/plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config.h"
#include "core/fleet/target_table.h"
#include "core/proxy/in_flight.h"
#include "core/proxy/tried_targets.h"
#include "modules/tls/openssl_handles.h"

namespace torii {

class UpstreamConnection;
class Http2SessionPool;
struct PluginInstance;
struct Request;

struct TargetState {
    TargetConfig config;  // address, sockaddr, weight and id as the table has them
    // Health, load and passive-failure counts: the table's slot, or `own` without a table.
    SharedTarget *shared = nullptr;
    std::unique_ptr<SharedTarget> own;
    uint32_t slot = UINT32_MAX;  // in the table
    bool live = true;            // false: left the set; finishes its requests, then is freed
    bool drain = false;          // no new requests (admin PATCH drain)
    uint64_t idle_since_ms = 0;  // !live: when it was first seen with nothing in flight
    uint32_t in_flight = 0;      // this worker's requests on it
    uint32_t latency_us = 0;     // moving average of response-head latency (torii_peer_t)
    // Idle keep-alive connections, oldest first; reused from the back (warmest).
    std::vector<std::unique_ptr<UpstreamConnection>> idle;
    // TLS: the last session this target gave us, offered for resumption on the next
    // connection; the name sent as SNI and checked in its certificate.
    SslSessionPtr tls_session;
    // protocol = "h2" / "h2c": the target's multiplexed HTTP/2 sessions.
    std::unique_ptr<Http2SessionPool> h2;
    std::string tls_name;
    bool tls_name_is_ip = false;
};

class Socket;
class SocketHandler;
class UpstreamStream;
class UpstreamStreamHandler;

class UpstreamRuntime {
public:
    UpstreamRuntime(const UpstreamConfig &config, PluginInstance *balancer);
    ~UpstreamRuntime();

    const UpstreamConfig &config() const { return config_; }
    size_t size() const { return targets_.size(); }
    TargetState &target(size_t i) { return *targets_[i]; }
    // Counts one exchange on `target` in this worker's and the machine's in-flight counts.
    InFlight count_in_flight(int target) {
        TargetState &t = *targets_[target];
        return InFlight(&t.in_flight, &t.shared->in_flight);
    }

    static constexpr int kNoneLeft = -1;     // every target was tried
    static constexpr int kNoneHealthy = -2;  // targets remain, but all are marked down
    // Asks the balancer for a target not in `tried` and not marked down.
    int pick(Request &req, const TriedTargets &tried);

    // pick(), then every peer_admit plugin of req.chain: the first target they all let in
    // (each one asked is added to `tried`; *vetoed is set when a plugin kept one out), or
    // kNoneLeft / kNoneHealthy.
    int pick_admitted(Request &req, TriedTargets &tried, bool *vetoed);
    // Tells req.chain's peer_result plugins how an attempt on `target` went.
    void report_to_plugins(Request &req, int target, torii_peer_outcome_t outcome, int status);

    // A new exchange with `target` in the upstream's protocol, not started yet.
    std::unique_ptr<UpstreamStream> new_stream(int target, UpstreamStreamHandler &handler,
                                               Request &req);
    // A new connection to `target` (TCP connect started; with TLS, the handshake follows
    // and on_socket_connected means both are done). nullptr with *err when it cannot start.
    Socket *open_connection(int target, SocketHandler *handler, int *err);
    // An idle pooled connection to `target` with that pool key (UpstreamConnection), or
    // nullptr.
    std::unique_ptr<UpstreamConnection> take_idle(int target, std::string_view key = {});
    // Returns a connection whose last exchange completed cleanly.
    void release(std::unique_ptr<UpstreamConnection> conn);
    // The pool noticed that an idle connection was closed by the upstream.
    void drop_idle(UpstreamConnection *conn);

    // Feedback from an attempt: passive health, latency, and the balancer's feedback hook.
    void report_failure(Request &req, int target, torii_peer_outcome_t outcome);
    void report_success(Request &req, int target, uint64_t latency_us);

    // proxy_protocol = "v1" / "v2": the header for a new connection on behalf of `req`'s
    // client, in its arena.
    std::string_view proxy_header_for(Request &req) const;

private:
    bool admitted(Request &req, int target);  // every peer_admit plugin says yes
    // The table's members for this upstream moved: mirror them into local slots.
    void sync_members();
    std::unique_ptr<TargetState> make_target(const TargetConfig &config, SharedTarget *shared,
                                             uint32_t slot);
    void retire_target(TargetState &t);       // left the set: no new requests
    void free_drained_targets(uint64_t now);  // empties slots whose requests all ended
    void rebuild_peers();                     // and tells the balancer
    uint32_t effective_weight(const TargetState &t, uint64_t now) const;  // slow_start

    const UpstreamConfig &config_;
    TargetTable *table_ = nullptr;
    int table_upstream_ = -1;
    uint64_t seen_version_ = 0;
    size_t live_targets_ = 0;
    size_t retired_targets_ = 0;                         // !live slots not freed yet
    std::vector<std::unique_ptr<TargetState>> targets_;  // nullptr: an empty slot
    PluginInstance *balancer_;
    std::vector<torii_peer_t> peers_;  // what the balancer reads, refreshed before each pick
    std::vector<uint8_t> tried_;
};

}  // namespace torii
