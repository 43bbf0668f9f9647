#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "modules/discovery/discovery_report.h"
#include "modules/discovery/file_discovery.h"
#include "t/unit/modules/discovery/discovery_test_support.h"
#include "t/unit/support/temp_dir.h"

using namespace torii;
using namespace torii::testing;
using torii::test::TempDir;

namespace {

std::string parsed(std::string_view text) {
    Result<std::vector<DiscoveredTarget>> r = parse_targets_file(text);
    return r ? describe(*r) : "error: " + r.error();
}

// Replaces the file whole, as the header asks writers to: temporary file, then rename.
void replace_file(const std::string &path, const std::string &text) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
    }
    REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
}

UpstreamConfig file_upstream(const std::string &path, Millis interval) {
    UpstreamConfig up;
    up.name = "api";
    up.discovery.type = "file";
    up.discovery.path = path;
    up.discovery.interval = interval;
    return up;
}

}  // namespace

TEST_CASE("file discovery: the targets file format") {
    CHECK(parsed("") == "");
    CHECK(parsed("\n\n# nothing\n   \n") == "");
    CHECK(parsed("127.0.0.2:80\n127.0.0.3:80 2\n") == "127.0.0.2:80*1 127.0.0.3:80*2");
    CHECK(parsed("  127.0.0.2:80\t 7  # a comment\r\n#127.0.0.9:1\r\n") == "127.0.0.2:80*7");
    CHECK(parsed("[::1]:8080 3\nlocalhost:9000") == "[::1]:8080*3 127.0.0.1:9000*1");
    CHECK(parsed("10.0.0.1:65535 1000000") == "10.0.0.1:65535*1000000");
    // File order is kept here; the report sorts and merges.
    CHECK(parsed("127.0.0.3:80\n127.0.0.2:80\n127.0.0.3:80") ==
          "127.0.0.3:80*1 127.0.0.2:80*1 127.0.0.3:80*1");

    CHECK(parsed("127.0.0.2:80\n\nbackend.internal:80\n") ==
          "error: line 3: \"backend.internal\": expected an IP address or localhost");
    CHECK(parsed("127.0.0.2\n") == "error: line 1: \"127.0.0.2\": expected host:port");
    CHECK(parsed("127.0.0.2:0\n") == "error: line 1: \"127.0.0.2:0\": port must be 1..65535");
    CHECK(parsed("127.0.0.2:65536\n") ==
          "error: line 1: \"127.0.0.2:65536\": port must be 1..65535");
    CHECK(parsed("127.0.0.2:+80\n") == "error: line 1: \"127.0.0.2:+80\": port must be 1..65535");
    CHECK(parsed("127.0.0.2:80 0\n") == "error: line 1: weight \"0\" is not 1..1000000");
    CHECK(parsed("127.0.0.2:80 1000001\n") ==
          "error: line 1: weight \"1000001\" is not 1..1000000");
    CHECK(parsed("127.0.0.2:80 2x\n") == "error: line 1: weight \"2x\" is not 1..1000000");
    CHECK(parsed("127.0.0.2:80 2 3\n") == "error: line 1: unexpected \"3\"");
    CHECK(parsed("::1:80\n") == "error: line 1: \"::1\": expected an IP address or localhost");
    CHECK(parsed("[::1]80\n") == "error: line 1: \"[::1]80\": expected [IPv6]:port");
    CHECK(parsed("[fe80::1%eth0]:80\n") == "error: line 1: \"fe80::1%eth0\": not an IPv6 address");
    CHECK(parsed("[127.0.0.1]:80\n") == "error: line 1: \"127.0.0.1\": not an IPv6 address");
    CHECK(parsed("0.0.0.0:80\n") == "error: line 1: \"0.0.0.0:80\": not an address to connect to");
    CHECK(parsed("[::]:80\n") == "error: line 1: \"[::]:80\": not an address to connect to");
    CHECK(parsed("*:80\n") == "error: line 1: \"*\": expected an IP address or localhost");
    CHECK(parsed("1.2.3:80\n") == "error: line 1: \"1.2.3\": expected an IP address or localhost");
    const char nul[] = "127.0.0.2:80\n127.0.0.3\0:80\n";
    CHECK(parsed(std::string_view(nul, sizeof nul - 1)) == "error: line 2: control character");
}

