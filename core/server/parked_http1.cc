#include "core/server/parked_http1.h"

#include <cstring>
#include <memory>

#include "core/net/socket.h"
#include "core/server/http1_connection.h"
#include "core/worker/worker.h"

namespace torii {

ParkedHttp1::ParkedHttp1(Worker &worker, const ServerGroup &group, UniqueFd fd,
                         const SocketAddress &peer, uint32_t requests, bool proxied, int64_t ms)
    : group_(group),
      read_ev_(worker.base(), fd.get(), EV_READ, on_read_cb, this),
      timer_(worker.timer_queues(), on_timer, this),
      peer_{},
      fd_(std::move(fd)),
      requests_(requests),
      proxied_(proxied) {
    std::memcpy(&peer_, &peer.storage, peer.length);
    // The socket's read event was deleted in this same callback: libevent's changelist
    // folds that deletion and this addition into one EPOLL_CTL_MOD.
    event_add(read_ev_.get(), nullptr);
    timer_.arm(ms);
    worker.stats().connections_parked++;
}

ParkedHttp1::~ParkedHttp1() {
    Worker::current().stats().connections_parked--;
}

void ParkedHttp1::on_read_cb(evutil_socket_t, short, void *ctx) {
    static_cast<ParkedHttp1 *>(ctx)->do_wake();
}

// A request (or the client's FIN) arrived: the connection is made whole again and takes
// this record's place. Its socket reads on the next loop turn (epoll is level-triggered).
void ParkedHttp1::do_wake() {
    Worker &worker = Worker::current();
    event_del(read_ev_.get());
    timer_.disarm();
    SocketAddress peer;
    peer.length = peer_.sin6_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(&peer.storage, &peer_, peer.length);
    auto sock = std::make_unique<Socket>(worker.base(), fd_.release(), nullptr);
    if (proxied_) sock->set_proxied();
    auto *c = new Http1Connection(worker, std::move(sock), peer, group_);
    worker.replace_connection(this, c);
    c->resume_after_park(requests_);
    worker.defer_delete(std::unique_ptr<Deletable>(this));
}

void ParkedHttp1::on_timer(void *ctx) {
    static_cast<ParkedHttp1 *>(ctx)->do_close();  // keepalive_timeout, or a drain's grace
}

void ParkedHttp1::shutdown_gracefully() {
    // As an idle Http1Connection: a request already on its way still gets its answer (with
    // Connection: close, the worker is stopping), then the connection closes with a FIN.
    timer_.arm(Http1Connection::kDrainIdleGraceMs);
}

void ParkedHttp1::close_now() {
    do_close();
}

void ParkedHttp1::do_close() {
    if (fd_.get() < 0) return;
    event_del(read_ev_.get());
    timer_.disarm();
    fd_.reset();  // a FIN: nothing is queued, and a byte from the client would have woken us
    Worker::current().retire_connection(this);
}

}  // namespace torii
