// type = "etcd": follows a key prefix of an etcd v3 cluster through its JSON gateway, the
// APISIX model, so that every torii of a fleet serves the targets one registry holds.
//
//   range (the whole list and its revision) -> watch from revision + 1 (one long-lived
//   chunked response, a message per batch of events) -> ... until the watch fails
//
// Any failure (connect, reset, timeout, HTTP error, a bad response, the watch cancelled by
// a compaction or ended) is reported to the sink, the last list stays in force, and after a
// backoff (0.5 s doubling up to `interval`, jittered) the next endpoint is tried with a
// fresh range then watch: a resync, so changes made while torii was cut off are picked up
// whatever etcd compacted meanwhile.
//
// Each key under the prefix is one target, its value {"address": "10.0.0.5:8080", "weight":
// 2} (etcd_codec.h). The sink gets the whole list after every range and every batch that
// changed it (sorted; two keys with one address are one target with their weights summed,
// as for the other sources: discovery_report.h); a key with a bad value is left out and
// named in an error, which the list then follows (the source itself works: the sink must
// not hold it as failing).
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/units.h"
#include "modules/discovery/discovery_report.h"
#include "modules/discovery/discovery_source.h"
#include "modules/discovery/etcd_target_map.h"
#include "modules/discovery/http_post.h"

namespace torii {

// The wait before retry number `failures` (1 for the first): 500 ms doubling up to `cap`
// (at least 500 ms), then a point of its upper half picked by `random`, so torii instances
// cut off together do not all come back at the same instant.
Millis etcd_retry_delay(unsigned failures, Millis cap, uint64_t random);

class EtcdDiscovery final : public DiscoverySource, private HttpPostHandler {
public:
    EtcdDiscovery(event_base *base, const UpstreamConfig &upstream, DiscoverySink &sink);
    ~EtcdDiscovery() override;

    void start() override;

private:
    enum class Phase { idle, ranging, watching, waiting };

    void begin_range();
    void begin_watch(int64_t start_revision);
    bool post(const char *path, const std::string &json, const HttpPostLimits &limits);
    void fail(const std::string &why);
    void retire_call();
    void report_key_errors(const std::vector<std::string> &errors);
    void finish_range(evbuffer *body);
    void read_watch_lines(evbuffer *body);
    void on_watch_message(std::string_view line);
    static void on_retry(evutil_socket_t, short, void *ctx);

    void on_post_head(int status) override;
    void on_post_body(evbuffer *body) override;
    void on_post_end(evbuffer *body) override;
    void on_post_error(const std::string &why) override;

    event_base *base_;
    std::string prefix_;
    Millis interval_;
    std::vector<DiscoveryEndpoint> endpoints_;
    std::vector<std::string> endpoint_errors_;  // endpoints that did not parse
    size_t endpoint_ = 0;                       // the one in use or tried next

    Phase phase_ = Phase::idle;
    std::unique_ptr<HttpPost> call_;
    // The call that ended last: it may still be on the stack (its own callback ended it),
    // so it is freed only when the next one ends or the retry timer fires.
    std::unique_ptr<HttpPost> finished_;
    int status_ = 0;  // of the current call's response

    EtcdTargetMap map_;
    // Between the source and the sink: a list only when it changed or follows an error,
    // the same error only once.
    DiscoveryReport report_;
    unsigned failures_ = 0;  // since the last watch was created
    EventPtr retry_timer_;
    std::minstd_rand random_;
};

}  // namespace torii
