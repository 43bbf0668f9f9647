#include <doctest/doctest.h>

#include <string>

#include "core/base/libevent_ptr.h"
#include "core/http/http1_writer.h"

using namespace torii;

static std::string drain(evbuffer *b) {
    std::string s(evbuffer_get_length(b), '\0');
    evbuffer_remove(b, s.data(), s.size());
    return s;
}

// The head writer copies short pieces inline (two overlapping moves): every length around
// the 4, 8 and 16-byte steps must come out byte for byte.
TEST_CASE("a request head carries every name and value length unchanged") {
    std::string bytes;
    for (int i = 0; i < 40; ++i)
        bytes += char('a' + i % 26);
    for (size_t n = 1; n <= 33; ++n) {
        for (size_t v = 0; v <= 33; ++v) {
            std::string name = bytes.substr(0, n), value = bytes.substr(40 - v, v);
            HeaderList h;
            h.add(name, value);
            h.add("X", std::string_view());
            EvbufferPtr out = make_evbuffer();
            write_request_head(out.get(), "GET", "/p", h);
            std::string want = "GET /p HTTP/1.1\r\n" + name + ": " + value + "\r\nX: \r\n\r\n";
            REQUIRE(drain(out.get()) == want);
        }
    }
}

TEST_CASE("a response head carries the status, the reason and the fields") {
    HeaderList h;
    h.add("Content-Type", "text/plain; charset=utf-8");
    EvbufferPtr out = make_evbuffer();
    write_response_head(out.get(), HttpVersion::http11, 404, "", h);
    CHECK(drain(out.get()) ==
          "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
}
