// A two-way tunnel between two plain TCP sockets whose bytes never enter user space: each
// direction is splice(2)d from one socket into a pipe and from the pipe into the other
// socket. What a TCP server's session becomes once both sides are plain TCP (TLS on either
// side needs the bytes in user space: core/tunnel/tunnel.h does that with evbuffers).
// docs/performance.md has the measurements that made splice the default for plain TCP.
//
//   each direction: source ─splice─► pipe ─splice─► sink; reading the source stops while
//   the pipe is full (the sink is slower) and resumes once the sink took the pipe's bytes
//   (backpressure: at most one pipe of bytes in flight per direction)
//   a FIN from the source is passed on (shutdown of the sink's write side) once the pipe is
//   empty; the other direction keeps flowing; the tunnel ends when both have ended, on an
//   error, or after tunnel_idle_timeout without a byte either way
//
// A graceful stop does not cut a tunnel: it ends by itself or at shutdown_timeout (the
// process exits and the kernel sends the FINs).
#pragma once

#include <event2/event.h>

#include "core/base/libevent_ptr.h"
#include "core/config/config.h"
#include "core/proxy/in_flight.h"
#include "core/tunnel/idle_timer.h"
#include "core/server/client_connection.h"

namespace torii {

class Worker;
struct Request;

// A pipe's two ends, non-blocking; made before the sockets are handed over so that a
// failure (out of descriptors) can still fall back to the copying tunnel.
struct SplicePipe {
    UniqueFd read_end;
    UniqueFd write_end;
    size_t capacity = 0;  // bytes the pipe holds (F_GETPIPE_SZ)
    // false with errno set when the kernel has no pipe to give.
    bool open();
};

class SpliceTunnel final : public ClientConnection {
public:
    // Takes both connected, non-blocking sockets (nothing buffered in user space), the two
    // pipes (client→upstream first), the request that is logged when the tunnel ends, and
    // the target's in-flight count.
    SpliceTunnel(Worker &worker, UniqueFd client, UniqueFd upstream, SplicePipe up_pipe,
                 SplicePipe down_pipe, Request *req, InFlight in_flight, Millis idle_timeout);
    ~SpliceTunnel() override;
    // Splice tunnels alive in this worker (each holds two pipes: net/fd_limit.h).
    static long live() { return live_; }

    void start();
    void shutdown_gracefully() override {}

private:
    struct End {  // one socket and its events
        UniqueFd fd;
        EventPtr read_ev;
        EventPtr write_ev;
        bool reading = false;
        bool write_armed = false;
    };
    struct Flow {  // one direction: from → pipe → to
        SpliceTunnel *tunnel = nullptr;
        End *from = nullptr;
        End *to = nullptr;
        SplicePipe pipe;
        size_t in_pipe = 0;  // bytes spliced in and not yet out
        uint64_t bytes = 0;  // read from `from`
        bool eof = false;    // `from` sent its FIN
        bool ended = false;  // ... and it was passed on to `to`
    };

    static inline long live_ = 0;
    static void on_read_cb(evutil_socket_t, short, void *ctx);
    static void on_write_cb(evutil_socket_t, short, void *ctx);
    static void on_idle(void *ctx);  // IdleTimer's
    void do_pull(Flow &f);
    void do_push(Flow &f);
    void do_set_reading(End &e, bool on);
    void do_set_writing(End &e, bool on);
    void do_close(const char *why);

    Worker &worker_;
    End client_;
    End upstream_;
    Flow up_;    // client → upstream
    Flow down_;  // upstream → client
    Request *req_;
    InFlight in_flight_;
    IdleTimer idle_;
    char remote_text_[64];  // the request's $remote_addr: the connection that held it is gone
    bool closed_ = false;
};

}  // namespace torii
