#include "core/worker/accept_gate.h"

#include <cstring>

#include "core/base/log.h"
#include "core/net/listener.h"
#include "core/worker/worker.h"

namespace torii {

// How long accepting stays off after running out of fds when no connection closes first.
static constexpr int64_t kRetryMs = 100;
// At most one log line per kind per this interval.
static constexpr uint64_t kLogIntervalMs = 5000;

AcceptGate::AcceptGate(event_base *base, size_t limit) : limit_(limit ? limit : 1) {
    retry_.reset(evtimer_new(base, on_retry_cb, this));
}

void AcceptGate::apply() {
    bool pause = closed_ || full_ || exhausted_;
    if (pause == paused_) return;
    paused_ = pause;
    for (Listener *l : listeners_) {
        if (pause)
            l->pause();
        else
            l->resume();
    }
}

void AcceptGate::on_opened(size_t held) {
    held_ = held;
    if (held < limit_ || full_) return;
    full_ = true;
    fills_++;
    report(Worker::now_ms());
    apply();
}

void AcceptGate::on_closed(size_t held) {
    held_ = held;
    // A connection's fd is closed right after this callback returns (deferred deletion runs
    // before the loop polls again), so the next accept can have it.
    if (held < limit_) full_ = false;
    if (exhausted_) {
        exhausted_ = false;
        evtimer_del(retry_.get());
    }
    apply();
}

void AcceptGate::on_exhausted(int err, size_t held) {
    held_ = held;
    last_err_ = err;
    refused_++;
    report(Worker::now_ms());
    if (closed_) return;
    exhausted_ = true;
    timeval tv = to_timeval(kRetryMs);
    evtimer_add(retry_.get(), &tv);
    apply();
}

void AcceptGate::on_retry_cb(evutil_socket_t, short, void *ctx) {
    auto *g = static_cast<AcceptGate *>(ctx);
    g->exhausted_ = false;
    g->apply();
}

void AcceptGate::close() {
    closed_ = true;
    evtimer_del(retry_.get());
    apply();
}

void AcceptGate::tick(uint64_t now_ms) {
    if (refused_ || fills_) report(now_ms);
}

// An event is logged at once when no line was written for an interval; later ones are
// summed and logged once the interval has passed, so a flood costs one line per interval,
// not one per accept (448 MB of identical lines in 10 s before this existed).
void AcceptGate::report(uint64_t now_ms) {
    if (logged_once_ && now_ms - window_start_ms_ < kLogIntervalMs) return;
    auto seconds = static_cast<unsigned long long>((now_ms - window_start_ms_ + 500) / 1000);
    if (refused_ == 1)
        log_error(
            "accept: %s; not accepting until a connection closes or %lldms pass (this "
            "worker holds %zu client connections); repeats are logged every %llu s",
            strerror(last_err_), static_cast<long long>(kRetryMs), held_,
            static_cast<unsigned long long>(kLogIntervalMs / 1000));
    else if (refused_ > 1)
        log_error(
            "accept: %s; %llu times in the last %llu s (this worker holds %zu client "
            "connections)",
            strerror(last_err_), static_cast<unsigned long long>(refused_), seconds, held_);
    if (fills_ == 1)
        log_warn(
            "worker_connections: this worker holds %zu client connections, its limit; "
            "not accepting until one closes",
            limit_);
    else if (fills_ > 1)
        log_warn(
            "worker_connections: the limit of %zu client connections was reached %llu "
            "times in the last %llu s",
            limit_, static_cast<unsigned long long>(fills_), seconds);
    refused_ = 0;
    fills_ = 0;
    logged_once_ = true;
    window_start_ms_ = now_ms;
}

}  // namespace torii
