// When a worker's listeners accept. They are paused while
//   - the worker holds its limit of client connections (worker_connections, capped by the
//     fd limit: core/net/fd_limit.h), until one closes: the queue is left to other workers
//     and the connections the worker holds keep their fds for upstreams;
//   - accept just failed for want of fds (EMFILE, ENFILE, ...), until a connection closes
//     or a short retry timer fires (nginx waits accept_mutex_delay, 500 ms): a listening
//     socket stays readable while its queue is not empty, so accepting on would spin;
//   - the worker stops gracefully, for good.
// Refused accepts are counted and logged at most once per interval, with the count.
#pragma once

#include <event2/event.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/base/libevent_ptr.h"

namespace torii {

class Listener;

class AcceptGate {
public:
    AcceptGate(event_base *base, size_t limit);
    AcceptGate(const AcceptGate &) = delete;
    AcceptGate &operator=(const AcceptGate &) = delete;

    void add(Listener *l) { listeners_.push_back(l); }
    size_t limit() const { return limit_; }

    // After the worker registered / unregistered a client connection; `held` is the count now.
    void on_opened(size_t held);
    void on_closed(size_t held);
    // accept() failed with `err` for want of resources.
    void on_exhausted(int err, size_t held);
    // Graceful stop: never accept again.
    void close();
    // Once a second: reports refusals still uncounted in the log.
    void tick(uint64_t now_ms);

private:
    static void on_retry_cb(evutil_socket_t, short, void *ctx);
    void apply();
    void report(uint64_t now_ms);

    std::vector<Listener *> listeners_;  // owned by the Worker, which outlives the gate's use
    size_t limit_;
    bool full_ = false;
    bool exhausted_ = false;
    bool closed_ = false;
    bool paused_ = false;
    EventPtr retry_;
    size_t held_ = 0;
    // Rate-limited logging: what happened since the last line.
    int last_err_ = 0;
    uint64_t refused_ = 0;  // accepts that failed for want of fds
    uint64_t fills_ = 0;    // times the worker reached its connection limit
    uint64_t window_start_ms_ = 0;
    bool logged_once_ = false;
};

}  // namespace torii
