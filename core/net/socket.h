// A non-blocking TCP socket with an input and an output evbuffer. Unlike a bufferevent it
// writes as soon as asked (one writev, and a write event only when the kernel pushes back)
// and keeps one persistent read event, so a keep-alive exchange costs no epoll_ctl calls.
//
// Events go to a Handler. Handlers never destroy the Socket inside a callback: owners
// are freed through Worker::defer_delete once the callback has returned.
//
// Transport: plain TCP, or TLS once start_tls() hands the socket an SSL (modules/tls makes
// it). With TLS the input and output evbuffers hold plaintext and everything above the
// socket is unchanged; the handshake runs on the socket's own events and ends with
// on_socket_connected.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <cstddef>

#include <memory>
#include <string>
#include <string_view>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/base/socket_address.h"
#include "core/worker/timer_queues.h"

struct ssl_st;  // OpenSSL's SSL

namespace torii {

class Socket;

class SocketHandler {
public:
    // New bytes in input(), or the peer closed (eof()) — both may be true at once.
    virtual void on_socket_read(Socket &s) = 0;
    // Output fell to the low watermark after having been above it (see watch_drain).
    virtual void on_socket_drained(Socket &s) = 0;
    // Connection reset, write failure or failed connect; errno-style code.
    virtual void on_socket_error(Socket &s, int err) = 0;
    // The transport is ready: a connect() finished, and with TLS the handshake too (client
    // and server side alike).
    virtual void on_socket_connected(Socket &) {}
    // No byte arrived within the read timeout, or the output made no progress within the
    // write timeout (which also bounds a connect).
    virtual void on_socket_timeout(Socket &s, bool reading) = 0;

protected:
    ~SocketHandler() = default;
};

// Recycled: a new connection's socket costs no malloc and its close no free.
class Socket : public Recycled<Socket> {
public:
    // Takes ownership of an accepted, non-blocking fd.
    Socket(event_base *base, int fd, SocketHandler *handler);
    ~Socket();
    Socket(const Socket &) = delete;
    Socket &operator=(const Socket &) = delete;

    // Starts a non-blocking connect; the result arrives as on_socket_connected/_error.
    // Returns nullptr with *err set when the socket cannot even be created.
    static Socket *connect(event_base *base, const SocketAddress &addr, SocketHandler *handler,
                           int *err);

    void set_handler(SocketHandler *handler) { handler_ = handler; }
    SocketHandler *handler() const { return handler_; }

