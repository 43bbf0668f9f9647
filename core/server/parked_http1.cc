#include "core/server/parked_http1.h"

#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "core/net/socket.h"
#include "core/server/http1_connection.h"
#include "core/worker/worker.h"

namespace torii {

// Every byte counts here (issue #16): 72 bytes is glibc's 80-byte chunk, 73 its 96-byte one.
// The spot's fields end at 53 and the members after it fill its tail padding.
static_assert(sizeof(ParkedHttp1) <= 72);

const ParkingLot::Kind ParkedHttp1::kKind = {ParkedHttp1::on_wake, ParkedHttp1::on_expire};

namespace {
bool inet(const SocketAddress &a) {
    return a.family() == AF_INET || a.family() == AF_INET6;
}
}  // namespace

ParkedHttp1 *ParkedHttp1::park(Worker &worker, const ServerGroup &group, Socket &sock,
                               const SocketAddress &peer, uint32_t requests, int64_t ms) {
    if (!inet(peer)) return nullptr;
    ParkedHttp1 *p;
    if (sock.proxied()) {
        if (peer.length > sizeof(sockaddr_in6)) return nullptr;
        p = new ParkedHttp1Proxied(group, requests, peer);
    } else {
        p = new ParkedHttp1(group, requests);
    }
    // The socket's read event is deleted below (libevent applies that at its next
    // epoll_wait): for a moment the fd is in both epoll instances, which Linux allows.
    if (!worker.parking_lot().park(p, sock.fd(), ms, kKind)) {
        delete p;
        return nullptr;
    }
    p->fd_ = sock.release_fd();
    return p;
}

ParkedHttp1::ParkedHttp1(const ServerGroup &group, uint32_t requests)
    : requests_(requests), group_(group) {
    Worker::current().stats().connections_parked++;
}

ParkedHttp1Proxied::ParkedHttp1Proxied(const ServerGroup &group, uint32_t requests,
                                       const SocketAddress &peer)
    : ParkedHttp1(group, requests), peer_{} {
    std::memcpy(&peer_, &peer.storage, peer.length);
}

ParkedHttp1::~ParkedHttp1() {
    Worker &worker = Worker::current();
    worker.parking_lot().unpark(this);  // still parked when the worker goes: before the close
    worker.stats().connections_parked--;
}

void ParkedHttp1::on_wake(ParkingLot::Spot *s) {
    static_cast<ParkedHttp1 *>(s)->do_wake();
}

void ParkedHttp1::on_expire(ParkingLot::Spot *s) {
    static_cast<ParkedHttp1 *>(s)->do_close();  // keepalive_timeout, or a drain's grace
}

// A request (or the client's FIN) arrived: the connection is made whole again and takes
// this record's place (the lot has already let go of the fd). Its socket reads on the
// next loop turn (epoll is level-triggered).
void ParkedHttp1::do_wake() {
    Worker &worker = Worker::current();
    SocketAddress peer;
    if (const sockaddr_in6 *p = proxied_peer()) {
        peer.length = p->sin6_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        std::memcpy(&peer.storage, p, peer.length);
    } else {
        peer.length = sizeof(peer.storage);
        // Fails only once the client reset the connection: nothing to answer then.
        if (getpeername(fd_.get(), reinterpret_cast<sockaddr *>(&peer.storage), &peer.length) !=
            0) {
            do_close();
            return;
        }
    }
    auto sock = std::make_unique<Socket>(worker.base(), fd_.release(), nullptr);
    if (proxied_peer()) sock->set_proxied();
    auto *c = new Http1Connection(worker, std::move(sock), peer, group_);
    worker.replace_connection(this, c);
    c->resume_after_park(requests_);
    worker.defer_delete(std::unique_ptr<Deletable>(this));
}

void ParkedHttp1::shutdown_gracefully() {
    // As an idle Http1Connection: a request already on its way still gets its answer (with
    // Connection: close, the worker is stopping), then the connection closes with a FIN.
    if (!Worker::current().parking_lot().rearm(this, Http1Connection::kDrainIdleGraceMs))
        do_close();
}

void ParkedHttp1::close_now() {
    do_close();
}

void ParkedHttp1::do_close() {
    if (fd_.get() < 0) return;
    Worker &worker = Worker::current();
    worker.parking_lot().unpark(this);
    fd_.reset();  // a FIN: nothing is queued, and a byte from the client would have woken us
    worker.retire_connection(this);
}

}  // namespace torii
