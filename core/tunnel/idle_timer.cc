#include "core/tunnel/idle_timer.h"

#include "core/worker/worker.h"

namespace torii {

IdleTimer::IdleTimer(event_base *base, Millis timeout, void (*on_idle)(void *), void *ctx)
    : ev_(evtimer_new(base, on_timer_cb, this)), timeout_(timeout), on_idle_(on_idle), ctx_(ctx) {}

void IdleTimer::touch() {
    last_ms_ = Worker::now_ms();
    if (!evtimer_pending(ev_.get(), nullptr)) {
        timeval tv = to_timeval(timeout_);
        evtimer_add(ev_.get(), &tv);
    }
}

void IdleTimer::stop() {
    event_del(ev_.get());
}

void IdleTimer::on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *t = static_cast<IdleTimer *>(ctx);
    uint64_t idle = Worker::now_ms() - t->last_ms_;
    if (idle < static_cast<uint64_t>(t->timeout_)) {  // traffic since: wait for the rest
        timeval tv = to_timeval(t->timeout_ - static_cast<Millis>(idle));
        evtimer_add(t->ev_.get(), &tv);
        return;
    }
    t->on_idle_(t->ctx_);
}

}  // namespace torii
