#include "core/net/socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace torii {

static constexpr size_t kMinReadSize = 16 * 1024;
static constexpr size_t kMaxReadSize = 256 * 1024;

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Socket::Socket(event_base *base, int fd, SocketHandler *handler)
    : fd_(fd), handler_(handler), input_(make_evbuffer()), output_(make_evbuffer()) {
    read_ev_.reset(event_new(base, fd, EV_READ | EV_PERSIST, on_read_cb, this));
    write_ev_.reset(event_new(base, fd, EV_WRITE | EV_PERSIST, on_write_cb, this));
    set_nodelay(fd);
    add_read_event();
}

Socket::~Socket() {
    // Events go before the fd closes (the members are destroyed in reverse order).
    write_ev_.reset();
    read_ev_.reset();
}

Socket *Socket::connect(event_base *base, const SocketAddress &addr, SocketHandler *handler,
                        int *err) {
    int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return nullptr;
    }
    auto *s = new Socket(base, fd, handler);
    s->connecting_ = true;
    s->pause_read();  // until connected; the changelist folds this add+del into nothing
    int rc = ::connect(fd, addr.sa(), addr.length);
    if (rc != 0 && errno != EINPROGRESS) {
        // Report through the write event like an asynchronous failure, so callers have one
        // path for both.
        s->failed_ = true;
        *err = 0;
    }
    s->add_write_event();
    return s;
}

void Socket::add_read_event() {
    timeval tv = to_timeval(read_timeout_ms_);
    event_add(read_ev_.get(), read_timeout_ms_ > 0 ? &tv : nullptr);
}

void Socket::add_write_event() {
    timeval tv = to_timeval(write_timeout_ms_);
    event_add(write_ev_.get(), write_timeout_ms_ > 0 ? &tv : nullptr);
    write_armed_ = true;
}

void Socket::set_read_timeout(int64_t ms) {
    if (ms == read_timeout_ms_) return;
    read_timeout_ms_ = ms;
    if (!read_paused_) add_read_event();  // re-adding only moves the timer, no epoll_ctl
}

void Socket::set_write_timeout(int64_t ms) {
    if (ms == write_timeout_ms_) return;
    write_timeout_ms_ = ms;
    if (write_armed_) add_write_event();
}

void Socket::on_read_cb(evutil_socket_t, short what, void *ctx) {
    auto *s = static_cast<Socket *>(ctx);
    if (what & EV_TIMEOUT) {
        s->handler_->on_socket_timeout(*s, true);
        return;
    }
    s->do_read();
}

void Socket::on_write_cb(evutil_socket_t, short what, void *ctx) {
    auto *s = static_cast<Socket *>(ctx);
    if (what & EV_TIMEOUT) {
        s->handler_->on_socket_timeout(*s, false);
        return;
    }
    if (s->connecting_) {
        s->do_finish_connect();
    } else if (s->failed_ && s->write_error_) {
        if (s->write_armed_) event_del(s->write_ev_.get());
        s->write_armed_ = false;
        int err = s->write_error_;
        s->write_error_ = 0;
        s->handler_->on_socket_error(*s, err);
    } else if (!s->failed_) {
        s->do_write(true);
    }
}

