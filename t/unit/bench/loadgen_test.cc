// torii_loadgen's histogram and response framing (bench/loadgen/): a wrong bucket or a
// misplaced response end would misreport every latency of the latency-p99 bench row.
#include "bench/loadgen/histogram.h"
#include "bench/loadgen/response_framer.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// Everything in a namespace of its own: in the unity build (UNITY=1) this file shares a
// translation unit with other tests.
namespace loadgen_test {

using torii::loadgen::Histogram;
using torii::loadgen::ResponseFramer;

using Result = ResponseFramer::Result;

struct Fed {
    Result result;
    size_t used;
};

// Feeds `wire` in pieces of `step` bytes (0: whole), stopping at the first end or error.
Fed feed_in_pieces(ResponseFramer &f, std::string_view wire, size_t step = 0) {
    size_t pos = 0;
    for (;;) {
        const size_t n = step == 0 ? wire.size() - pos : std::min(step, wire.size() - pos);
        size_t used = 0;
        const Result r = f.feed(wire.substr(pos, n), &used);
        pos += used;
        if (r != Result::kNeedMore || pos == wire.size()) return {r, pos};
    }
}

// Every split of `wire` into two reads must give the same verdict as one read.
void check_every_split(std::string_view wire, Result expected, size_t expected_used) {
    for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
        ResponseFramer f;
        const Fed fed = feed_in_pieces(f, wire, step);
        CHECK_MESSAGE(fed.result == expected, "step " << step);
        if (expected != Result::kError) CHECK_MESSAGE(fed.used == expected_used, "step " << step);
    }
}

Result verdict(std::string_view wire) {
    ResponseFramer f;
    return feed_in_pieces(f, wire).result;
}

TEST_CASE("loadgen histogram: values below 256 are exact, the rest within 1/128") {
    for (uint64_t v = 0; v < 256; ++v) {
        CHECK(Histogram::lowest_of(Histogram::index_of(v)) == v);
        CHECK(Histogram::highest_of(Histogram::index_of(v)) == v);
    }
    std::mt19937_64 rng(16);
    for (int i = 0; i < 20000; ++i) {
        const uint64_t v = rng() >> (rng() % 64);
        const size_t idx = Histogram::index_of(v);
        REQUIRE(idx < Histogram::kCounters);
        const uint64_t lo = Histogram::lowest_of(idx), hi = Histogram::highest_of(idx);
        REQUIRE(lo <= v);
        REQUIRE(v <= hi);
        CHECK(static_cast<double>(hi - lo) <= static_cast<double>(lo) / 128.0);
    }
    // Counters tile the whole range: each starts one past the last one's end.
    for (size_t i = 1; i < Histogram::kCounters; ++i)
        REQUIRE(Histogram::lowest_of(i) == Histogram::highest_of(i - 1) + 1);
    CHECK(Histogram::highest_of(Histogram::kCounters - 1) == UINT64_MAX);
    CHECK(Histogram::index_of(UINT64_MAX) == Histogram::kCounters - 1);
}

TEST_CASE("loadgen histogram: percentiles of known distributions") {
    Histogram h;
    CHECK(h.percentile(99) == 0);
    CHECK(h.count() == 0);
    for (uint64_t v = 1; v <= 100000; ++v)
        h.record(v);
    CHECK(h.count() == 100000);
    CHECK(h.min() == 1);
    CHECK(h.max() == 100000);
    CHECK(h.mean() == doctest::Approx(50000.5));
    for (double p : {50.0, 90.0, 99.0, 99.9}) {
        const double exact = p * 1000.0;
        const double got = static_cast<double>(h.percentile(p));
        CHECK_MESSAGE(got >= exact, p);
        CHECK_MESSAGE(got <= exact * 1.01, p);
    }
    CHECK(h.percentile(100) == 100000);
    CHECK(h.percentile(0) == 1);

    // A tail of 1% slow values: p99 stays fast, p99.9 is the stall, as a latency run shows it.
    Histogram t;
    t.record(1000, 990);
    t.record(250000, 10);
    CHECK(t.percentile(50) == Histogram::highest_of(Histogram::index_of(1000)));
    CHECK(t.percentile(99) <= 1010);
    CHECK(t.percentile(99.1) == 250000);  // never above the largest value recorded
    CHECK(t.max() == 250000);
}

