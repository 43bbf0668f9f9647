#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/fleet/target_table.h"

using namespace torii;

namespace {

std::shared_ptr<const Config> load(const std::string &targets, const std::string &extra = "") {
    std::string text = "[upstream.api]\ntargets = [" + targets + "]\n" + extra +
                       "[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.location]]\n"
                       "path = \"/\"\nupstream = \"api\"\n";
    auto c = load_config_from_string(text, "t.toml");
    REQUIRE_MESSAGE(c.ok(), c.error());
    return c.value();
}

SocketAddress sa(const char *text) {
    return SocketAddress::parse(text).value();
}

struct Table {
    TargetTable *t = TargetTable::create();
    ~Table() { TargetTable::destroy(t); }
    TargetTable *operator->() { return t; }
};

std::vector<std::string> addresses(TargetTable &t, int up) {
    uint64_t v;
    std::vector<std::string> out;
    for (const auto &m : t.members(up, &v))
        out.push_back(m.address + "/" + std::to_string(m.weight) + "/" +
                      target_source_name(m.source) + (m.drain ? "/drain" : ""));
    return out;
}

}  // namespace

TEST_CASE("the config is laid down; a reload keeps ids and moves only what changed") {
    Table t;
    REQUIRE(t->apply_config(*load("\"127.0.0.1:9001\", \"127.0.0.1:9002\""), true).ok());
    int up = t->find_upstream("api");
    REQUIRE(up >= 0);
    CHECK(addresses(*t.t, up) ==
          std::vector<std::string>{"127.0.0.1:9001/1/config", "127.0.0.1:9002/1/config"});
    uint64_t v0;
    auto before = t->members(up, &v0);

    // The same config again: nothing moves, not even the version.
    REQUIRE(t->apply_config(*load("\"127.0.0.1:9001\", \"127.0.0.1:9002\""), false).ok());
    CHECK(t->version(up) == v0);

    // 9002 re-weighted, 9001 gone, 9003 new: 9002 keeps its slot and id.
    REQUIRE(t->apply_config(
                 *load("{ address = \"127.0.0.1:9002\", weight = 5 }, \"127.0.0.1:9003\""), false)
                .ok());
    CHECK(t->version(up) != v0);
    uint64_t v1;
    auto after = t->members(up, &v1);
    REQUIRE(after.size() == 2);
    CHECK(after[0].slot == before[1].slot);
    CHECK(after[0].id == before[1].id);
    CHECK(after[0].weight == 5);
    CHECK(after[1].address == "127.0.0.1:9003");
    // The new one ramps up (slow_start) from now; the initial ones do not.
    CHECK(t->slot(after[1].slot).up_since_ms.load() != 0);
    CHECK(t->slot(after[0].slot).up_since_ms.load() == 0);
    // 9001 is removed, not free: in-flight requests may still name its slot.
    CHECK(t->slot(before[0].slot).state == SlotState::removed);
}

TEST_CASE("admin changes overlay the config, survive a reload and round-trip the state file") {
    Table t;
    auto config = load("\"127.0.0.1:9001\", \"127.0.0.1:9002\"");
    REQUIRE(t->apply_config(*config, true).ok());
    int up = t->find_upstream("api");
    CHECK(t->admin_add(up, sa("127.0.0.1:9003"), 3, false) == TargetTable::Change::ok);
    CHECK(t->admin_add(up, sa("127.0.0.1:9003"), 3, false) == TargetTable::Change::exists);
    CHECK(t->admin_patch(up, sa("127.0.0.1:9002"), 7, true) == TargetTable::Change::ok);
    CHECK(t->admin_remove(up, sa("127.0.0.1:9001")) == TargetTable::Change::ok);
    CHECK(t->admin_remove(up, sa("127.0.0.1:9001")) == TargetTable::Change::not_found);
    CHECK(t->admin_patch(up, sa("127.0.0.1:9009"), 1, std::nullopt) ==
          TargetTable::Change::not_found);
    CHECK(t->admin_changes() == 3);
    std::vector<std::string> expected = {"127.0.0.1:9002/7/config/drain", "127.0.0.1:9003/3/admin"};
    CHECK(addresses(*t.t, up) == expected);

    // A reload of the same file neither revives 9001 nor resets 9002.
    REQUIRE(t->apply_config(*config, false).ok());
    CHECK(addresses(*t.t, up) == expected);

    // A restart: a fresh table, the config, then the saved state.
    std::string state = t->admin_state_json();
    Table fresh;
    REQUIRE(fresh->apply_config(*config, true).ok());
    REQUIRE(fresh->apply_admin_state(state).ok());
    CHECK(addresses(*fresh.t, fresh->find_upstream("api")) == expected);

    // Adding a deleted config target back revives it.
    CHECK(t->admin_add(up, sa("127.0.0.1:9001"), 2, false) == TargetTable::Change::ok);
    CHECK(addresses(*t.t, up).size() == 3);

    CHECK_FALSE(fresh->apply_admin_state("{ broken").ok());
}