void Socket::do_finish_connect() {
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (failed_ || getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
    if (failed_ && soerr == 0) soerr = ECONNREFUSED;
    if (soerr != 0) {
        event_del(write_ev_.get());
        write_armed_ = false;
        handler_->on_socket_error(*this, soerr);
        return;
    }
    connecting_ = false;
    read_paused_ = false;
    add_read_event();
    event_del(write_ev_.get());
    write_armed_ = false;
    handler_->on_socket_connected(*this);
}

void Socket::do_read() {
    ssize_t got;
    if (read_size_ == kMinReadSize) {
        // Small exchanges: read into one per-process buffer and copy the few bytes into a
        // small (allocator fast-path) chain, rather than allocating and freeing a 16 KiB
        // chain for every request. Bulk transfers switch to reading in place below.
        static char scratch[kMinReadSize];
        got = ::read(fd_.get(), scratch, sizeof scratch);
        if (got > 0) evbuffer_add(input_.get(), scratch, static_cast<size_t>(got));
    } else {
        evbuffer_iovec vec[2];
        int n = evbuffer_reserve_space(input_.get(), static_cast<ev_ssize_t>(read_size_), vec, 2);
        if (n < 1) return;
        got = ::readv(fd_.get(), reinterpret_cast<iovec *>(vec), n);
        size_t left = got > 0 ? static_cast<size_t>(got) : 0;
        for (int i = 0; i < n; ++i) {
            size_t take = left < vec[i].iov_len ? left : vec[i].iov_len;
            vec[i].iov_len = take;
            left -= take;
        }
        evbuffer_commit_space(input_.get(), vec, got > 0 ? n : 0);
    }
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        int err = errno;
        pause_read();
        handler_->on_socket_error(*this, err);
        return;
    }
    if (got == 0) {
        eof_ = true;
        pause_read();
    } else if (static_cast<size_t>(got) == read_size_ && read_size_ < kMaxReadSize) {
        read_size_ *= 2;  // a bulk transfer: fewer, larger reads, in place
    } else if (static_cast<size_t>(got) < read_size_ / 4 && read_size_ > kMinReadSize) {
        read_size_ /= 2;
    }
    handler_->on_socket_read(*this);
}

void Socket::flush() {
    if (connecting_ || failed_) return;
    do_write(false);
}

void Socket::notify_later() {
    // Callers of flush() are in the middle of their own work; events about this socket are
    // delivered from the loop instead of re-entering them.
    event_active(write_ev_.get(), EV_WRITE, 1);
}

void Socket::do_write(bool from_event) {
    evbuffer *out = output_.get();
    bool progressed = false;
    // One writev per call: when it leaves data behind, the kernel buffer is full and a
    // second call would only return EAGAIN, so the write event takes over.
    if (evbuffer_get_length(out) > 0) {
        int rc = evbuffer_write(out, fd_.get());
        if (rc < 0 && errno != EAGAIN && errno != EINTR) {
            write_error_ = errno;
            failed_ = true;
            if (!from_event) {
                notify_later();
                return;
            }
            if (write_armed_) event_del(write_ev_.get());
            write_armed_ = false;
            handler_->on_socket_error(*this, write_error_);
            return;
        }
        progressed = rc > 0;
    }
    size_t left = evbuffer_get_length(out);
    if (left > 0 && (!write_armed_ || progressed)) {
        add_write_event();  // (re)starts the write timeout
    } else if (left == 0 && write_armed_) {
        event_del(write_ev_.get());
        write_armed_ = false;
    }
    if (watching_drain_ && left <= drain_low_) {
        if (!from_event) {
            notify_later();
            return;
        }
        watching_drain_ = false;
        handler_->on_socket_drained(*this);
    }
}

void Socket::watch_drain(size_t low) {
    drain_low_ = low;
    watching_drain_ = true;
}

void Socket::pause_read() {
    if (read_paused_) return;
    read_paused_ = true;
    event_del(read_ev_.get());
}

void Socket::resume_read() {
    if (!read_paused_ || eof_ || connecting_) return;
    read_paused_ = false;
    add_read_event();
}

namespace {
// Receives the events of a detached socket: none can arrive (its events are deleted), but
// a handler that is never null keeps every callback path free of checks.
class DetachedHandler final : public SocketHandler {
    void on_socket_read(Socket &) override {}
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &, int) override {}
    void on_socket_timeout(Socket &, bool) override {}
};
DetachedHandler detached_handler;
}  // namespace

void Socket::detach() {
    // event_del also takes an event off the loop's active queue (a connect completion or a
    // notify_later already activated in this loop iteration).
    event_del(read_ev_.get());
    event_del(write_ev_.get());
    read_paused_ = true;
    write_armed_ = false;
    watching_drain_ = false;
    handler_ = &detached_handler;
}

void Socket::shutdown_write() {
    ::shutdown(fd_.get(), SHUT_WR);
}

}  // namespace torii