    // TLS over this socket from now on; takes ownership of `ssl` (already configured: SNI,
    // verification, app data). A server socket handshakes at once; a client one as soon as
    // its TCP connect completes. The handshake is bounded by the read timeout (server) or
    // the write timeout (client, as the connect is).
    void start_tls(ssl_st *ssl, bool server);
    ssl_st *ssl() const { return ssl_; }
    bool handshaking() const { return handshaking_; }
    // Why the last TLS operation failed (OpenSSL's reasons), for logs.
    const std::string &tls_error() const { return tls_error_; }
    // The first byte the peer sent, without consuming it: -1 none yet, -2 closed or failed.
    // For the accept stage's TLS-or-plain sniffing; use with set_peek_mode.
    int peek_first_byte();
    // While on, readable input only calls on_socket_read; nothing is consumed.
    void set_peek_mode(bool on) { peek_mode_ = on; }
    // The buffers come from a per-worker pool when first used and go back to it, empty,
    // with the socket: a new connection costs no evbuffer_new.
    evbuffer *input() {
        if (!input_) input_ = take_buffer();
        if (unread_.owner == this) spill(unread_, input_.get());
        return input_.get();
    }
    // Reading in place (HTTP/1 codecs): a small read that finds input() empty leaves its bytes
    // in the process's read buffer instead of copying them into input(), and the handler may
    // take them with take_unread() and parse them where they lie (an evbuffer_add, peek and
    // drain less per read: about 350 instructions). Whatever it does not consume it must put
    // in input() before returning. Bytes not taken are never lost: input() moves them there
    // first, as does the next read of any socket before it reuses the buffer.
    void set_read_in_place(bool on) { read_in_place_ = on; }
    std::string_view take_unread() {
        if (unread_.owner != this) return {};
        unread_.owner = nullptr;
        return {unread_.bytes, unread_.len};
    }
    // Input waiting: in input() or not yet taken from the read buffer.
    bool has_input() const {
        return unread_.owner == this || (input_ && evbuffer_get_length(input_.get()) != 0);
    }
    evbuffer *output() {
        if (!output_) output_ = take_buffer();
        if (unsent_.owner == this) spill(unsent_, output_.get());
        return output_.get();
    }
    // Writing directly (HTTP/1 codecs): a head written while nothing is queued goes into the
    // process's write buffer, bytes appended after it too, and flush() sends them with one
    // write(2) instead of an evbuffer chain reserved, committed, written with writev and
    // drained (about 500 instructions a message), or with TLS one SSL_write from contiguous
    // bytes. output() first moves such bytes into the output evbuffer, so whatever is written
    // there stays in order; so does a head or write on another socket, before it reuses the
    // buffer.
    //
    // Writes `size` bytes with `fill(char *p)`, which returns the end of what it wrote.
    template <typename Fill>
    void write_head(size_t size, Fill fill) {
        if (char *p = reserve_unsent(size)) {
            unsent_.len = static_cast<size_t>(fill(p) - unsent_.bytes);
            return;
        }
        evbuffer_iovec v;
        if (evbuffer_reserve_space(output(), static_cast<ev_ssize_t>(size), &v, 1) < 1) return;
        v.iov_len = static_cast<size_t>(fill(static_cast<char *>(v.iov_base)) -
                                        static_cast<char *>(v.iov_base));
        evbuffer_commit_space(output_.get(), &v, 1);
    }
    // Moves all of `data` to the end of the output.
    void append(evbuffer *data);
    // Copies n bytes to the end of the output.
    void write(const void *data, size_t n);

    int fd() const { return fd_.get(); }
    // The peer's address came in a PROXY protocol header (set by the accept stage).
    void set_proxied() { proxied_ = true; }
    bool proxied() const { return proxied_; }
    // The local end of the connection (getsockname); empty when it cannot be read.
    SocketAddress local_address() const;
    // Bytes written raw to the peer as soon as the TCP connect completes, before TLS and
    // before any output: the PROXY protocol header sent to targets.
    void set_preamble(std::string bytes) {
        preamble_ = std::make_unique<std::string>(std::move(bytes));
    }
    bool eof() const { return eof_; }
    bool connected() const { return !connecting_; }

    // Writes what the output holds; arms the write event only for what did not fit. Never
    // calls the handler: a write error or a drain notice arrives later from the loop.
    void flush();
    size_t pending_output() const {
        return (output_ ? evbuffer_get_length(output_.get()) : 0) +
               (unsent_.owner == this ? unsent_.len : 0);
    }
    // Ask for on_socket_drained once the output has shrunk to `low` bytes.
    void watch_drain(size_t low);

    // Timeouts in milliseconds, 0 for none. The read timeout restarts with every read; the
    // write timeout with every write that made progress, and covers a pending connect.
    void set_read_timeout(int64_t ms);
    void set_write_timeout(int64_t ms);

