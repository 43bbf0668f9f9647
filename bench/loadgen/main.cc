// torii_loadgen: an open-loop HTTP/1.1 load generator for the latency rows of make bench.
//
// wrk and h2load are closed-loop: each connection sends its next request only when the last
// answer came, so a server that stalls also stalls the client, fewer requests are sent, and
// the stall hides from the percentiles (coordinated omission). Here requests follow a fixed
// schedule at a constant rate and each one's latency runs from its due time (load_loop.h).
// wrk2 does this but is not in Debian.
//
// Prints one JSON line per target on stdout; exits 0 when the run took place (errors are in
// the JSON), 2 on bad arguments or when the first connections cannot be made.

#include <getopt.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/loadgen/load_loop.h"

using torii::loadgen::Options;
using torii::loadgen::Report;
using torii::loadgen::Target;

namespace {

constexpr const char *kUsage =
    "usage: torii_loadgen -r RATE -d SECONDS [options] HOST:PORT[,HOST:PORT...] PATH [PATH...]\n"
    "\n"
    "Sends GET PATH at RATE requests/s in all, on a fixed schedule (request i due at\n"
    "start + i/RATE), over keep-alive HTTP/1.1 connections, one request in flight on each;\n"
    "a request waiting for a free connection is timed from its due time. Several PATHs are\n"
    "asked for in turn. Several targets take slices of the schedule in turn (--slice), each\n"
    "over connections of its own. Prints one JSON line per target: target, due, sent,\n"
    "completed, non_2xx, errors, unfinished, connection_errors, reconnects, max_queue,\n"
    "achieved_rate, and latencies in microseconds (p50_us, p90_us, p99_us, p99_9_us, max_us,\n"
    "mean_us).\n"
    "\n"
    "  -r, --rate R          requests per second, all connections together (required)\n"
    "  -d, --duration S      measured seconds per target (required)\n"
    "  -c, --connections N   keep-alive connections per target (default 10)\n"
    "  -w, --warmup S        seconds of the same load first, per target, not measured\n"
    "                        (default 0)\n"
    "      --slice S         with several targets: seconds of schedule each takes in turn\n"
    "                        (default 0.1, at least 0.001; -d and -w whole multiples of it)\n"
    "  -H, --header 'N: V'   a header sent with every request (repeatable)\n"
    "      --drain S         seconds to await answers after the last due time (default 10);\n"
    "                        requests still unanswered then count as errors (unfinished)\n";

bool parse_double(const char *s, double *out) {
    char *end = nullptr;
    *out = std::strtod(s, &end);
    return end != s && *end == '\0' && *out >= 0;
}

bool parse_target(const std::string &s, Target *t) {
    const size_t colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    char *end = nullptr;
    const unsigned long port = std::strtoul(s.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535) return false;
    t->host = s.substr(0, colon);
    t->port = static_cast<uint16_t>(port);
    return true;
}

// HOST:PORT[,HOST:PORT...]
bool parse_targets(const std::string &s, Options *o) {
    for (size_t from = 0;;) {
        const size_t comma = s.find(',', from);
        Target t;
        if (!parse_target(s.substr(from, comma - from), &t)) return false;
        o->targets.push_back(t);
        if (comma == std::string::npos) return true;
        from = comma + 1;
    }
}

int usage_error(const char *what) {
    std::fprintf(stderr, "torii_loadgen: %s\n\n%s", what, kUsage);
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    static const option kLong[] = {{"rate", required_argument, nullptr, 'r'},
                                   {"duration", required_argument, nullptr, 'd'},
                                   {"connections", required_argument, nullptr, 'c'},
                                   {"warmup", required_argument, nullptr, 'w'},
                                   {"header", required_argument, nullptr, 'H'},
                                   {"drain", required_argument, nullptr, 'D'},
                                   {"slice", required_argument, nullptr, 'S'},
                                   {"help", no_argument, nullptr, 'h'},
                                   {nullptr, 0, nullptr, 0}};
    double connections = 10;
    for (int ch; (ch = getopt_long(argc, argv, "r:d:c:w:H:h", kLong, nullptr)) != -1;) {
        bool ok = true;
        switch (ch) {
            case 'r':
                ok = parse_double(optarg, &o.rate) && o.rate > 0;
                break;
            case 'd':
                ok = parse_double(optarg, &o.duration_s) && o.duration_s > 0;
                break;
            case 'c':
                ok =
                    parse_double(optarg, &connections) && connections >= 1 && connections <= 100000;
                break;
            case 'w':
                ok = parse_double(optarg, &o.warmup_s);
                break;
            case 'H':
                o.headers.emplace_back(optarg);
                break;
            case 'D':
                ok = parse_double(optarg, &o.drain_s);
                break;
            case 'S':
                ok = parse_double(optarg, &o.slice_s) && o.slice_s >= 0.001;
                break;
            case 'h':
                std::fputs(kUsage, stdout);
                return 0;
            default:
                return usage_error("unknown option");
        }
        if (!ok) return usage_error("bad option value");
    }
    o.connections = static_cast<unsigned>(connections);
    if (o.rate <= 0 || o.duration_s <= 0) return usage_error("-r and -d are required");
    if (argc - optind < 2 || !parse_targets(argv[optind], &o))
        return usage_error("HOST:PORT and a PATH are required");
    // Each target takes whole slices: -d and -w then give each the same time.
    auto whole_slices = [&](double s) {
        const double n = s / o.slice_s;
        return std::fabs(n - std::round(n)) < 1e-6;
    };
    if (o.targets.size() > 1 && (!whole_slices(o.duration_s) || !whole_slices(o.warmup_s)))
        return usage_error("with several targets, -d and -w are whole multiples of --slice");
    for (int i = optind + 1; i < argc; ++i) {
        if (argv[i][0] != '/') return usage_error("a PATH starts with /");
        o.paths.emplace_back(argv[i]);
    }

    std::vector<Report> reports;
    std::string error;
    if (!torii::loadgen::run_load(o, &reports, &error)) {
        std::fprintf(stderr, "torii_loadgen: %s\n", error.c_str());
        return 2;
    }
    for (size_t k = 0; k < reports.size(); ++k) {
        const Report &r = reports[k];
        const auto &h = r.latency_us;
        std::printf(
            "{\"target\": \"%s:%u\", \"rate\": %.1f, \"connections\": %u, \"duration_s\": %.3f, "
            "\"warmup_s\": %.3f, \"slice_s\": %.3f, \"due\": %" PRIu64 ", \"sent\": %" PRIu64
            ", \"completed\": %" PRIu64 ", \"non_2xx\": %" PRIu64 ", \"errors\": %" PRIu64
            ", \"unfinished\": %" PRIu64 ", \"connection_errors\": %" PRIu64
            ", \"reconnects\": %" PRIu64 ", \"max_queue\": %" PRIu64
            ", \"achieved_rate\": %.1f, \"p50_us\": %" PRIu64 ", \"p90_us\": %" PRIu64
            ", \"p99_us\": %" PRIu64 ", \"p99_9_us\": %" PRIu64 ", \"max_us\": %" PRIu64
            ", \"mean_us\": %.1f}\n",
            o.targets[k].host.c_str(), o.targets[k].port, o.rate, o.connections, o.duration_s,
            o.warmup_s, o.slice_s, r.due, r.sent, r.completed, r.non_2xx, r.errors, r.unfinished,
            r.connection_errors, r.reconnects, r.max_queue, r.achieved_rate, h.percentile(50),
            h.percentile(90), h.percentile(99), h.percentile(99.9), h.max(), h.mean());
    }
    return 0;
}
