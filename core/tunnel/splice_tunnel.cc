#include "core/tunnel/splice_tunnel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/base/log.h"
#include "core/exchange/exchange.h"
#include "core/http/request.h"
#include "core/worker/worker.h"

namespace torii {

// Bytes one direction keeps in flight at most. The default pipe (16 pages, 64 KiB) makes
// a bulk transfer pay one splice pair per 64 KiB; a larger pipe halves the syscalls and
// stays well under the per-user pipe budget (fs.pipe-user-pages-soft, 64 MiB) for a few
// hundred busy sessions. When the budget is spent the kernel keeps the default size.
static constexpr int kPipeSize = 256 * 1024;

bool SplicePipe::open() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    read_end = UniqueFd(fds[0]);
    write_end = UniqueFd(fds[1]);
    ::fcntl(write_end.get(), F_SETPIPE_SZ, kPipeSize);  // best effort
    int size = ::fcntl(write_end.get(), F_GETPIPE_SZ);
    capacity = size > 0 ? static_cast<size_t>(size) : 65536;
    return true;
}

SpliceTunnel::SpliceTunnel(Worker &worker, UniqueFd client, UniqueFd upstream, SplicePipe up_pipe,
                           SplicePipe down_pipe, Request *req, InFlight in_flight,
                           Millis idle_timeout)
    : worker_(worker),
      req_(req),
      in_flight_(std::move(in_flight)),
      idle_(worker.base(), idle_timeout, on_idle, this) {
    ++live_;
    client_.fd = std::move(client);
    upstream_.fd = std::move(upstream);
    up_ = Flow{this, &client_, &upstream_, std::move(up_pipe)};
    down_ = Flow{this, &upstream_, &client_, std::move(down_pipe)};
    // A read event carries the flow whose source it is; a write event the flow it drains.
    event_base *base = worker.base();
    client_.read_ev.reset(
        event_new(base, client_.fd.get(), EV_READ | EV_PERSIST, on_read_cb, &up_));
    upstream_.read_ev.reset(
        event_new(base, upstream_.fd.get(), EV_READ | EV_PERSIST, on_read_cb, &down_));
    upstream_.write_ev.reset(
        event_new(base, upstream_.fd.get(), EV_WRITE | EV_PERSIST, on_write_cb, &up_));
    client_.write_ev.reset(
        event_new(base, client_.fd.get(), EV_WRITE | EV_PERSIST, on_write_cb, &down_));
    size_t n = std::min(req_->remote_addr.size(), sizeof remote_text_);
    std::memcpy(remote_text_, req_->remote_addr.data(), n);
    req_->remote_addr = {remote_text_, n};
}

SpliceTunnel::~SpliceTunnel() {
    --live_;
    // Events go before their descriptors close.
    for (End *e : {&client_, &upstream_}) {
        e->read_ev.reset();
        e->write_ev.reset();
    }
    // Still open when the worker goes away (shutdown_timeout cut it): the session is logged
    // with what it moved, and its request goes back to the worker, which frees it.
    if (req_) {
        req_->bytes_sent = down_.bytes;
        req_->body_received = up_.bytes;
        exchange_finish(*req_);
        exchange_release(worker_, req_);
    }
}

void SpliceTunnel::start() {
    do_set_reading(client_, true);
    do_set_reading(upstream_, true);
    idle_.touch();
}

void SpliceTunnel::do_set_reading(End &e, bool on) {
    if (e.reading == on) return;
    e.reading = on;
    if (on)
        event_add(e.read_ev.get(), nullptr);
    else
        event_del(e.read_ev.get());
}

void SpliceTunnel::do_set_writing(End &e, bool on) {
    if (e.write_armed == on) return;
    e.write_armed = on;
    if (on)
        event_add(e.write_ev.get(), nullptr);
    else
        event_del(e.write_ev.get());
}

void SpliceTunnel::on_read_cb(evutil_socket_t, short, void *ctx) {
    auto *f = static_cast<Flow *>(ctx);
    f->tunnel->do_pull(*f);
}

void SpliceTunnel::on_write_cb(evutil_socket_t, short, void *ctx) {
    auto *f = static_cast<Flow *>(ctx);
    f->tunnel->do_push(*f);
}

// One splice from the source into the pipe per readiness event (level-triggered: the loop
// calls again while bytes wait), then one toward the sink: a second call in a row would
// mostly return EAGAIN.
void SpliceTunnel::do_pull(Flow &f) {
    if (closed_) return;
    size_t room = f.pipe.capacity - f.in_pipe;
    if (room == 0) {  // the sink is behind: wait for it (do_push resumes reading)
        do_set_reading(*f.from, false);
        return;
    }
    ssize_t n = ::splice(f.from->fd.get(), nullptr, f.pipe.write_end.get(), nullptr, room,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        std::string why = std::string(f.from == &client_ ? "client" : "upstream") +
                          " connection error: " + strerror(errno);
        do_close(why.c_str());
        return;
    }
    if (n == 0) {
        f.eof = true;
        do_set_reading(*f.from, false);
    } else {
        f.in_pipe += static_cast<size_t>(n);
        f.bytes += static_cast<uint64_t>(n);
        idle_.touch();
    }
    do_push(f);
}

void SpliceTunnel::do_push(Flow &f) {
    if (closed_) return;
    if (f.in_pipe > 0) {
        ssize_t n = ::splice(f.pipe.read_end.get(), nullptr, f.to->fd.get(), nullptr, f.in_pipe,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            std::string why = std::string(f.to == &client_ ? "client" : "upstream") +
                              " connection error: " + strerror(errno);
            do_close(why.c_str());
            return;
        }
        if (n > 0) f.in_pipe -= static_cast<size_t>(n);
    }
    if (f.in_pipe > 0) {
        do_set_writing(*f.to, true);  // the sink is full: its write event continues
        if (f.in_pipe == f.pipe.capacity) do_set_reading(*f.from, false);
        return;
    }
    do_set_writing(*f.to, false);
    if (!f.eof) {
        do_set_reading(*f.from, true);
        return;
    }
    if (!f.ended) {  // everything before the FIN is out: pass the FIN on
        f.ended = true;
        ::shutdown(f.to->fd.get(), SHUT_WR);
    }
    if (up_.ended && down_.ended) do_close(nullptr);
}

void SpliceTunnel::on_idle(void *ctx) {
    static_cast<SpliceTunnel *>(ctx)->do_close("idle for tunnel_idle_timeout");
}

void SpliceTunnel::do_close(const char *why) {
    if (closed_) return;
    closed_ = true;
    if (why) log_info("tunnel to %s closed: %s", std::string(req_->upstream_addr).c_str(), why);
    idle_.stop();
    for (End *e : {&client_, &upstream_}) {
        do_set_reading(*e, false);
        do_set_writing(*e, false);
    }
    in_flight_.release();
    // One log line for the whole tunnel: its duration and the bytes each way.
    req_->bytes_sent = down_.bytes;
    req_->body_received = up_.bytes;
    exchange_finish(*req_);
    exchange_release(worker_, req_);
    req_ = nullptr;
    worker_.retire_connection(this);
}

}  // namespace torii
