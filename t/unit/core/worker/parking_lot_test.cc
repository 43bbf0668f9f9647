#include "core/worker/parking_lot.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "core/worker/worker.h"

namespace torii {

namespace {

// A parked record: a spot and the socketpair end it watches (the other end plays the
// client). Callbacks write what happened into `log`.
struct Record : ParkingLot::Spot {
    std::string *log = nullptr;
    char name = '?';
    int end = -1;  // the parked end
    int peer = -1;
    Record *victim = nullptr;  // unparked by this record's wake (a close in the same batch)
    ParkingLot *lot = nullptr;

    Record(std::string *l, char n, ParkingLot *p) : log(l), name(n), lot(p) {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        end = sv[0];
        peer = sv[1];
    }
    ~Record() {
        lot->unpark(this);
        close(end);
        close(peer);
    }
    static void wake(ParkingLot::Spot *s) {
        auto *r = static_cast<Record *>(s);
        *r->log += 'w';
        *r->log += r->name;
        if (r->victim) r->lot->unpark(r->victim);
    }
    static void expire(ParkingLot::Spot *s) {
        auto *r = static_cast<Record *>(s);
        *r->log += 'x';
        *r->log += r->name;
    }
};

const ParkingLot::Kind kRecord = {Record::wake, Record::expire};

// Runs the loop until `log` has `n` characters, for at most `turns` x 10 ms (the lot's
// epoll event is persistent: event_base_dispatch would not return).
void run_until(event_base *base, const std::string &log, size_t n, int turns = 200) {
    for (int i = 0; i < turns && log.size() < n; ++i) {
        timeval tv = to_timeval(10);
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

}  // namespace

TEST_CASE("parking lot: input wakes its spot only, deadlines expire in order, rearm moves") {
    EventBasePtr base(event_base_new());
    ParkingLot lot(base.get());
    std::string log;
    Record a(&log, 'a', &lot), b(&log, 'b', &lot), c(&log, 'c', &lot), d(&log, 'd', &lot);
    REQUIRE(lot.park(&a, a.end, 10000, kRecord));
    REQUIRE(lot.park(&b, b.end, 60, kRecord));
    REQUIRE(lot.park(&c, c.end, 10000, kRecord));
    REQUIRE(lot.park(&d, d.end, 30, kRecord));
    CHECK(lot.size() == 4);
    CHECK(lot.rearm(&c, 90));  // another length: expires after b
    REQUIRE(write(a.peer, "x", 1) == 1);
    run_until(base.get(), log, 8);
    CHECK(log == "waxdxbxc");
    CHECK(lot.size() == 0);
    CHECK_FALSE(a.parked());
    CHECK_FALSE(c.parked());
}

TEST_CASE("parking lot: the peer's FIN wakes; a spot unparked in its batch is not woken") {
    EventBasePtr base(event_base_new());
    ParkingLot lot(base.get());
    std::string log;
    Record a(&log, 'a', &lot), b(&log, 'b', &lot);
    REQUIRE(lot.park(&a, a.end, 10000, kRecord));
    REQUIRE(lot.park(&b, b.end, 10000, kRecord));
    a.victim = &b;
    b.victim = &a;
    shutdown(a.peer, SHUT_WR);  // both ready in one epoll_wait: the first woken unparks
    shutdown(b.peer, SHUT_WR);  // the other, which is then skipped
    run_until(base.get(), log, 2);
    run_until(base.get(), log, 3, 3);  // more loop turns: nothing more arrives
    CHECK(log.size() == 2);
    CHECK(log[0] == 'w');
    CHECK(lot.size() == 0);
}

TEST_CASE("parking lot: unpark leaves the epoll instance even while a copy of the fd lives") {
    EventBasePtr base(event_base_new());
    ParkingLot lot(base.get());
    std::string log;
    Record a(&log, 'a', &lot);
    REQUIRE(lot.park(&a, a.end, 10000, kRecord));
    int copy = dup(a.end);  // as a child process's inherited descriptor would
    REQUIRE(copy >= 0);
    lot.unpark(&a);
    // close alone would not end the registration, the file living on through `copy`; the
    // same file under the same number again: EEXIST if unpark had left it registered.
    close(a.end);
    REQUIRE(dup2(copy, a.end) == a.end);
    close(copy);
    CHECK(lot.park(&a, a.end, 10000, kRecord));
    REQUIRE(write(a.peer, "x", 1) == 1);
    run_until(base.get(), log, 2);
    CHECK(log == "wa");
    CHECK(lot.size() == 0);
}

TEST_CASE("parking lot: at most kMaxLists lengths; a failed park changes nothing") {
    EventBasePtr base(event_base_new());
    ParkingLot lot(base.get());
    std::string log;
    Record a(&log, 'a', &lot);
    for (int64_t ms = 1000; ms < 1032; ++ms) {
        REQUIRE(lot.park(&a, a.end, ms, kRecord));
        lot.unpark(&a);
    }
    CHECK_FALSE(lot.park(&a, a.end, 5000, kRecord));
    CHECK_FALSE(a.parked());
    REQUIRE(lot.park(&a, a.end, 1010, kRecord));  // a length that has its list
    CHECK_FALSE(lot.rearm(&a, 5000));
    CHECK(a.parked());
    Record b(&log, 'b', &lot);
    CHECK_FALSE(lot.park(&b, -1, 1010, kRecord));     // epoll_ctl refuses
    CHECK_FALSE(lot.park(&a, a.end, 1010, kRecord));  // already parked
    CHECK_FALSE(b.parked());
    CHECK(lot.size() == 1);
}

}  // namespace torii
