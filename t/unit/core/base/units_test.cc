#include "core/base/units.h"

#include <doctest/doctest.h>

namespace torii {

TEST_CASE("parse_duration accepts every unit") {
    CHECK(*parse_duration("250ms") == 250);
    CHECK(*parse_duration("0ms") == 0);
    CHECK(*parse_duration("2s") == 2'000);
    CHECK(*parse_duration("1m") == 60'000);
    CHECK(*parse_duration("1h") == 3'600'000);
    CHECK(*parse_duration("1d") == 86'400'000);
    CHECK(*parse_duration("30s") == 30'000);
}

TEST_CASE("parse_duration accepts fractions that land on whole milliseconds") {
    CHECK(*parse_duration("1.5s") == 1'500);
    CHECK(*parse_duration("0.25s") == 250);
    CHECK(*parse_duration("1.5m") == 90'000);
    Result<Millis> fine = parse_duration("0.5ms");
    REQUIRE_FALSE(fine.ok());
    CHECK(fine.error() == "invalid duration \"0.5ms\" (finer than 1ms)");
    CHECK_FALSE(parse_duration("1.s").ok());
    CHECK_FALSE(parse_duration(".5s").ok());
}

TEST_CASE("parse_duration rejects bad input") {
    Result<Millis> bad = parse_duration("2x");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "invalid duration \"2x\" (use 250ms, 2s, 1m, 1h)");
    // A bare number would be ambiguous between seconds and milliseconds.
    CHECK(parse_duration("30").error() == "invalid duration \"30\" (use 250ms, 2s, 1m, 1h)");
    CHECK_FALSE(parse_duration("").ok());
    CHECK_FALSE(parse_duration("-1s").ok());
    CHECK_FALSE(parse_duration("+1s").ok());
    CHECK_FALSE(parse_duration(" 1s").ok());
    CHECK_FALSE(parse_duration("1s ").ok());
    CHECK_FALSE(parse_duration("1S").ok());
    CHECK_FALSE(parse_duration("s").ok());
    CHECK_FALSE(parse_duration("1sec").ok());
    CHECK_FALSE(parse_duration("1ms2").ok());
}

TEST_CASE("parse_duration rejects overflow") {
    CHECK(parse_duration("99999999999999999999s").error() ==
          "invalid duration \"99999999999999999999s\" (too large)");
    CHECK(parse_duration("9999999999999999d").error() ==
          "invalid duration \"9999999999999999d\" (too large)");
    CHECK(*parse_duration("9223372036854775807ms") == INT64_MAX);
    CHECK_FALSE(parse_duration("9223372036854775808ms").ok());
}

TEST_CASE("parse_size accepts bytes and binary units") {
    CHECK(*parse_size("0") == 0);
    CHECK(*parse_size("512") == 512);
    CHECK(*parse_size("8k") == 8 * 1024);
    CHECK(*parse_size("8K") == 8 * 1024);
    CHECK(*parse_size("1m") == 1024 * 1024);
    CHECK(*parse_size("1M") == 1024 * 1024);
    CHECK(*parse_size("1g") == 1024ull * 1024 * 1024);
    CHECK(*parse_size("1G") == 1024ull * 1024 * 1024);
}

TEST_CASE("parse_size rejects bad input") {
    Result<uint64_t> bad = parse_size("8x");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "invalid size \"8x\" (use 512, 8k, 1m, 1g)");
    CHECK_FALSE(parse_size("").ok());
    CHECK_FALSE(parse_size("k").ok());
    CHECK_FALSE(parse_size("-1").ok());
    CHECK_FALSE(parse_size("1.5m").ok());
    CHECK_FALSE(parse_size("8kb").ok());
    CHECK_FALSE(parse_size(" 8k").ok());
    CHECK(parse_size("99999999999999999999").error() ==
          "invalid size \"99999999999999999999\" (too large)");
    CHECK(parse_size("17179869184g").error() == "invalid size \"17179869184g\" (too large)");
}

}  // namespace torii
