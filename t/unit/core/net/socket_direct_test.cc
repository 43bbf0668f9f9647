// Socket's direct paths on real loopback TCP connections: a read left in the process's read
// buffer (take_unread) and a head written into its write buffer (write_head, append). Both
// buffers are shared by every socket of the process, so what one socket leaves there must
// reach its own input or output, in order, whatever another socket does next.
#include <doctest/doctest.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "core/base/libevent_ptr.h"
#include "core/net/socket.h"
#include "t/unit/support/tcp_pair.h"
#include "t/unit/support/test_certs.h"

using namespace torii;

namespace {

using test::tcp_pair;
using Pair = test::TcpPair;

// Records reads; takes the unread bytes in its callback only when asked to.
struct Handler : SocketHandler {
    bool take = false;
    std::string taken;
    int reads = 0;
    void on_socket_read(Socket &s) override {
        ++reads;
        if (take) taken += std::string(s.take_unread());
    }
    void on_socket_drained(Socket &) override {}
    void on_socket_error(Socket &, int) override {}
    void on_socket_timeout(Socket &, bool) override {}
};

std::string input_of(Socket &s) {
    evbuffer *in = s.input();
    std::string out(evbuffer_get_length(in), '\0');
    evbuffer_remove(in, out.data(), out.size());
    return out;
}

// Reads exactly n bytes from a blocking fd.
std::string read_exactly(int fd, size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, out.data() + got, n - got);
        REQUIRE(r > 0);
        got += static_cast<size_t>(r);
    }
    return out;
}

void loop_once(event_base *base) {
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

struct Fixture {
    event_base *base = event_base_new();
    Pair a = tcp_pair(), b = tcp_pair();
    Handler ha, hb;
    Socket *sa = new Socket(base, a.torii, &ha);
    Socket *sb = new Socket(base, b.torii, &hb);
    ~Fixture() {
        delete sa;
        delete sb;
        ::close(a.app);
        ::close(b.app);
        event_base_free(base);
    }
    // Until both sockets have read once (bounded).
    void read_both() {
        for (int i = 0; i < 100 && (ha.reads == 0 || hb.reads == 0); ++i) {
            loop_once(base);
            if (ha.reads == 0 || hb.reads == 0) usleep(1000);
        }
        REQUIRE(ha.reads > 0);
        REQUIRE(hb.reads > 0);
    }
};

}  // namespace

TEST_CASE("bytes read in place and not taken reach their own socket's input") {
    Fixture f;
    f.sa->set_read_in_place(true);
    f.sb->set_read_in_place(true);
    REQUIRE(::write(f.a.app, "first", 5) == 5);
    REQUIRE(::write(f.b.app, "second", 6) == 6);
    // Neither handler takes its bytes: the second read reuses the buffer, so the first
    // socket's bytes must have moved to its input before.
    f.read_both();
    CHECK(f.sa->has_input());
    CHECK(f.sb->has_input());
    CHECK(input_of(*f.sa) == "first");
    CHECK(input_of(*f.sb) == "second");
    CHECK_FALSE(f.sa->has_input());
}

TEST_CASE("a socket closed with bytes in the shared buffers leaves them to no one") {
    // Sockets are recycled: the next one likely lives at the same address, and must not be
    // given the bytes of the connection before it.
    event_base *base = event_base_new();
    Pair p = tcp_pair(), q = tcp_pair(), r = tcp_pair();
    Handler h1, h2, h3;
    auto *s1 = new Socket(base, p.torii, &h1);
    s1->set_read_in_place(true);
    REQUIRE(::write(p.app, "secret", 6) == 6);
    for (int i = 0; i < 100 && h1.reads == 0; ++i) {
        loop_once(base);
        usleep(1000);
    }
    REQUIRE(h1.reads == 1);
    s1->write_head(5, [](char *d) {
        std::memcpy(d, "head!", 5);
        return d + 5;
    });
    delete s1;  // neither the read nor the head was taken
    auto *s2 = new Socket(base, q.torii, &h2);
    s2->set_read_in_place(true);
    auto *s3 = new Socket(base, r.torii, &h3);
    REQUIRE(::write(r.app, "x", 1) == 1);
    for (int i = 0; i < 100 && h3.reads == 0; ++i) {
        loop_once(base);
        usleep(1000);
    }
    CHECK_FALSE(s2->has_input());
    CHECK(s2->pending_output() == 0);
    CHECK(input_of(*s3) == "x");
    delete s2;
    delete s3;
    ::close(p.app);
    ::close(q.app);
    ::close(r.app);
    event_base_free(base);
}

