#include "core/net/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/log.h"

namespace torii {

Result<int> open_listen_socket(const SocketAddress &addr, int backlog) {
    int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(std::string("socket(): ") + strerror(errno));
    UniqueFd guard(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, addr.sa(), addr.length) != 0)
        return make_error("bind " + addr.to_string() + ": " + strerror(errno));
    if (::listen(fd, backlog) != 0)
        return make_error("listen " + addr.to_string() + ": " + strerror(errno));
    return guard.release();
}

Listener::Listener(event_base *base, int fd, AcceptFn on_accept, ExhaustedFn on_exhausted)
    : fd_(fd), on_accept_(std::move(on_accept)), on_exhausted_(std::move(on_exhausted)) {
    ev_.reset(event_new(base, fd, EV_READ | EV_PERSIST, on_accept_cb, this));
    resume();
}

Listener::~Listener() {
    ev_.reset();
}

void Listener::pause() {
    if (paused_) return;
    paused_ = true;
    event_del(ev_.get());
}

void Listener::resume() {
    if (!paused_) return;
    paused_ = false;
    event_add(ev_.get(), nullptr);
}

void Listener::on_accept_cb(evutil_socket_t, short, void *ctx) {
    static_cast<Listener *>(ctx)->do_accept();
}

void Listener::do_accept() {
    // Take a bounded batch per wakeup so one busy listener cannot starve the loop; stop early
    // when an accepted connection filled the worker (on_accept_ paused us).
    for (int i = 0; i < 64 && !paused_; ++i) {
        sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd =
            ::accept4(fd_, reinterpret_cast<sockaddr *>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // No log here: the callee pauses and logs at a bounded rate. Logging each
                // failure is what turned fd exhaustion into a busy loop writing 45 MB/s.
                on_exhausted_(errno);
                return;
            }
            log_warn("accept: %s", strerror(errno));
            return;
        }
        on_accept_(fd, SocketAddress::from_sockaddr(reinterpret_cast<sockaddr *>(&ss), len));
    }
}

}  // namespace torii
