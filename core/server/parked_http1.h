// An idle HTTP/1.1 keep-alive connection reduced to what waiting needs (issue #16): its fd,
// a spot in the worker's parking lot (its fd in the lot's epoll instance and its deadline
// in the lot's lists, core/worker/parking_lot.h), its place in the worker's connection
// registry (so a graceful stop, a reload and close_now still reach it, and
// worker_connections still counts it), its listener's server group and its request count:
// 72 bytes (an 80-byte malloc chunk) where the Http1Connection, its Socket and their two
// evbuffers were about 1.5 KiB: those go back to the worker's pools (nginx frees its idle
// connection's buffers the same way). The client's address is read again with
// getpeername() on waking; one that came in a PROXY protocol header cannot be, and is kept
// (ParkedHttp1Proxied: 104 bytes).
//
// Http1Connection parks itself once it has been idle for Http1Connection::kParkAfterMs
// (kParkFirstAfterMs before its first request), so that a client sending its next request
// at once pays nothing for this. The first byte (or the client's FIN) wakes it: the record
// makes a new Socket and Http1Connection for the fd, which take its place in the registry,
// and goes away. Plain TCP only: a TLS connection's SSL object would have to stay, so TLS
// connections are not parked.
#pragma once

#include <netinet/in.h>

#include <cstdint>

#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/base/socket_address.h"
#include "core/server/client_connection.h"
#include "core/worker/parking_lot.h"

namespace torii {

class Socket;
class Worker;
struct ServerGroup;

class ParkedHttp1 : public ClientConnection,
                    private ParkingLot::Spot,
                    public Recycled<ParkedHttp1> {
public:
    // Parks `sock`'s fd (a plain TCP client connection with nothing buffered either way):
    // waits for its next byte and closes it `ms` from now (the rest of keepalive_timeout,
    // or of client_header_timeout before a first request). On success the socket has let
    // go of its fd and the caller puts the returned record in the worker's registry; null
    // (the socket untouched) when it cannot park.
    static ParkedHttp1 *park(Worker &worker, const ServerGroup &group, Socket &sock,
                             const SocketAddress &peer, uint32_t requests, int64_t ms);
    ~ParkedHttp1() override;

    // Closes after the short grace an idle connection gets when its worker drains.
    void shutdown_gracefully() override;
    void close_now() override;

protected:
    ParkedHttp1(const ServerGroup &group, uint32_t requests);
    // The address a PROXY protocol header gave, or null: the socket's own peer is the client.
    virtual const sockaddr_in6 *proxied_peer() const { return nullptr; }

private:
    static const ParkingLot::Kind kKind;
    static void on_wake(ParkingLot::Spot *s);
    static void on_expire(ParkingLot::Spot *s);
    void do_wake();
    void do_close();

    UniqueFd fd_;
    uint32_t requests_;  // served on this connection so far (keepalive_requests)
    // No Worker reference: the process's one worker (Worker::current()) owns every record.
    const ServerGroup &group_;
};

// A parked connection whose client address came in a PROXY protocol header.
class ParkedHttp1Proxied final : public ParkedHttp1 {
public:
    ParkedHttp1Proxied(const ServerGroup &group, uint32_t requests, const SocketAddress &peer);

private:
    const sockaddr_in6 *proxied_peer() const override { return &peer_; }
    sockaddr_in6 peer_;  // an IPv4 peer's sockaddr_in at its start
};

}  // namespace torii