TEST_CASE("a discovery source's list replaces only its own targets") {
    Table t;
    REQUIRE(t->apply_config(*load("\"127.0.0.1:9001\""), true).ok());
    int up = t->find_upstream("api");
    bool full = false;
    auto [a1, r1] = t->replace_source(up, TargetSource::dns,
                                      {{sa("127.0.0.2:80"), 1}, {sa("127.0.0.3:80"), 2}}, &full);
    CHECK(a1 == 2);
    CHECK(r1 == 0);
    // 127.0.0.1:9001 is the config's: listed by DNS too, it stays the config's.
    auto [a2, r2] = t->replace_source(up, TargetSource::dns,
                                      {{sa("127.0.0.3:80"), 2}, {sa("127.0.0.1:9001"), 1}}, &full);
    CHECK(a2 == 0);
    CHECK(r2 == 1);
    CHECK(addresses(*t.t, up) ==
          std::vector<std::string>{"127.0.0.1:9001/1/config", "127.0.0.3:80/2/dns"});
    CHECK(t->admin_remove(up, sa("127.0.0.3:80")) == TargetTable::Change::discovered);
    CHECK_FALSE(full);
}

TEST_CASE("active checks: thresholds against flapping, transitions reported once") {
    Table t;
    REQUIRE(t->apply_config(*load("\"127.0.0.1:9001\""), true).ok());
    uint64_t v;
    auto m = t->members(t->find_upstream("api"), &v).at(0);
    CHECK(t->record_check(m.slot, m.id, false, "HTTP 500", 2, 3) == 0);
    CHECK(t->record_check(m.slot, m.id, false, "HTTP 500", 2, 3) == 0);
    CHECK(t->record_check(m.slot, m.id, true, "HTTP 200", 2, 3) == 0);  // streak broken
    CHECK(t->record_check(m.slot, m.id, false, "timeout", 2, 3) == 0);
    CHECK(t->record_check(m.slot, m.id, false, "timeout", 2, 3) == 0);
    CHECK(t->record_check(m.slot, m.id, false, "timeout", 2, 3) == -1);
    CHECK(t->slot(m.slot).active_down.load() == 1);
    CHECK(t->record_check(m.slot, m.id, false, "timeout", 2, 3) == 0);  // already down
    CHECK(t->record_check(m.slot, m.id, true, "HTTP 200", 2, 3) == 0);
    CHECK(t->record_check(m.slot, m.id, true, "HTTP 200", 2, 3) == 1);
    CHECK(t->slot(m.slot).active_down.load() == 0);
    CHECK(std::string(t->slot(m.slot).check_message) == "HTTP 200");
    // A result for a slot that now holds another target is dropped.
    CHECK(t->record_check(m.slot, m.id + 1, false, "x", 1, 1) == 0);
}

TEST_CASE("passive failures are counted by every process together") {
    Table t;
    REQUIRE(t->apply_config(*load("\"127.0.0.1:9001\", \"127.0.0.1:9002\""), true).ok());
    uint64_t v;
    auto m = t->members(t->find_upstream("api"), &v).at(0);
    SharedTarget &s = t->slot(m.slot);
    // Two processes each report two failures; max_fails = 4 is reached once, by one of them.
    int marks = 0;
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int n = TargetTable::note_failure(s, 4, 10'000, 1000) +
                TargetTable::note_failure(s, 4, 10'000, 1001);
        _exit(n);
    }
    int status = 0;
    waitpid(child, &status, 0);
    marks += WEXITSTATUS(status);
    marks += TargetTable::note_failure(s, 4, 10'000, 1002);
    marks += TargetTable::note_failure(s, 4, 10'000, 1003);
    CHECK(marks == 1);
    CHECK(s.down_until_ms.load() == 1003 + 10'000);
    CHECK(s.last_failure_unix_ms.load() > 0);
    // A new window after fail_timeout starts from zero.
    CHECK_FALSE(TargetTable::note_failure(s, 2, 10'000, 50'000));
    TargetTable::note_success(s);
    CHECK(s.fails.load() == 0);
}
