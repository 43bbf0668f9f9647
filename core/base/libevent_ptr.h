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