TEST_CASE("bytes read in place can be taken where they lie, once") {
    Fixture f;
    f.sa->set_read_in_place(true);
    f.ha.take = true;
    REQUIRE(::write(f.a.app, "hello", 5) == 5);
    REQUIRE(::write(f.b.app, "x", 1) == 1);
    f.read_both();
    CHECK(f.ha.taken == "hello");
    CHECK(input_of(*f.sa).empty());
    CHECK(input_of(*f.sb) == "x");  // not reading in place: straight into its input
}

TEST_CASE("a head written directly goes out in order with what follows it") {
    Fixture f;
    auto head = [](Socket &s, const char *text) {
        size_t n = std::strlen(text);
        s.write_head(n, [&](char *p) {
            std::memcpy(p, text, n);
            return p + n;
        });
    };
    EvbufferPtr body = make_evbuffer();
    SUBCASE("head, appended body, flush: one write") {
        head(*f.sa, "HEAD-A|");
        evbuffer_add(body.get(), "body-a", 6);
        f.sa->append(body.get());
        CHECK(evbuffer_get_length(body.get()) == 0);
        CHECK(f.sa->pending_output() == 13);
        f.sa->flush();
        CHECK(f.sa->pending_output() == 0);
        CHECK(read_exactly(f.a.app, 13) == "HEAD-A|body-a");
    }
    SUBCASE("another socket's head moves the first one's bytes to its output") {
        head(*f.sa, "HEAD-A|");
        head(*f.sb, "HEAD-B|");
        evbuffer_add(body.get(), "body-a", 6);
        f.sa->append(body.get());
        evbuffer_add(f.sb->output(), "more-b", 6);  // written to the evbuffer: after the head
        CHECK(f.sa->pending_output() == 13);
        CHECK(f.sb->pending_output() == 13);
        f.sb->flush();
        f.sa->flush();
        CHECK(read_exactly(f.a.app, 13) == "HEAD-A|body-a");
        CHECK(read_exactly(f.b.app, 13) == "HEAD-B|more-b");
    }
    SUBCASE("what the kernel does not take waits in the output and goes out later") {
        // Fill the kernel's buffers first: the direct write then gets EAGAIN.
        std::string filler(64 * 1024, 'f');
        size_t filled = 0;
        for (int i = 0; i < 1000; ++i) {
            ssize_t w = ::write(f.a.torii, filler.data(), filler.size());
            if (w <= 0) break;
            filled += static_cast<size_t>(w);
        }
        REQUIRE(filled > 0);
        head(*f.sa, "HEAD-A|");
        f.sa->flush();
        CHECK(f.sa->pending_output() == 7);
        // The peer reads; the write event sends the rest (bounded).
        std::string got = read_exactly(f.a.app, filled);
        for (int i = 0; i < 200 && f.sa->pending_output() > 0; ++i) {
            loop_once(f.base);
            usleep(1000);
        }
        CHECK(f.sa->pending_output() == 0);
        CHECK(read_exactly(f.a.app, 7) == "HEAD-A|");
    }
}

