#include "modules/discovery/etcd_discovery.h"

#include <algorithm>
#include <cstdlib>

#include "core/base/log.h"
#include "modules/discovery/etcd_codec.h"

namespace torii {

static constexpr Millis kFirstRetry = 500;

// A range answers at once: a few seconds for each step is plenty, even for a loaded etcd.
static constexpr HttpPostLimits kRangeLimits = {
    .connect_ms = 3'000, .head_ms = 5'000, .body_ms = 5'000, .max_buffered = 4 << 20};

// A watch is silent while nothing changes: etcd sends nothing unless asked. It is asked
// (progress_notify, etcd_codec.cc), so even a quiet prefix gets a message every progress
// interval of etcd (10 minutes unless --experimental-watch-progress-notify-interval says
// otherwise); three intervals without a byte mean the server hangs. A peer that vanished
// without closing (host down, network cut) is noticed much sooner by TCP keepalive (~25 s,
// http_post.cc). A closed or reset connection is noticed at once.
static constexpr HttpPostLimits kWatchLimits = {.connect_ms = 3'000,
                                                .head_ms = 5'000,
                                                .body_ms = 3 * 600'000,
                                                .max_buffered = 4 << 20,
                                                .tcp_keepalive = true};

// What a body holds, in one piece (it is bounded by the call's max_buffered).
static std::string_view contents(evbuffer *body) {
    size_t n = evbuffer_get_length(body);
    if (n == 0) return {};
    return {reinterpret_cast<const char *>(evbuffer_pullup(body, -1)), n};
}

Millis etcd_retry_delay(unsigned failures, Millis cap, uint64_t random) {
    cap = std::max(cap, kFirstRetry);
    Millis delay = kFirstRetry;
    for (unsigned i = 1; i < failures && delay < cap; ++i)
        delay *= 2;
    delay = std::min(delay, cap);
    Millis half = delay / 2;
    return delay - half + static_cast<Millis>(random % static_cast<uint64_t>(half + 1));
}

std::unique_ptr<DiscoverySource> make_etcd_discovery(event_base *base,
                                                     const UpstreamConfig &upstream,
                                                     DiscoverySink &sink) {
    if (upstream.discovery.type != "etcd") return nullptr;
    return std::make_unique<EtcdDiscovery>(base, upstream, sink);
}

EtcdDiscovery::EtcdDiscovery(event_base *base, const UpstreamConfig &upstream, DiscoverySink &sink)
    : base_(base),
      prefix_(upstream.discovery.prefix),
      interval_(upstream.discovery.interval),
      report_(sink),
      random_(std::random_device{}()) {
    for (const std::string &url : upstream.discovery.endpoints) {
        Result<DiscoveryEndpoint> e = DiscoveryEndpoint::parse(url);
        if (e)
            endpoints_.push_back(std::move(*e));
        else
            endpoint_errors_.push_back("etcd: " + e.error());
    }
    retry_timer_.reset(evtimer_new(base_, on_retry, this));
}

EtcdDiscovery::~EtcdDiscovery() = default;

void EtcdDiscovery::start() {
    for (const std::string &why : endpoint_errors_)
        report_.error(why);
    if (endpoints_.empty()) {
        report_.error("etcd: no usable endpoint");
        return;
    }
    begin_range();
}

bool EtcdDiscovery::post(const char *path, const std::string &json, const HttpPostLimits &limits) {
    auto call = std::make_unique<HttpPost>(static_cast<HttpPostHandler &>(*this));
    status_ = 0;
    Result<void> started = call->start(base_, endpoints_[endpoint_], path, json, limits);
    if (!started) {
        fail(started.error());  // no callback of `call` ran: it goes at once
        return false;
    }
    call_ = std::move(call);
    return true;
}

void EtcdDiscovery::begin_range() {
    phase_ = Phase::ranging;
    post("/v3/kv/range", etcd::range_request(prefix_), kRangeLimits);
}

void EtcdDiscovery::begin_watch(int64_t start_revision) {
    phase_ = Phase::watching;
    post("/v3/watch", etcd::watch_request(prefix_, start_revision), kWatchLimits);
}

void EtcdDiscovery::retire_call() {
    if (!call_) return;
    call_->stop();
    finished_ = std::move(call_);
}

void EtcdDiscovery::fail(const std::string &why) {
    retire_call();
    report_.error("etcd " + endpoints_[endpoint_].url + ": " + why);
    phase_ = Phase::waiting;
    endpoint_ = (endpoint_ + 1) % endpoints_.size();
    ++failures_;
    timeval tv = to_timeval(etcd_retry_delay(failures_, interval_, random_()));
    evtimer_add(retry_timer_.get(), &tv);
}

void EtcdDiscovery::on_retry(evutil_socket_t, short, void *ctx) {
    auto *self = static_cast<EtcdDiscovery *>(ctx);
    self->finished_.reset();  // a timer callback: no call is on the stack
    self->begin_range();
}

void EtcdDiscovery::report_key_errors(const std::vector<std::string> &errors) {
    for (const std::string &e : errors)
        report_.error("etcd: " + e);
}

void EtcdDiscovery::on_post_head(int status) {
    status_ = status;
}

void EtcdDiscovery::on_post_body(evbuffer *body) {
    // A range and an error body are read whole at the end (the call bounds their size);
    // a watch is read message by message as it streams.
    if (phase_ == Phase::watching && status_ == 200) read_watch_lines(body);
}

void EtcdDiscovery::on_post_end(evbuffer *body) {
    if (status_ != 200) {
        std::string message = etcd::error_message(contents(body));
        fail("HTTP " + std::to_string(status_) + (message.empty() ? "" : ": " + message));
        return;
    }
    if (phase_ == Phase::ranging) {
        finish_range(body);
        return;
    }
    read_watch_lines(body);
    if (phase_ == Phase::watching) fail("the watch ended");
}

void EtcdDiscovery::on_post_error(const std::string &why) {
    fail(why);
}

void EtcdDiscovery::finish_range(evbuffer *body) {
    Result<etcd::RangeResponse> range = etcd::parse_range_response(contents(body));
    if (!range) {
        fail("range: " + range.error());
        return;
    }
    retire_call();
    std::vector<std::string> errors;
    map_.reset(range->kvs, errors);
    report_key_errors(errors);
    if (failures_ > 0)
        log_info("etcd %s: %s resynced at revision %lld, %zu targets",
                 endpoints_[endpoint_].url.c_str(), etcd::printable(prefix_).c_str(),
                 static_cast<long long>(range->revision), map_.size());
    // The first list, or the first after a failure: reported even if unchanged (the sink
    // holds the source as failing until a list says it works again).
    report_.targets(map_.targets());
    // From the next revision on: nothing between the range and the watch is missed.
    begin_watch(range->revision + 1);
}

void EtcdDiscovery::read_watch_lines(evbuffer *body) {
    // The gateway ends every message with "\n"; JSON strings cannot hold a raw newline.
    for (;;) {
        evbuffer_ptr eol = evbuffer_search_eol(body, nullptr, nullptr, EVBUFFER_EOL_LF);
        if (eol.pos < 0) return;
        size_t n = static_cast<size_t>(eol.pos);
        std::string line(n, '\0');
        evbuffer_remove(body, line.data(), n);
        evbuffer_drain(body, 1);
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        on_watch_message(line);
        if (phase_ != Phase::watching) return;  // it failed
    }
}

void EtcdDiscovery::on_watch_message(std::string_view line) {
    Result<etcd::WatchMessage> msg = etcd::parse_watch_message(line);
    if (!msg) {
        fail("watch: " + msg.error());
        return;
    }
    if (msg->canceled) {
        std::string why = "the watch was cancelled";
        if (msg->compact_revision > 0)
            why += " (revision " + std::to_string(msg->compact_revision) + " compacted)";
        if (!msg->cancel_reason.empty()) why += ": " + msg->cancel_reason;
        fail(why);
        return;
    }
    if (msg->created) failures_ = 0;  // the whole cycle worked: the next failure retries fast
    std::vector<std::string> errors;
    bool changed = map_.apply(msg->events, errors);
    report_key_errors(errors);
    // A skipped key is not a failure to read etcd: the list follows the error even when
    // unchanged, so the sink does not keep holding the source as failing.
    if (changed || !errors.empty()) report_.targets(map_.targets());
}

}  // namespace torii
