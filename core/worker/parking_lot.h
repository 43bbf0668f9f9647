// Idle connections parked outside libevent (issue #16): a libevent event is a 128-byte
// struct event per descriptor, and a QueuedTimer 64 bytes, where a parked connection only
// needs "tell me when this fd has input, or when its time is up". The lot keeps one
// epoll instance of its own, watched by one libevent event, in which each parked fd is
// registered with epoll_data.ptr = its Spot, and one FIFO list per (timeout length, kind),
// sorted by construction as the worker's timer queues are, under one libevent timer. A
// Spot is 32 bytes inside its owner's record (an owner's members fill its tail padding).
//
// A parked fd is removed from the lot's epoll (EPOLL_CTL_DEL) when it wakes, expires or is
// unparked, always before its owner closes it: close() only drops an epoll registration
// once no descriptor refers to the file any more (a copy inherited by a child process
// would keep it, and its ptr, alive). One worker loop, one thread.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/base/libevent_ptr.h"

namespace torii {

class ParkingLot {
public:
    // Lives in the parked record; the lot never owns, frees or closes it.
    struct Spot {
        Spot() = default;
        Spot(const Spot &) = delete;
        Spot &operator=(const Spot &) = delete;
        bool parked() const { return list != kNone; }

    private:
        friend class ParkingLot;
        static constexpr uint8_t kNone = 0xff;
        Spot *prev = nullptr;
        Spot *next = nullptr;
        uint64_t deadline_ms = 0;
        int fd = -1;           // watched, not owned
        uint8_t list = kNone;  // index into ParkingLot::lists_
    };
    // What parked spots of one kind do. Both are called with the spot already unparked
    // (out of the lot's epoll and lists): wake when its fd is readable (input, the peer's
    // FIN, an error), expire when its deadline passed. Either may free any spot's owner, but
    // only after the callback returns (Worker::defer_delete, as every connection is): one
    // epoll_wait's batch may still hold a pointer to it.
    struct Kind {
        void (*wake)(Spot *);
        void (*expire)(Spot *);
    };

    // Opens the epoll instance now, so that a worker's descriptors do not change with the
    // first connection it parks (worker_connections and tests count them).
    explicit ParkingLot(event_base *base) : base_(base) { open(); }
    ~ParkingLot();
    ParkingLot(const ParkingLot &) = delete;
    ParkingLot &operator=(const ParkingLot &) = delete;

    // Watches `fd` for input and expires the spot `ms` from now. False (nothing changed)
    // when the spot cannot be parked: no epoll instance (out of descriptors), epoll_ctl
    // failed, or a new length would pass kMaxLists. The caller then keeps the fd its way.
    bool park(Spot *s, int fd, int64_t ms, const Kind &kind);
    // A parked spot's deadline becomes `ms` from now (a graceful stop's grace). False (left
    // as it was) when a new length would pass kMaxLists.
    bool rearm(Spot *s, int64_t ms);
    // Out of the lot's epoll and lists, before its owner closes the fd or takes it back.
    void unpark(Spot *s);
    size_t size() const { return size_; }

private:
    struct List {
        int64_t ms;
        const Kind *kind;
        Spot *head = nullptr;
        Spot *tail = nullptr;
        size_t size = 0;
    };
    static constexpr size_t kMaxLists = 32;

    static void on_ready_cb(evutil_socket_t, short, void *ctx);
    static void on_timer_cb(evutil_socket_t, short, void *ctx);
    bool open();
    int list_for(int64_t ms, const Kind &kind);
    void append(Spot *s, int list, int64_t ms);
    void unlink(Spot *s);
    void schedule(uint64_t deadline_ms);

    event_base *base_;
    UniqueFd epfd_;                        // made again by park() if it failed at first
    std::vector<List> lists_;              // a handful: one per (length, kind)
    std::optional<InlineEvent> ready_ev_;  // epfd_ readable, made with it
    std::optional<InlineEvent> timer_ev_;
    size_t size_ = 0;
    uint64_t fires_ms_ = 0;  // when the pending timer fires
    bool pending_ = false;
};

}  // namespace torii
