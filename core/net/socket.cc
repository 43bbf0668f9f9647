#include "core/net/socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/worker/worker.h"
#include "modules/tls/openssl_handles.h"

namespace torii {

// The most plaintext one SSL_read / SSL_write moves: one TLS record.
static constexpr size_t kTlsRecord = 16 * 1024;

// What a failed SSL_read/SSL_write means. The retry states come from the SSL itself, so
// they need no ERR_clear_error() before every call (it costs ~800 instructions: three of
// them made 7% of a TLS request); a stale entry on the thread's error queue (left by a
// plugin's own OpenSSL calls) can then only colour the text of a real failure.
static int tls_failure(SSL *ssl, int rc) {
    if (SSL_want_read(ssl)) return SSL_ERROR_WANT_READ;
    if (SSL_want_write(ssl)) return SSL_ERROR_WANT_WRITE;
    if (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) return SSL_ERROR_ZERO_RETURN;
    return SSL_get_error(ssl, rc);
}

static constexpr size_t kMaxReadSize = 256 * 1024;

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Socket::Socket(event_base *base, int fd, SocketHandler *handler)
    : fd_(fd), handler_(handler), read_ev_(base, fd, EV_READ | EV_PERSIST, on_read_cb, this) {
    set_nodelay(fd);
    add_read_event();
}

namespace {
// Empty evbuffers of closed sockets, for the next ones: a new connection takes its two
// from here rather than from evbuffer_new (and frees none). One list per thread (a
// worker's loop), bounded. An input that had space reserved in it is not kept: it may
// hold an empty chain of up to 256 KiB.
struct BufferPool {
    std::vector<evbuffer *> free;
    ~BufferPool() {
        for (evbuffer *b : free)
            evbuffer_free(b);
    }
};
thread_local BufferPool buffer_pool;
constexpr size_t kPooledBuffers = 1024;

// `b` is empty (the caller checked).
void give_empty(EvbufferPtr &b) {
    if (!b) return;
    if (buffer_pool.free.size() >= kPooledBuffers) {
        b.reset();
        return;
    }
    buffer_pool.free.push_back(b.release());
}
}  // namespace

EvbufferPtr Socket::take_buffer() {
    if (buffer_pool.free.empty()) return make_evbuffer();
    evbuffer *b = buffer_pool.free.back();
    buffer_pool.free.pop_back();
    return EvbufferPtr(b);
}

void Socket::give_buffers() {
    if (input_reserved_ || (input_ && evbuffer_get_length(input_.get()) != 0))
        input_.reset();
    else
        give_empty(input_);
    if (output_ && evbuffer_get_length(output_.get()) != 0)
        output_.reset();
    else
        give_empty(output_);
}

Socket::SharedBuffer Socket::unread_;

void Socket::spill(SharedBuffer &b, evbuffer *to) {
    b.owner = nullptr;
    evbuffer_add(to, b.bytes, b.len);
}

Socket::SharedBuffer Socket::unsent_;

char *Socket::reserve_unsent(size_t size) {
    if (unsent_.owner == this) {  // the output is empty while the buffer is ours
        if (unsent_.len + size > sizeof unsent_.bytes) return nullptr;
        return unsent_.bytes + unsent_.len;
    }
    if (connecting_ || failed_ || handshaking_ ||
        (output_ && evbuffer_get_length(output_.get()) != 0))
        return nullptr;
    if (size > sizeof unsent_.bytes) return nullptr;
    if (unsent_.owner) unsent_.owner->output();  // another socket's bytes go to its own output
    unsent_.owner = this;
    unsent_.len = 0;
    return unsent_.bytes;
}

void Socket::write(const void *data, size_t n) {
    if (char *p = reserve_unsent(n)) {
        std::memcpy(p, data, n);
        unsent_.len += n;
        return;
    }
    evbuffer_add(output(), data, n);
}

int Socket::write_unsent() {
    // The output evbuffer is empty, or output() would have moved these bytes into it.
    unsent_.owner = nullptr;
    size_t done = 0;
    if (!ssl_) {
        ssize_t rc = ::write(fd_.get(), unsent_.bytes, unsent_.len);
        if (rc < 0 && errno != EAGAIN && errno != EINTR) {
            write_error_ = errno;
            return -1;
        }
        done = rc > 0 ? static_cast<size_t>(rc) : 0;
    } else {
        // The buffer holds at most one record. After WANT_WRITE OpenSSL needs the same bytes
        // again: they go first in the output, and write_tls offers as many (moving allowed).
        while (done < unsent_.len) {
            size_t written = 0;
            if (SSL_write_ex(ssl_, unsent_.bytes + done, unsent_.len - done, &written) == 1) {
                done += written;
                continue;
            }
            int e = tls_failure(ssl_, 0);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
            write_error_ = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
            tls_error_ = "TLS write: " + openssl_errors("connection reset");
            return -1;
        }
    }
    if (done < unsent_.len) evbuffer_add(output(), unsent_.bytes + done, unsent_.len - done);
    return done > 0 ? 1 : 0;
}

void Socket::append(evbuffer *data) {
    size_t n = evbuffer_get_length(data);
    if (unsent_.owner == this && unsent_.len + n <= sizeof unsent_.bytes) {
        evbuffer_remove(data, unsent_.bytes + unsent_.len, n);
        unsent_.len += n;
        return;
    }
    evbuffer_add_buffer(output(), data);
}

Socket::~Socket() {
    if (unread_.owner == this) unread_.owner = nullptr;
    if (unsent_.owner == this) unsent_.owner = nullptr;  // as an output never written
    // Events go before the fd closes (read_ev_ is deleted with the members, after this body,
    // but before fd_: members go in reverse order).
    write_ev_.reset();
    if (ssl_) {
        // A clean close sends close_notify (best effort: never waits for the peer's).
        if (!failed_ && !handshaking_ && !connecting_) SSL_shutdown(ssl_);
        SSL_free(ssl_);
    }
    give_buffers();
}

void Socket::start_tls(ssl_st *ssl, bool server) {
    ssl_ = ssl;
    tls_server_ = server;
    // A write OpenSSL asks to retry comes again from another place (the shared write buffer
    // first, the output evbuffer after): allowed whatever the context said.
    SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_set_fd(ssl_, fd_.get());
    handshaking_ = true;
    if (server) {
        SSL_set_accept_state(ssl_);
        do_handshake();
    } else {
        SSL_set_connect_state(ssl_);  // the handshake starts when the TCP connect completes
        tcp_up_ = !connecting_;
        if (tcp_up_) do_handshake();
    }
}

void Socket::fail_tls(const char *what) {
    tls_error_ = std::string(what) + ": " + openssl_errors("connection closed by the peer");
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
        tls_error_ += " (";
        tls_error_ += X509_verify_cert_error_string(verify);
        tls_error_ += ")";
    }
    failed_ = true;
    pause_read();
    if (write_armed_) event_del(write_ev_.get());
    write_armed_ = false;
    handler_->on_socket_error(*this, EPROTO);
}

