// An idle HTTP/1.1 keep-alive connection reduced to what waiting needs (issue #16): its fd
// and read event, its keepalive deadline in the worker's timer queues, its place in the
// worker's connection registry (so a graceful stop, a reload and close_now still reach it,
// and worker_connections still counts it), its listener's server group, the client's
// address (28 bytes, not a sockaddr_storage) and its request count: 264 bytes where
// the Http1Connection, its Socket and their two evbuffers were about 1.5 KiB: those go back
// to the worker's pools (nginx frees its idle connection's buffers the same way).
//
// Http1Connection parks itself once it has been idle for Http1Connection::kParkAfterMs
// (kParkFirstAfterMs before its first request), so that a client sending its next request
// at once pays nothing for this. The first byte (or
// the client's FIN) wakes it: the record makes a new Socket and Http1Connection for the fd,
// which take its place in the registry, and goes away. Plain TCP only: a TLS connection's
// SSL object would have to stay, so TLS connections are not parked.
#pragma once

#include <netinet/in.h>

#include <cstdint>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/base/socket_address.h"
#include "core/server/client_connection.h"
#include "core/worker/timer_queues.h"

namespace torii {

class Worker;
struct ServerGroup;

class ParkedHttp1 final : public ClientConnection, public Recycled<ParkedHttp1> {
public:
    // Whether `peer` fits the compact address (IPv4 and IPv6 do).
    static bool fits(const SocketAddress &peer) {
        return peer.length > 0 && peer.length <= sizeof(sockaddr_in6) &&
               (peer.family() == AF_INET || peer.family() == AF_INET6);
    }
    // Takes `fd` (a plain TCP client connection with nothing buffered either way), waits for
    // its next byte and closes it `ms` from now (the rest of keepalive_timeout, or of
    // client_header_timeout before a first request). The caller puts the record in the
    // worker's registry.
    ParkedHttp1(Worker &worker, const ServerGroup &group, UniqueFd fd, const SocketAddress &peer,
                uint32_t requests, bool proxied, int64_t ms);
    ~ParkedHttp1() override;

    // Closes after the short grace an idle connection gets when its worker drains.
    void shutdown_gracefully() override;
    void close_now() override;

private:
    static void on_read_cb(evutil_socket_t, short, void *ctx);
    static void on_timer(void *ctx);
    void do_wake();
    void do_close();

    // No Worker reference: the process's one worker (Worker::current()) owns every record,
    // and 8 bytes less puts the record in glibc's 272-byte chunks rather than 288.
    const ServerGroup &group_;
    InlineEvent read_ev_;
    QueuedTimer timer_;
    sockaddr_in6 peer_;  // an IPv4 peer's sockaddr_in at its start
    UniqueFd fd_;
    uint32_t requests_;  // served on this connection so far (keepalive_requests)
    bool proxied_;       // the address came in a PROXY protocol header
};

}  // namespace torii
