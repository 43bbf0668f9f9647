// The open-loop load: requests at a constant rate on a fixed schedule, over keep-alive
// HTTP/1.1 connections, with latency taken from each request's due time.
//
// Request i is due at t0 + i / rate whatever happened before it. A due request goes out on
// a free connection (one request in flight per connection, no pipelining); when none is free
// it waits, and the wait counts in its latency (measured from the due time, as wrk2 does),
// so a stall of the server shows as the tail it causes instead of slowing the client down
// (a closed-loop client's coordinated omission). Requests due in the warm-up are sent and
// answered but not counted.
//
// With several targets the schedule is cut into slices (Options::slice_s) dealt to the
// targets in turn, each with connections of its own and its own queue and report: servers
// compared this way take the same load in the same seconds, so a machine whose speed drifts
// (a shared virtual CPU) slows all of them alike instead of whichever ran in a slow minute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/loadgen/histogram.h"

namespace torii::loadgen {

struct Target {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
};

struct Options {
    std::vector<Target> targets;       // one at least; slices of the schedule go round them
    std::vector<std::string> paths;    // request i asks for paths[i % paths.size()]
    std::vector<std::string> headers;  // "Name: value", sent with every request
    unsigned connections = 10;         // per target
    double rate = 0;                   // requests per second, all connections together
    double duration_s = 0;             // the measured schedule per target, after the warm-up
    double warmup_s = 0;               // schedule per target whose requests are not counted
    double slice_s = 0.1;  // with several targets: seconds of schedule each takes in turn
    double drain_s = 10;   // after the last due time, how long answers are awaited
    double connect_s = 5;  // for the first connections
};

struct Report {
    uint64_t due = 0;                // measured requests the schedule held
    uint64_t sent = 0;               // of which written to a connection
    uint64_t completed = 0;          // answered with a whole response (any status)
    uint64_t non_2xx = 0;            // of which with a status outside 200-299
    uint64_t errors = 0;             // no whole response: connection lost, bad response, unfinished
    uint64_t unfinished = 0;         // of the errors: still waiting when the drain ended
    uint64_t connection_errors = 0;  // failed connects and resets with no request in flight
    uint64_t reconnects = 0;         // connections made again after a close or an error
    uint64_t max_queue = 0;          // most due requests waiting for a free connection at once
    double achieved_rate = 0;        // measured responses per second
    Histogram latency_us;            // completed measured requests, due time to response end
};

// Runs the load, one report per target (in `options.targets` order); false (with `*error`)
// if the first connections could not be made.
bool run_load(const Options &options, std::vector<Report> *reports, std::string *error);

}  // namespace torii::loadgen