void Socket::do_handshake() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
        handshaking_ = false;
        connecting_ = false;
        if (write_armed_ && pending_output() == 0) {
            event_del(write_ev_.get());
            write_armed_ = false;
        }
        read_paused_ = false;
        add_read_event();
        handler_->on_socket_connected(*this);
        // Application data that came with the last handshake flight waits inside OpenSSL,
        // where no epoll event will announce it.
        if (!read_paused_ && SSL_has_pending(ssl_)) event_active(read_ev_.get(), EV_READ, 1);
        return;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) {
        // A client handshake is bounded like its connect (the write timeout); a server one by
        // its owner's timer or the read timeout.
        // (the libevent timeout: a handshake is short, and its length is not the read one)
        if (read_timer_) read_timer_->disarm();
        add_event_with_timeout(read_ev_.get(), tls_server_ ? read_timeout_ms_ : write_timeout_ms_,
                               read_ev_timed_);
        if (write_armed_) {
            event_del(write_ev_.get());
            write_armed_ = false;
        }
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        add_write_event();
        return;
    }
    fail_tls("TLS handshake");
}

int Socket::peek_first_byte() {
    unsigned char c;
    ssize_t n = ::recv(fd_.get(), &c, 1, MSG_PEEK);
    if (n == 1) return c;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
    return -2;
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
        s->write_error_ = errno;  // read back by do_finish_connect: errno is long gone by then
        *err = 0;
    }
    s->add_write_event();
    return s;
}