TEST_CASE("file discovery: follows a real file, keeps the last good list through errors") {
    TempDir dir;
    std::string path = dir.path + "/api.targets";
    replace_file(path, "127.0.0.2:8001\n127.0.0.3:8001 2\n");

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    UpstreamConfig up = file_upstream(path, 30);
    std::unique_ptr<DiscoverySource> source = make_file_discovery(base.get(), up, sink);
    REQUIRE(source);
    CHECK_FALSE(make_dns_discovery(base.get(), up, sink));  // not its type

    source->start();
    CHECK(sink.events.empty());  // from the loop, never from inside start()
    auto heard = [&](size_t n) { return [&sink, n] { return sink.events.size() >= n; }; };
    REQUIRE(run_until(base.get(), heard(1), 2000));
    CHECK(sink.events[0] == "list: 127.0.0.2:8001*1 127.0.0.3:8001*2");

    // Unchanged: stat() every 30 ms, nothing to say. (The racy-file re-read finds the same.)
    run_for(base.get(), 200);
    CHECK(sink.events.size() == 1);

    // A line added.
    replace_file(path, "127.0.0.2:8001\n127.0.0.3:8001 2\n127.0.0.4:8001\n");
    REQUIRE(run_until(base.get(), heard(2), 2000));
    CHECK(sink.events[1] == "list: 127.0.0.2:8001*1 127.0.0.3:8001*2 127.0.0.4:8001*1");

    // A broken version: an error naming the line, the list stays (no new list).
    replace_file(path, "127.0.0.2:8001\nbogus\n");
    REQUIRE(run_until(base.get(), heard(3), 2000));
    CHECK(sink.events[2] == "error: file " + path + ": line 2: \"bogus\": expected host:port");
    run_for(base.get(), 200);
    CHECK(sink.events.size() == 3);  // the same broken file is not read (or reported) again

    // Fixed, with the very list it had: reported again, so the sink knows it recovered.
    replace_file(path, "127.0.0.4:8001\n127.0.0.2:8001\n127.0.0.3:8001 2\n");
    REQUIRE(run_until(base.get(), heard(4), 2000));
    CHECK(sink.events[3] == "list: 127.0.0.2:8001*1 127.0.0.3:8001*2 127.0.0.4:8001*1");

    // A line removed.
    replace_file(path, "127.0.0.3:8001 2\n127.0.0.4:8001\n");
    REQUIRE(run_until(base.get(), heard(5), 2000));
    CHECK(sink.events[4] == "list: 127.0.0.3:8001*2 127.0.0.4:8001*1");

    // Gone: one error, not one per check.
    REQUIRE(::unlink(path.c_str()) == 0);
    REQUIRE(run_until(base.get(), heard(6), 2000));
    CHECK(sink.events[5] == "error: file " + path + ": No such file or directory");
    run_for(base.get(), 200);
    CHECK(sink.events.size() == 6);

    // Back, empty: every target goes.
    replace_file(path, "# drained\n");
    REQUIRE(run_until(base.get(), heard(7), 2000));
    CHECK(sink.events[6] == "list: ");

    // Too big, then a directory.
    replace_file(path, std::string(kMaxTargetsFile + 1, '\n'));
    REQUIRE(run_until(base.get(), heard(8), 2000));
    CHECK(sink.events[7] == "error: file " + path + ": larger than 1048576 bytes");
    REQUIRE(::unlink(path.c_str()) == 0);
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    REQUIRE(run_until(base.get(), heard(9), 2000));
    CHECK(sink.events[8] == "error: file " + path + ": not a regular file");
}

TEST_CASE("file discovery: a rewrite that keeps the size and the time is still seen") {
    // Two writes within one clock tick leave the same mtime; the same size too when only a
    // digit changes. The source re-reads a file that fresh on the next check.
    TempDir dir;
    std::string path = dir.path + "/api.targets";
    replace_file(path, "127.0.0.2:8001\n");
    struct stat before;
    REQUIRE(::stat(path.c_str(), &before) == 0);

    EventBasePtr base(event_base_new());
    RecordingSink sink;
    UpstreamConfig up = file_upstream(path, 30);
    std::unique_ptr<DiscoverySource> source = make_file_discovery(base.get(), up, sink);
    source->start();
    REQUIRE(run_until(
        base.get(), [&] { return sink.events.size() == 1; }, 2000));
    CHECK(sink.events[0] == "list: 127.0.0.2:8001*1");

    {
        std::ofstream out(path, std::ios::binary | std::ios::in | std::ios::out);
        out << "127.0.0.3:8001\n";  // same inode, same size
    }
    timespec times[2] = {before.st_atim, before.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);  // and the same mtime
    REQUIRE(run_until(
        base.get(), [&] { return sink.events.size() == 2; }, 2000));
    CHECK(sink.events[1] == "list: 127.0.0.3:8001*1");
}

TEST_CASE("discovery report: news only, sorted and merged") {
    auto t = [](const char *address, int weight) {
        return DiscoveredTarget{*SocketAddress::parse(address), weight};
    };
    std::vector<DiscoveredTarget> list = {t("[::1]:80", 1), t("127.0.0.3:80", 1),
                                          t("127.0.0.2:81", 2), t("127.0.0.2:80", 1),
                                          t("127.0.0.3:80", 999'999)};
    normalize_targets(list);
    CHECK(describe(list) == "127.0.0.2:80*1 127.0.0.2:81*2 127.0.0.3:80*1000000 [::1]:80*1");

    RecordingSink sink;
    DiscoveryReport report(sink);
    report.targets({});
    CHECK(sink.events == std::vector<std::string>{"list: "});  // the first list, even empty
    report.targets({});
    report.targets({t("127.0.0.3:80", 1), t("127.0.0.2:80", 1)});
    report.targets({t("127.0.0.2:80", 1), t("127.0.0.3:80", 1)});  // same, other order
    CHECK(sink.events.size() == 2);
    report.targets({t("127.0.0.2:80", 1), t("127.0.0.3:80", 2)});  // a weight changed
    report.error("dns: timeout");
    report.error("dns: timeout");
    report.error("dns: NXDOMAIN");
    report.targets({t("127.0.0.2:80", 1), t("127.0.0.3:80", 2)});  // recovered, same list
    report.targets({t("127.0.0.2:80", 1), t("127.0.0.3:80", 2)});
    report.error("dns: timeout");
    CHECK(sink.events == std::vector<std::string>{
                             "list: ",
                             "list: 127.0.0.2:80*1 127.0.0.3:80*1",
                             "list: 127.0.0.2:80*1 127.0.0.3:80*2",
                             "error: dns: timeout",
                             "error: dns: NXDOMAIN",
                             "list: 127.0.0.2:80*1 127.0.0.3:80*2",
                             "error: dns: timeout",
                         });
}