    void pause_read();
    void resume_read();
    bool read_paused() const { return read_paused_; }
    // Half-close: no more output. Used for lingering close after an early error response.
    void shutdown_write();
    // Closing will reset the connection (RST) instead of a graceful FIN.
    void reset_on_close();
    // The owner is letting go (the socket waits for deferred deletion): no event, pending
    // or future, reaches any handler again. A connect completing, a timeout or a queued
    // drain notice would otherwise call an owner that has already moved on.
    void detach();
    // Another I/O layer takes the descriptor (core/tunnel/splice_tunnel: plain TCP moved by
    // splice(2)): the socket detaches and keeps nothing. Only for a plain (no TLS) socket
    // whose input and output are empty; the Socket is then an empty shell to free.
    UniqueFd release_fd();
    // A plain socket between exchanges, that release_fd() may take: reading (not paused, no
    // EOF), nothing buffered in or out, no write or drain notice under way.
    bool quiet() const {
        return !ssl_ && !read_paused_ && !eof_ && !failed_ && !write_armed_ && !watching_drain_ &&
               !has_input() && pending_output() == 0;
    }

private:
    static void on_read_cb(evutil_socket_t, short, void *ctx);
    static void on_write_cb(evutil_socket_t, short, void *ctx);
    void do_read();
    void do_read_tls();
    void do_write(bool from_event);
    int write_tls();
    void do_handshake();
    bool in_handshake() const { return handshaking_ && (tls_server_ || tcp_up_); }
    void fail_tls(const char *what);
    void notify_later();
    void do_finish_connect();
    void add_read_event();
    static void on_read_timer(void *ctx);
    void add_write_event();
    event *write_event();
    static EvbufferPtr take_buffer();
    void give_buffers();
    struct SharedBuffer;
    static void spill(SharedBuffer &b, evbuffer *to);
    char *reserve_unsent(size_t size);
    int write_unsent();

    // A buffer the worker's sockets share (one per process: workers are single-threaded):
    // `len` bytes of `owner`'s, not yet taken or moved to its own evbuffer.
    static constexpr size_t kMinReadSize = 16 * 1024;
    struct SharedBuffer {
        char bytes[kMinReadSize];
        size_t len = 0;
        Socket *owner = nullptr;
    };
    static SharedBuffer unread_;  // a small read, for the handler to parse in place
    static SharedBuffer unsent_;  // heads and what follows them, written directly

    UniqueFd fd_;
    SocketHandler *handler_;
    EvbufferPtr input_;
    EvbufferPtr output_;
    InlineEvent read_ev_;
    // The read timeout in a worker: a place in its timer queue for that length, moved to the
    // tail by each read (an unlink and an append), instead of a libevent timeout, which a
    // persistent event re-adds to the timer heap on every read (about 250 instructions per
    // proxied request, from the upstream's read_timeout). Made when first needed: client
    // sockets have a read timeout only while a request body comes.
    std::unique_ptr<QueuedTimer> read_timer_;
    // Made when first needed: a connect, a write the kernel pushed back, a queued notice.
    // A client socket whose answers fit the send buffer never has one.
    EventPtr write_ev_;
    size_t read_size_ = 16 * 1024;  // grows while reads fill it (bulk transfers)
    size_t drain_low_ = 0;
    int64_t read_timeout_ms_ = 0;
    int64_t write_timeout_ms_ = 0;
    bool watching_drain_ = false;
    bool write_armed_ = false;
    // The events may hold a libevent timeout (add_event_with_timeout): one switched off
    // needs the event assigned afresh.
    bool read_ev_timed_ = false;
    bool write_ev_timed_ = false;
    bool read_paused_ = false;
    bool eof_ = false;
    bool connecting_ = false;
    bool failed_ = false;
    int write_error_ = 0;
    ssl_st *ssl_ = nullptr;  // owned
    std::string tls_error_;
    bool handshaking_ = false;
    bool tls_server_ = false;
    bool tcp_up_ = false;            // a TLS client socket's TCP connect completed
    bool read_wants_write_ = false;  // SSL_read needs the socket writable (rare, TLS 1.2)
    bool peek_mode_ = false;
    bool proxied_ = false;
    bool read_in_place_ = false;
    // The input had space reserved in it (bulk or TLS reads): it may keep an empty chain
    // of up to 256 KiB, so it is freed rather than pooled.
    bool input_reserved_ = false;
    std::unique_ptr<std::string> preamble_;  // rare (proxy_protocol upstreams): kept small
};

}  // namespace torii
