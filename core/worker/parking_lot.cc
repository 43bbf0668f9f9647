#include "core/worker/parking_lot.h"

#include <sys/epoll.h>

#include <limits>

#include "core/worker/worker.h"

namespace torii {

ParkingLot::~ParkingLot() {
    // Owners outlive nothing here: any spot still parked is cut loose (closing epfd_ drops
    // the registrations).
    for (auto &l : lists_)
        while (l.head)
            unlink(l.head);
}

// The epoll instance and its two events: false while out of descriptors.
bool ParkingLot::open() {
    if (epfd_.get() >= 0) return true;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return false;
    epfd_.reset(fd);
    ready_ev_.emplace(base_, fd, EV_READ | EV_PERSIST, on_ready_cb, this);
    timer_ev_.emplace(base_, -1, 0, on_timer_cb, this);
    event_add(ready_ev_->get(), nullptr);
    return true;
}

// The list for `ms` of `kind`, made if there is room: -1 past kMaxLists.
int ParkingLot::list_for(int64_t ms, const Kind &kind) {
    for (size_t i = 0; i < lists_.size(); ++i)
        if (lists_[i].ms == ms && lists_[i].kind == &kind) return static_cast<int>(i);
    if (lists_.size() >= kMaxLists) return -1;
    lists_.push_back(List{ms, &kind});
    return static_cast<int>(lists_.size() - 1);
}

bool ParkingLot::park(Spot *s, int fd, int64_t ms, const Kind &kind) {
    if (s->parked()) return false;
    if (ms < 0) ms = 0;
    int list = list_for(ms, kind);
    if (list < 0 || !open()) return false;
    epoll_event ev{};
    // EPOLLIN also reports the peer's FIN and errors; EPOLLRDHUP makes a half-close
    // explicit. Level-triggered: a spot whose wake is skipped stays ready.
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = s;
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return false;
    s->fd = fd;
    append(s, list, ms);
    return true;
}

bool ParkingLot::rearm(Spot *s, int64_t ms) {
    if (!s->parked()) return false;
    if (ms < 0) ms = 0;
    int list = list_for(ms, *lists_[s->list].kind);
    if (list < 0) return false;
    unlink(s);
    append(s, list, ms);
    return true;
}

void ParkingLot::unpark(Spot *s) {
    if (!s->parked()) return;
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, s->fd, nullptr);
    unlink(s);
}

void ParkingLot::append(Spot *s, int list, int64_t ms) {
    List &l = lists_[static_cast<size_t>(list)];
    s->list = static_cast<uint8_t>(list);
    s->deadline_ms = Worker::now_ms() + static_cast<uint64_t>(ms);
    s->next = nullptr;
    s->prev = l.tail;
    if (l.tail)
        l.tail->next = s;
    else
        l.head = s;
    l.tail = s;
    ++l.size;
    ++size_;
    if (l.head == s) schedule(s->deadline_ms);
}

void ParkingLot::unlink(Spot *s) {
    List &l = lists_[s->list];
    if (s->prev)
        s->prev->next = s->next;
    else
        l.head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l.tail = s->prev;
    s->prev = s->next = nullptr;
    s->list = Spot::kNone;
    --l.size;
    --size_;
}

// Lazy, as TimerQueues: a pending timer that fires before `deadline_ms` is left alone (it
// fires early and schedules the next head then).
void ParkingLot::schedule(uint64_t deadline_ms) {
    if (pending_ && fires_ms_ <= deadline_ms) return;
    uint64_t now = Worker::now_ms();
    uint64_t wait = deadline_ms > now ? deadline_ms - now : 0;
    timeval tv = to_timeval(static_cast<int64_t>(wait));
    evtimer_add(timer_ev_->get(), &tv);
    pending_ = true;
    fires_ms_ = now + wait;
}

void ParkingLot::on_ready_cb(evutil_socket_t, short, void *ctx) {
    auto *lot = static_cast<ParkingLot *>(ctx);
    // At most a batch per loop turn: more ready spots keep the epoll fd readable.
    epoll_event evs[64];
    int n = epoll_wait(lot->epfd_.get(), evs, 64, 0);
    for (int i = 0; i < n; ++i) {
        auto *s = static_cast<Spot *>(evs[i].data.ptr);
        if (!s->parked()) continue;  // unparked by a callback before it in this batch
        const Kind *kind = lot->lists_[s->list].kind;
        lot->unpark(s);
        kind->wake(s);
    }
}

void ParkingLot::on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *lot = static_cast<ParkingLot *>(ctx);
    lot->pending_ = false;
    uint64_t now = Worker::now_ms();
    // By index: a callback may park a spot of a new length (lists_ grows). At most as many
    // as were in a list: one re-armed for 0 ms waits for the next round.
    for (size_t i = 0; i < lot->lists_.size(); ++i) {
        for (size_t budget = lot->lists_[i].size; budget > 0; --budget) {
            Spot *s = lot->lists_[i].head;
            if (!s || s->deadline_ms > now) break;
            const Kind *kind = lot->lists_[i].kind;
            lot->unpark(s);
            kind->expire(s);
        }
    }
    uint64_t next = std::numeric_limits<uint64_t>::max();
    for (const List &l : lot->lists_)
        if (l.head && l.head->deadline_ms < next) next = l.head->deadline_ms;
    if (next != std::numeric_limits<uint64_t>::max()) lot->schedule(next);
}

}  // namespace torii