void Socket::add_read_event() {
    if (read_timeout_ms_ > 0 && Worker::has_current()) {
        if (!read_timer_)
            read_timer_ = std::make_unique<QueuedTimer>(Worker::current().timer_queues(),
                                                        on_read_timer, this);
        // A length the worker's queues do not take (one of many a peer chose: a gRPC
        // deadline) stays a libevent timeout.
        if (read_timer_->try_arm(read_timeout_ms_)) {
            add_event_with_timeout(read_ev_.get(), 0, read_ev_timed_);
            return;
        }
    }
    if (read_timer_) read_timer_->disarm();
    add_event_with_timeout(read_ev_.get(), read_timeout_ms_, read_ev_timed_);
}

void Socket::on_read_timer(void *ctx) {
    auto *s = static_cast<Socket *>(ctx);
    // As a persistent libevent timeout would: armed again, for an owner that lets it run.
    s->read_timer_->arm(s->read_timeout_ms_);
    s->handler_->on_socket_timeout(*s, true);
}

event *Socket::write_event() {
    if (!write_ev_)
        write_ev_.reset(event_new(event_get_base(read_ev_.get()), fd_.get(), EV_WRITE | EV_PERSIST,
                                  on_write_cb, this));
    return write_ev_.get();
}

void Socket::add_write_event() {
    add_event_with_timeout(write_event(), write_timeout_ms_, write_ev_timed_);
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
    // The read timeout runs from the last time the socket was readable.
    if (s->read_timer_ && s->read_timer_->armed()) s->read_timer_->arm(s->read_timeout_ms_);
    if (s->peek_mode_) {
        s->handler_->on_socket_read(*s);
        return;
    }
    if (s->in_handshake()) {
        s->do_handshake();
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
    if (s->in_handshake()) {
        s->do_handshake();
    } else if (s->connecting_) {
        s->do_finish_connect();
    } else if (s->read_wants_write_) {
        s->read_wants_write_ = false;
        if (s->pending_output() == 0 && s->write_armed_) {
            event_del(s->write_ev_.get());
            s->write_armed_ = false;
        }
        s->do_read();
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
    if (failed_) {
        soerr = write_error_ ? write_error_ : ECONNREFUSED;
        write_error_ = 0;
    } else if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        event_del(write_ev_.get());
        write_armed_ = false;
        handler_->on_socket_error(*this, soerr);
        return;
    }
    event_del(write_ev_.get());
    write_armed_ = false;
    if (preamble_) {
        // The socket was just connected and its send buffer is empty, so a header of at
        // most a few hundred bytes goes in one call; anything less is a broken connection.
        ssize_t n = ::send(fd_.get(), preamble_->data(), preamble_->size(), MSG_NOSIGNAL);
        bool whole = n == static_cast<ssize_t>(preamble_->size());
        int err = n < 0 ? errno : EPROTO;
        preamble_.reset();
        if (!whole) {
            failed_ = true;
            handler_->on_socket_error(*this, err);
            return;
        }
    }
    if (ssl_) {  // TCP is up: now the TLS handshake, still "connecting" for the owner
        tcp_up_ = true;
        read_paused_ = false;
        do_handshake();
        return;
    }
    connecting_ = false;
    read_paused_ = false;
    add_read_event();
    handler_->on_socket_connected(*this);
}

void Socket::do_read_tls() {
    size_t total = 0;
    bool eof = false;
    int error = 0;
    // A small exchange's record goes to the shared read buffer, as a plain small read does
    // (do_read), when the handler parses in place and nothing waits before it.
    bool in_place = read_in_place_ && read_size_ == kMinReadSize && !has_input();
    if (in_place && unread_.owner) unread_.owner->input();  // bytes nobody took: theirs
    evbuffer *in = nullptr;
    while (total < read_size_) {
        evbuffer_iovec v;
        if (in_place) {
            v.iov_base = unread_.bytes;
            v.iov_len = sizeof unread_.bytes;
        } else {
            if (!in) {
                in = input();
                input_reserved_ = true;
            }
            if (evbuffer_reserve_space(in, kTlsRecord, &v, 1) < 1) break;
        }
        size_t got = 0;
        if (SSL_read_ex(ssl_, v.iov_base, v.iov_len, &got) == 1) {
            size_t room = v.iov_len;
            total += got;
            // A short read with nothing left inside OpenSSL: the socket is most likely
            // empty, and the persistent read event says so if not. Saves a failing call.
            bool last = got < room && !SSL_has_pending(ssl_);
            if (in_place) {
                in_place = false;
                if (last) {
                    unread_.owner = this;
                    unread_.len = got;
                    break;
                }
                evbuffer_add(input(), unread_.bytes, got);  // more follows: all of it in order
                continue;
            }
            v.iov_len = got;
            evbuffer_commit_space(in, &v, 1);
            if (last) break;
            continue;
        }
        if (in_place)
            in_place = false;
        else
            evbuffer_commit_space(in, &v, 0);
        int e = tls_failure(ssl_, 0);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_WANT_WRITE) {
            read_wants_write_ = true;
            add_write_event();
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            eof = true;
            break;
        }
        error = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
        tls_error_ = "TLS read: " + openssl_errors("connection reset");
        break;
    }
    if (error) {
        failed_ = true;
        pause_read();
        handler_->on_socket_error(*this, error);
        return;
    }
    if (eof) {
        eof_ = true;
        pause_read();
    } else if (total == 0) {
        return;  // only TLS records without data (a session ticket, a key update)
    }
    if (total >= read_size_ && read_size_ < kMaxReadSize)
        read_size_ *= 2;
    else if (total < read_size_ / 4 && read_size_ > kMinReadSize)
        read_size_ /= 2;
    handler_->on_socket_read(*this);
    // Records already decrypted inside OpenSSL: no epoll event will say so.
    if (!read_paused_ && !failed_ && SSL_has_pending(ssl_))
        event_active(read_ev_.get(), EV_READ, 1);
}

