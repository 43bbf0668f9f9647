// The idle timeout of a long-lived relay (WebSocket and TCP tunnels, HTTP/2 tunnels):
// touch() on every byte moved only records the time; the timer is armed once and, when it
// fires early because traffic came since, re-armed for what is left. So a busy tunnel costs
// a timestamp per transfer, not an event_add.
#pragma once

#include <event2/event.h>

#include <cstdint>

#include "core/base/libevent_ptr.h"
#include "core/base/units.h"

namespace torii {

class IdleTimer {
public:
    // on_idle(ctx) is called once the relay has been idle for `timeout` (from the loop).
    IdleTimer(event_base *base, Millis timeout, void (*on_idle)(void *ctx), void *ctx);

    void touch();
    void stop();

private:
    static void on_timer_cb(evutil_socket_t, short, void *ctx);

    EventPtr ev_;
    Millis timeout_;
    uint64_t last_ms_ = 0;
    void (*on_idle_)(void *);
    void *ctx_;
};

}  // namespace torii
