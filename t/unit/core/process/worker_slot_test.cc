#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "core/process/master_status.h"
#include "core/process/worker_slot.h"

using namespace torii;

TEST_CASE("a worker slot keeps the last request line, bounded and printable") {
    WorkerSlot slot{};
    CHECK(slot.request_line().empty());
    slot.set_request("GET", "/api/users?id=7");
    CHECK(slot.request_line() == "GET /api/users?id=7");
    slot.set_request("POST", "/x");  // the next request replaces it
    CHECK(slot.request_line() == "POST /x");

    std::string target = "/" + std::string(400, 'a');
    slot.set_request("GET", target);
    std::string line = slot.request_line();
    CHECK(line.size() == WorkerSlot::kLineMax + 3);
    CHECK(line.substr(0, 6) == "GET /a");
    CHECK(line.substr(line.size() - 3) == "...");

    slot.set_request("GET", std::string_view("/a\"b\\c\x01", 7));
    CHECK(slot.request_line() == "GET /a?b?c?");
    slot.clear();
    CHECK(slot.request_line().empty());
}

TEST_CASE("the master reads a dead worker's slot") {
    MasterStatus *status = MasterStatus::create();
    REQUIRE(status);
    WorkerSlot *slot = status->worker_slot(7);
    REQUIRE(slot);
    CHECK(status->worker_slot(-1) == nullptr);
    CHECK(status->worker_slot(MasterStatus::kSlots) == nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        slot->set_request("DELETE", "/crash");
        kill(getpid(), SIGKILL);  // no handler runs (doctest catches SIGABRT)
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st));
    CHECK(slot->request_line() == "DELETE /crash");
    MasterStatus::destroy(status);
}
