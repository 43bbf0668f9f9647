// Listening sockets. The process that reads the config (the master, later) opens them with
// open_listen_socket; each worker then accepts on the same fds through a Listener, so a
// reload never closes a socket with connections waiting in its queue.
#pragma once

#include <event2/event.h>

#include <functional>

#include "core/base/libevent_ptr.h"
#include "core/base/result.h"
#include "core/base/socket_address.h"

namespace torii {

Result<int> open_listen_socket(const SocketAddress &addr, int backlog = 511);

class Listener {
public:
    // Called for each accepted, non-blocking fd; the callee owns it.
    using AcceptFn = std::function<void(int fd, const SocketAddress &peer)>;
    // Called when accept fails for want of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
    // the connection stays in the queue and the listening socket stays readable, so the
    // callee must pause this listener (and, as the fd table is shared, its siblings) or the
    // level-triggered loop spins on it.
    using ExhaustedFn = std::function<void(int err)>;

    Listener(event_base *base, int fd, AcceptFn on_accept, ExhaustedFn on_exhausted);
    ~Listener();
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    // Leave the queue to other workers / the next generation: graceful stop, a full worker,
    // no fds left. Takes effect within the current batch of accepts too.
    void pause();
    void resume();
    int fd() const { return fd_; }

private:
    static void on_accept_cb(evutil_socket_t fd, short, void *ctx);
    void do_accept();

    int fd_;  // not owned: the master keeps listening sockets open across generations
    AcceptFn on_accept_;
    ExhaustedFn on_exhausted_;
    EventPtr ev_;
    bool paused_ = true;
};

}  // namespace torii