TEST_CASE("loadgen framing: Content-Length, keep-alive and the bytes that follow") {
    const std::string one = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    check_every_split(one, Result::kComplete, one.size());
    ResponseFramer f;
    size_t used = 0;
    // The next response's bytes are left for the caller.
    CHECK(f.feed(one + "HTTP/1.1 204 No Content\r\n\r\n", &used) == Result::kComplete);
    CHECK(used == one.size());
    CHECK(f.status() == 200);
    CHECK(f.keep_alive());
    f.reset();
    CHECK(f.feed("HTTP/1.1 204 No Content\r\n\r\n", &used) == Result::kComplete);
    CHECK(f.status() == 204);

    f.reset();
    CHECK(
        f.feed("HTTP/1.1 503 Service Unavailable\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n",
               &used) == Result::kComplete);
    CHECK(f.status() == 503);
    CHECK_FALSE(f.keep_alive());

    f.reset();
    CHECK(f.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &used) == Result::kComplete);
    CHECK_FALSE(f.keep_alive());
    f.reset();
    CHECK(f.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &used) ==
          Result::kComplete);
    CHECK(f.keep_alive());

    // A body longer than one read, and 304 whose Content-Length describes no body here.
    f.reset();
    const std::string big = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    CHECK(f.feed(big, &used) == Result::kNeedMore);
    CHECK(f.feed(std::string(99999, 'x'), &used) == Result::kNeedMore);
    CHECK(f.feed("xHTTP", &used) == Result::kComplete);
    CHECK(used == 1);
    f.reset();
    CHECK(f.feed("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", &used) ==
          Result::kComplete);
}

TEST_CASE("loadgen framing: chunked bodies with extensions and trailers, 1xx skipped") {
    const std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n1a ; name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
        "Trailer-One: 1\r\n\r\n";
    check_every_split(chunked, Result::kComplete, chunked.size());
    check_every_split(chunked + "HTTP/1.1", Result::kComplete, chunked.size());

    const std::string interim =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    check_every_split(interim, Result::kComplete, interim.size());
    ResponseFramer f;
    CHECK(feed_in_pieces(f, interim, 1).result == Result::kComplete);
    CHECK(f.status() == 201);

    // Without a length the body ends at the close, and the connection with it.
    ResponseFramer g;
    CHECK(feed_in_pieces(g, "HTTP/1.1 200 OK\r\n\r\nsome bytes").result == Result::kNeedMore);
    CHECK(g.finish_at_eof() == Result::kComplete);
    CHECK_FALSE(g.keep_alive());
    // Any other response cut by the close is an error.
    ResponseFramer h;
    CHECK(feed_in_pieces(h, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").result ==
          Result::kNeedMore);
    CHECK(h.finish_at_eof() == Result::kError);
    ResponseFramer k;
    CHECK(k.finish_at_eof() == Result::kError);
}

TEST_CASE("loadgen framing: what could misplace the next response is an error") {
    for (const char *bad : {
             "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",                         // bare LF
             "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",                         // bare LF
             "HTTP/2 200 OK\r\n\r\n",                                              // version
             "HTTP/1.1 20 OK\r\n\r\n",                                             // status
             "HTTP/1.1 2000 OK\r\n\r\n",                                           // status
             "HTTP/1.1 600 Odd\r\n\r\n",                                           // range
             "ICY 200 OK\r\n\r\n",                                                 // not HTTP
             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",  // conflict
             "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",  // obs-fold
             "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",  // space before colon
             "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
             "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",  // CR inside
             "HTTP/1.1 101 Switching Protocols\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",  // chunk size
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",  // too long
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
         }) {
        CHECK_MESSAGE(verdict(bad) == Result::kError, bad);
    }
    // Bounded lines and heads.
    CHECK(verdict("HTTP/1.1 200 OK\r\nX: " + std::string(ResponseFramer::kMaxLine, 'a') +
                  "\r\n\r\n") == Result::kError);
    std::string many = "HTTP/1.1 200 OK\r\n";
    while (many.size() <= ResponseFramer::kMaxHead)
        many += "X-Filler: " + std::string(100, 'a') + "\r\n";
    CHECK(verdict(many + "\r\n") == Result::kError);
    // A long chunked body's size lines are not a head: many small chunks are fine.
    std::string chunks = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 20000; ++i)
        chunks += "1\r\nx\r\n";
    chunks += "0\r\n\r\n";
    CHECK(verdict(chunks) == Result::kComplete);
}

}  // namespace loadgen_test
