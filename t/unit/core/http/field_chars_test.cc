#include "core/http/field_chars.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>

using namespace torii;

TEST_CASE("field names are RFC 9110 tokens") {
    CHECK(valid_field_name("X-Client"));
    CHECK(valid_field_name("RateLimit-Remaining"));
    CHECK(valid_field_name("a!#$%&'*+-.^_`|~9"));
    CHECK_FALSE(valid_field_name(""));
    for (const std::string &bad : std::initializer_list<std::string>{
             "X Client", "X:Client", "X(Client)", "X\"", "X,Y",   "X/Y",   "X;",
             "X<",       "X=",       "X>",        "X?",  "X@",    "X[",    "X\\",
             "X]",       "X{",       "X}",        "X\t", "X\x7f", "X\x80", std::string("X\0Y", 3),
             "X\r",      "X\n"})
        CHECK_MESSAGE(!valid_field_name(bad), bad);
}

TEST_CASE("field values: visible characters, obs-text, spaces and tabs only") {
    CHECK(valid_field_value(""));
    CHECK(valid_field_value("text/plain; charset=utf-8"));
    CHECK(valid_field_value("a\tb c"));
    CHECK(valid_field_value("caf\xc3\xa9"));  // obs-text passes through
    for (const std::string &bad : std::initializer_list<std::string>{
             "a\rb", "a\nb", std::string("a\0b", 3), "a\x01", "a\x1f", "\x7f"})
        CHECK_MESSAGE(!valid_field_value(bad), bad);
}
