// RAII owners for libevent handles: each is a unique_ptr whose deleter is the handle's free
// function, so no path can leak or double-free one.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <memory>

namespace torii {

struct EventBaseDeleter {
    void operator()(event_base *b) const { event_base_free(b); }
};
struct EventDeleter {
    void operator()(event *e) const { event_free(e); }
};
struct EvbufferDeleter {
    void operator()(evbuffer *b) const { evbuffer_free(b); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using EvbufferPtr = std::unique_ptr<evbuffer, EvbufferDeleter>;

// An event stored inside its owner, as nginx keeps its events in the connection: no
// allocation per connection, and none of the pool's rounding (event_new's 128-byte struct
// takes a 256-byte block). Deleted from the loop when the owner goes. The struct's layout
// comes from the libevent we build against; Worker checks it against the one we run with.
class InlineEvent {
public:
    InlineEvent(event_base *base, evutil_socket_t fd, short what, event_callback_fn cb, void *arg) {
        event_assign(&ev_, base, fd, what, cb, arg);
    }
    // Most are no longer in the loop by now (a closed socket was detached): skip the call.
    ~InlineEvent() {
        if (ev_.ev_evcallback.evcb_flags &
            (EVLIST_INSERTED | EVLIST_ACTIVE | EVLIST_ACTIVE_LATER | EVLIST_TIMEOUT))
            event_del(&ev_);
    }
    InlineEvent(const InlineEvent &) = delete;
    InlineEvent &operator=(const InlineEvent &) = delete;
    event *get() { return &ev_; }

private:
    event ev_;
};

inline EvbufferPtr make_evbuffer() {
    return EvbufferPtr(evbuffer_new());
}

inline timeval to_timeval(int64_t ms) {
    timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

// Adds `ev` to its loop with a timeout of `ms` milliseconds, or none for 0. libevent keeps a
// persistent event's last timeout: event_add(ev, NULL) leaves an armed one in place, and even
// after event_del the next activation re-arms the old length (event_persist_closure). So an
// event that may hold a timeout (`timed`) and is to have none is deleted and assigned afresh
// first; without that, a read timeout switched off went on firing (a GET after a POST got
// client_body_timeout's 408, t/integration/test_timeout_changes.py).
inline void add_event_with_timeout(event *ev, int64_t ms, bool &timed) {
    if (ms > 0) {
        timeval tv = to_timeval(ms);
        event_add(ev, &tv);
        timed = true;
        return;
    }
    if (timed) {
        event_base *base;
        evutil_socket_t fd;
        short what;
        event_callback_fn cb;
        void *arg;
        event_get_assignment(ev, &base, &fd, &what, &cb, &arg);
        // event_del also drops an activation already queued (TLS bytes read ahead): it is
        // queued again below.
        bool active = (ev->ev_evcallback.evcb_flags & (EVLIST_ACTIVE | EVLIST_ACTIVE_LATER)) != 0;
        event_del(ev);
        event_assign(ev, base, fd, what, cb, arg);
        timed = false;
        event_add(ev, nullptr);
        if (active) event_active(ev, what & (EV_READ | EV_WRITE), 1);
        return;
    }
    event_add(ev, nullptr);
}

// An owned file descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd &&o) noexcept : fd_(o.release()) {}
    UniqueFd &operator=(UniqueFd &&o) noexcept {
        reset(o.release());
        return *this;
    }
    ~UniqueFd() { reset(); }
    int get() const { return fd_; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1);

private:
    int fd_ = -1;
};

}  // namespace torii