namespace {

// f.sa as a TLS server and a non-blocking TLS client on f.a.app, handshaken in this thread.
struct TlsPair {
    SSL_CTX *server_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    SSL *client = nullptr;
    explicit TlsPair(Fixture &f) {
        test::TestCert cert = test::make_test_cert();
        REQUIRE(SSL_CTX_use_certificate_file(server_ctx, cert.cert.c_str(), SSL_FILETYPE_PEM) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(server_ctx, cert.key.c_str(), SSL_FILETYPE_PEM) == 1);
        SSL_CTX_set_mode(server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);  // tls_context.cc
        client = SSL_new(client_ctx);
        ::fcntl(f.a.app, F_SETFL, O_NONBLOCK);
        SSL_set_fd(client, f.a.app);
        f.sa->start_tls(SSL_new(server_ctx), true);
        int rc = 0;
        for (int i = 0; i < 2000 && (rc = SSL_connect(client)) != 1; ++i) {
            loop_once(f.base);
            usleep(200);
        }
        REQUIRE(rc == 1);
        for (int i = 0; i < 50; ++i)
            loop_once(f.base);  // the server's side of the handshake finishes
        REQUIRE_FALSE(f.sa->handshaking());
    }
    ~TlsPair() {
        SSL_free(client);
        SSL_CTX_free(client_ctx);
        SSL_CTX_free(server_ctx);
    }
};

}  // namespace

TEST_CASE("over TLS, a small record is read in place, more than a buffer goes to the input") {
    Fixture f;
    f.sa->set_read_in_place(true);
    f.ha.take = true;
    TlsPair tls(f);
    REQUIRE(SSL_write(tls.client, "GET / HTTP/1.1", 14) == 14);
    for (int i = 0; i < 200 && f.ha.taken.empty(); ++i) {
        loop_once(f.base);
        usleep(500);
    }
    CHECK(f.ha.taken == "GET / HTTP/1.1");
    CHECK_FALSE(f.sa->has_input());
    // 64 KiB, several records: whatever comes is taken in place or found in the input, and
    // the two together are the bytes sent, in order.
    std::string big;
    for (int i = 0; i < 64 * 1024; ++i)
        big += static_cast<char>('a' + i % 26);
    size_t sent = 0;
    std::string got;
    f.ha.taken.clear();
    for (int i = 0; i < 5000 && got.size() < big.size(); ++i) {
        if (sent < big.size()) {
            int n = SSL_write(tls.client, big.data() + sent, static_cast<int>(big.size() - sent));
            if (n > 0) sent += static_cast<size_t>(n);
        }
        loop_once(f.base);
        usleep(200);
        got += f.ha.taken;
        f.ha.taken.clear();
        got += input_of(*f.sa);
    }
    CHECK(got.size() == big.size());
    CHECK(got == big);
}

TEST_CASE(
    "over TLS, a head written directly survives a full socket: OpenSSL gets its bytes again") {
    Fixture f;
    int small = 16 * 1024;  // kernel buffers that fill after a few heads
    ::setsockopt(f.a.torii, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(f.a.app, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    TlsPair tls(f);
    SSL *client = tls.client;

    // Heads of 8 KiB, each a different pattern, until one is left behind (the client reads
    // nothing meanwhile), then one more: it queues behind the first.
    std::string expected;
    auto head = [&](char fill) {
        std::string text(8 * 1024, fill);
        f.sa->write_head(text.size(), [&](char *p) {
            std::memcpy(p, text.data(), text.size());
            return p + text.size();
        });
        expected += text;
    };
    char c = 'a';
    for (int i = 0; i < 500 && f.sa->pending_output() == 0; ++i) {
        head(c);
        c = c == 'z' ? 'a' : static_cast<char>(c + 1);
        f.sa->flush();
    }
    REQUIRE(f.sa->pending_output() > 0);
    head('!');
    f.sa->flush();

    // The client reads everything; the write event sends what waited. Bounded in count and
    // in time (10 s): a sanitizer build under ctest -j 2 needed more than 20,000 quick turns.
    std::string got;
    char buf[16384];
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int i = 0;
         i < 200000 && got.size() < expected.size() && std::chrono::steady_clock::now() < give_up;
         ++i) {
        int n = SSL_read(client, buf, sizeof buf);
        if (n > 0) {
            got.append(buf, static_cast<size_t>(n));
        } else {
            loop_once(f.base);
            usleep(100);
        }
    }
    CHECK(got.size() == expected.size());
    CHECK(got == expected);
    CHECK(f.sa->pending_output() == 0);
}
