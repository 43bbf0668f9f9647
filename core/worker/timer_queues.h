// Connection timers without a libevent timer each. A client connection's deadlines are "now
// plus one of a few lengths" (its server's client_header_timeout, keepalive_timeout,
// send_timeout, the lingering close): timers of one length expire in the order they were
// set, so each length keeps a FIFO list, sorted by construction, and one libevent timer for
// its head. Arming is an unlink and an append. With a libevent timer per connection, its
// event_add at accept and its removal at close cost about 420 instructions of a new
// connection, and its struct event 128 bytes of an idle one (issue #16).
//
// A queue's libevent timer is lazy: it stays pending when its head goes away, fires early
// and is added again for the new head, so a keep-alive exchange, which moves its timer to
// the tail, costs no timer-heap work. One worker loop, one thread.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/base/libevent_ptr.h"

namespace torii {

class TimerQueues;

// One owner's timer: fn(arg) runs once the deadline passed, unless disarmed or re-armed.
class QueuedTimer {
public:
    QueuedTimer(TimerQueues &queues, void (*fn)(void *), void *arg)
        : queues_(queues), fn_(fn), arg_(arg) {}
    ~QueuedTimer() { disarm(); }
    QueuedTimer(const QueuedTimer &) = delete;
    QueuedTimer &operator=(const QueuedTimer &) = delete;

    // Fires ms milliseconds from now (Worker::now_ms), replacing any earlier arming.
    void arm(int64_t ms);
    // As arm(), for lengths that may come from a peer (a gRPC call's deadline left): arms
    // only into an existing queue or a new one while fewer than kMaxQueues exist, and
    // returns false otherwise (the caller then keeps its own libevent timer). Without the
    // bound every distinct length would add a queue that is never freed, each arming
    // scanning them all.
    bool try_arm(int64_t ms);
    void disarm();
    bool armed() const { return queue_ != nullptr; }

private:
    friend class TimerQueues;
    struct Queue;

    Queue *queue_of(int64_t ms, bool bounded);
    void arm_in(Queue *q, int64_t ms);

    TimerQueues &queues_;
    void (*fn_)(void *);
    void *arg_;
    Queue *queue_ = nullptr;  // armed in it
    Queue *last_ = nullptr;   // the queue of the last arming
    QueuedTimer *prev_ = nullptr;
    QueuedTimer *next_ = nullptr;
    uint64_t deadline_ms_ = 0;
};

class TimerQueues {
public:
    explicit TimerQueues(event_base *base) : base_(base) {}
    ~TimerQueues();
    TimerQueues(const TimerQueues &) = delete;
    TimerQueues &operator=(const TimerQueues &) = delete;

private:
    friend class QueuedTimer;
    using Queue = QueuedTimer::Queue;

    static constexpr size_t kMaxQueues = 32;
    Queue *queue_for(int64_t ms, bool bounded = false);

    event_base *base_;
    std::vector<std::unique_ptr<Queue>> queues_;  // a handful: one per timeout length
};

struct QueuedTimer::Queue {
    Queue(TimerQueues *owner, event_base *base, int64_t length)
        : queues(owner), ms(length), ev(base, -1, 0, on_fire, this) {}
    static void on_fire(evutil_socket_t, short, void *ctx);
    void append(QueuedTimer *t);
    void unlink(QueuedTimer *t);
    void schedule();  // the libevent timer fires no later than the head's deadline

    TimerQueues *queues;
    int64_t ms;
    QueuedTimer *head = nullptr;
    QueuedTimer *tail = nullptr;
    size_t size = 0;
    InlineEvent ev;
    uint64_t fires_ms = 0;  // when the pending libevent timer fires
    bool pending = false;
};

}  // namespace torii
