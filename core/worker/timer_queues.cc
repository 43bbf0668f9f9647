#include "core/worker/timer_queues.h"

#include "core/worker/worker.h"

namespace torii {

// The queue for `ms`: a connection mostly alternates between two lengths, so the last
// queue is tried first. Null when `bounded` and a new one would pass kMaxQueues.
QueuedTimer::Queue *QueuedTimer::queue_of(int64_t ms, bool bounded) {
    return last_ && last_->ms == ms ? last_ : queues_.queue_for(ms, bounded);
}

void QueuedTimer::arm_in(Queue *q, int64_t ms) {
    if (queue_) queue_->unlink(this);
    last_ = q;
    deadline_ms_ = Worker::now_ms() + static_cast<uint64_t>(ms);
    q->append(this);
}

void QueuedTimer::arm(int64_t ms) {
    if (ms < 0) ms = 0;
    arm_in(queue_of(ms, false), ms);
}

bool QueuedTimer::try_arm(int64_t ms) {
    if (ms < 0) ms = 0;
    Queue *q = queue_of(ms, true);
    if (!q) {
        disarm();
        return false;
    }
    arm_in(q, ms);
    return true;
}

void QueuedTimer::disarm() {
    if (queue_) queue_->unlink(this);
}

TimerQueues::~TimerQueues() {
    // Owners outlive nothing here: any timer still armed is cut loose.
    for (auto &q : queues_)
        while (q->head)
            q->unlink(q->head);
}

TimerQueues::Queue *TimerQueues::queue_for(int64_t ms, bool bounded) {
    for (auto &q : queues_)
        if (q->ms == ms) return q.get();
    if (bounded && queues_.size() >= kMaxQueues) return nullptr;
    queues_.push_back(std::make_unique<Queue>(this, base_, ms));
    return queues_.back().get();
}

void QueuedTimer::Queue::append(QueuedTimer *t) {
    t->queue_ = this;
    t->next_ = nullptr;
    t->prev_ = tail;
    if (tail)
        tail->next_ = t;
    else
        head = t;
    tail = t;
    ++size;
    if (head == t) schedule();
}

void QueuedTimer::Queue::unlink(QueuedTimer *t) {
    if (t->prev_)
        t->prev_->next_ = t->next_;
    else
        head = t->next_;
    if (t->next_)
        t->next_->prev_ = t->prev_;
    else
        tail = t->prev_;
    t->prev_ = t->next_ = nullptr;
    t->queue_ = nullptr;
    --size;
}

void QueuedTimer::Queue::schedule() {
    if (!head || (pending && fires_ms <= head->deadline_ms_)) return;
    uint64_t now = Worker::now_ms();
    uint64_t wait = head->deadline_ms_ > now ? head->deadline_ms_ - now : 0;
    timeval tv = to_timeval(static_cast<int64_t>(wait));
    evtimer_add(ev.get(), &tv);
    pending = true;
    fires_ms = now + wait;
}

void QueuedTimer::Queue::on_fire(evutil_socket_t, short, void *ctx) {
    auto *q = static_cast<Queue *>(ctx);
    q->pending = false;
    uint64_t now = Worker::now_ms();
    // At most as many as were queued: a callback that re-arms for 0 ms lands at the tail
    // and waits for the next round instead of looping here.
    for (size_t budget = q->size; budget > 0; --budget) {
        QueuedTimer *t = q->head;
        if (!t || t->deadline_ms_ > now) break;
        q->unlink(t);
        t->fn_(t->arg_);  // may arm, disarm or destroy any timer, this one included
    }
    q->schedule();
}

}  // namespace torii