int Socket::write_tls() {
    evbuffer *out = output_.get();
    bool progressed = false;
    size_t len;
    while ((len = evbuffer_get_length(out)) > 0) {
        // One record at a time; after WANT_WRITE OpenSSL needs the same bytes again (they are
        // still first in the buffer, and moving is allowed), at least as many.
        size_t n = len < kTlsRecord ? len : kTlsRecord;
        const unsigned char *p = evbuffer_pullup(out, static_cast<ev_ssize_t>(n));
        size_t written = 0;
        if (SSL_write_ex(ssl_, p, n, &written) == 1) {
            evbuffer_drain(out, written);
            progressed = true;
            continue;
        }
        int e = tls_failure(ssl_, 0);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
        write_error_ = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
        tls_error_ = "TLS write: " + openssl_errors("connection reset");
        return -1;
    }
    return progressed ? 1 : 0;
}

void Socket::do_read() {
    if (ssl_) {
        do_read_tls();
        return;
    }
    ssize_t got;
    if (read_size_ == kMinReadSize) {
        // Small exchanges: read into the shared read buffer, rather than allocating and
        // freeing a 16 KiB chain for every request. The bytes stay there for a handler that
        // parses in place (take_unread) when nothing waits before them; otherwise they are
        // copied into a small (allocator fast-path) chain of the input. Bulk transfers
        // switch to reading into the input's chains below.
        if (unread_.owner) unread_.owner->input();  // bytes nobody took: into their input
        got = ::read(fd_.get(), unread_.bytes, sizeof unread_.bytes);
        if (got > 0) {
            if (read_in_place_ && !has_input()) {
                unread_.owner = this;
                unread_.len = static_cast<size_t>(got);
            } else {
                evbuffer_add(input(), unread_.bytes, static_cast<size_t>(got));
            }
        }
    } else {
        evbuffer_iovec vec[2];
        input_reserved_ = true;
        int n = evbuffer_reserve_space(input(), static_cast<ev_ssize_t>(read_size_), vec, 2);
        if (n < 1) return;
        got = ::readv(fd_.get(), reinterpret_cast<iovec *>(vec), n);
        size_t left = got > 0 ? static_cast<size_t>(got) : 0;
        for (int i = 0; i < n; ++i) {
            size_t take = left < vec[i].iov_len ? left : vec[i].iov_len;
            vec[i].iov_len = take;
            left -= take;
        }
        evbuffer_commit_space(input(), vec, got > 0 ? n : 0);
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
    if (connecting_ || failed_ || handshaking_) return;
    do_write(false);
}

void Socket::notify_later() {
    // Callers of flush() are in the middle of their own work; events about this socket are
    // delivered from the loop instead of re-entering them.
    event_active(write_event(), EV_WRITE, 1);
}

void Socket::do_write(bool from_event) {
    evbuffer *out = output_.get();
    // One write per call: when it leaves data behind, the kernel buffer is full and a
    // second call would only return EAGAIN, so the write event takes over.
    size_t left = out ? evbuffer_get_length(out) : 0;
    ssize_t rc = 0;
    bool failed = false;
    if (unsent_.owner == this) {
        // Written directly (write_head, write): what the kernel does not take goes to the
        // output evbuffer.
        rc = write_unsent();
        failed = rc < 0;
        left = output_ ? evbuffer_get_length(output_.get()) : 0;
    } else if (left > 0) {
        rc = ssl_ ? write_tls() : evbuffer_write(out, fd_.get());
        failed = rc < 0 && (ssl_ || (errno != EAGAIN && errno != EINTR));
        if (failed && !ssl_) write_error_ = errno;
        // evbuffer_write drains what it wrote; write_tls loops, so ask the buffer.
        left = ssl_ ? evbuffer_get_length(out) : left - (rc > 0 ? static_cast<size_t>(rc) : 0);
    }
    if (failed) {
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
    bool progressed = rc > 0;
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
    if (read_timer_) read_timer_->disarm();
}

void Socket::resume_read() {
    if (!read_paused_ || eof_ || connecting_) return;
    read_paused_ = false;
    add_read_event();
    if (ssl_ && !handshaking_ && SSL_has_pending(ssl_)) event_active(read_ev_.get(), EV_READ, 1);
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
    if (write_ev_) event_del(write_ev_.get());
    if (read_timer_) read_timer_->disarm();
    read_paused_ = true;
    write_armed_ = false;
    watching_drain_ = false;
    handler_ = &detached_handler;
    // Bytes in the shared buffers stay this socket's: with its input and output (for
    // release_fd's taker to find, or freed with the socket).
    if (unread_.owner == this) input();
    if (unsent_.owner == this) output();
}

SocketAddress Socket::local_address() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd_.get(), reinterpret_cast<sockaddr *>(&ss), &len) != 0) return {};
    return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr *>(&ss), len);
}

UniqueFd Socket::release_fd() {
    detach();
    return std::move(fd_);
}

void Socket::reset_on_close() {
    linger lg{1, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    failed_ = true;  // and no TLS close_notify either
}

void Socket::shutdown_write() {
    if (ssl_ && !failed_ && !handshaking_) SSL_shutdown(ssl_);
    ::shutdown(fd_.get(), SHUT_WR);
}

}  // namespace torii
