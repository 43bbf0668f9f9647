#include "core/worker/timer_queues.h"

#include <doctest/doctest.h>

#include <string>

#include "core/worker/worker.h"

namespace torii {

namespace {
struct Fired {
    std::string order;
};
struct Owner {
    Fired *fired;
    char name;
    QueuedTimer *rearm = nullptr;  // armed again for 0 ms from its own callback, once
    static void cb(void *arg) {
        auto *o = static_cast<Owner *>(arg);
        o->fired->order += o->name;
        if (o->rearm) {
            QueuedTimer *t = o->rearm;
            o->rearm = nullptr;
            t->arm(0);
        }
    }
};
}  // namespace

TEST_CASE("timer queues: deadlines of several lengths fire in order; disarm, re-arm") {
    EventBasePtr base(event_base_new());
    TimerQueues queues(base.get());
    Fired fired;
    Owner a{&fired, 'a'}, b{&fired, 'b'}, c{&fired, 'c'}, d{&fired, 'd'}, e{&fired, 'e'};
    QueuedTimer ta(queues, Owner::cb, &a), tb(queues, Owner::cb, &b), tc(queues, Owner::cb, &c),
        td(queues, Owner::cb, &d), te(queues, Owner::cb, &e);
    ta.arm(60);
    tb.arm(10);
    tc.arm(10);
    td.arm(10);
    te.arm(20);
    tc.disarm();  // never fires
    td.arm(90);   // moved to another length: fires last
    tb.disarm();
    tb.arm(10);     // back at the tail of its queue
    e.rearm = &te;  // fires again at once, on the next round, not in a loop
    CHECK(ta.armed());
    CHECK_FALSE(tc.armed());
    event_base_dispatch(base.get());  // returns once no timer is left
    CHECK(fired.order == "beead");
    CHECK_FALSE(ta.armed());
    CHECK_FALSE(td.armed());
}

TEST_CASE("timer queues: a callback may destroy other timers of its queue") {
    EventBasePtr base(event_base_new());
    TimerQueues queues(base.get());
    Fired fired;
    auto *victim_owner = new Owner{&fired, 'v'};
    auto *victim = new QueuedTimer(queues, Owner::cb, victim_owner);
    struct Killer {
        Fired *fired;
        QueuedTimer **victim;
        static void cb(void *arg) {
            auto *k = static_cast<Killer *>(arg);
            k->fired->order += 'k';
            delete *k->victim;  // unlinks itself
            *k->victim = nullptr;
        }
    } killer{&fired, &victim};
    QueuedTimer tk(queues, Killer::cb, &killer);
    tk.arm(5);
    victim->arm(5);  // same deadline, behind the killer
    event_base_dispatch(base.get());
    CHECK(fired.order == "k");
    CHECK(victim == nullptr);
    delete victim_owner;
}

TEST_CASE("timer queues: try_arm takes at most kMaxQueues lengths, arm any") {
    EventBasePtr base(event_base_new());
    TimerQueues queues(base.get());
    Fired fired;
    Owner o{&fired, 'o'};
    QueuedTimer t(queues, Owner::cb, &o);
    // Lengths a peer chose (gRPC deadlines): the first 32 get queues, the next does not
    // and leaves the timer disarmed for its owner's own timer.
    for (int64_t ms = 1000; ms < 1032; ++ms)
        CHECK(t.try_arm(ms));
    CHECK(t.armed());
    CHECK_FALSE(t.try_arm(5000));
    CHECK_FALSE(t.armed());
    CHECK(t.try_arm(1010));  // a length that has its queue still arms
    CHECK(t.armed());
    t.arm(7000);  // a configured length always gets one
    CHECK(t.armed());
    t.disarm();
}

}  // namespace torii
