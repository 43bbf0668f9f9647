// Test support for the etcd source and its HTTP client: running an event loop until
// something happened, a scripted HTTP server on a thread (one canned answer per connection,
// in order), a sink that records lists and errors apart. (discovery_test_support.h is the
// DNS and file sources' own, in namespace torii::testing.)
#pragma once

#include <doctest/doctest.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "modules/discovery/discovery_source.h"
#include "t/unit/modules/discovery/discovery_test_support.h"
#include "t/unit/support/tcp_pair.h"

namespace torii::etcd_test {

using testing::run_for;
using testing::run_until;

// Lists and errors apart, lists as "127.0.0.1:80*1" strings.
class ListSink final : public DiscoverySink {
public:
    void on_targets(std::vector<DiscoveredTarget> targets) override {
        std::vector<std::string> list;
        for (const DiscoveredTarget &t : targets)
            list.push_back(t.address.to_string() + "*" + std::to_string(t.weight));
        lists.push_back(std::move(list));
    }
    void on_source_error(const std::string &message) override { errors.push_back(message); }

    bool has_error(const std::string &part) const {
        for (const std::string &e : errors)
            if (e.find(part) != std::string::npos) return true;
        return false;
    }
    std::vector<std::string> last() const {
        return lists.empty() ? std::vector<std::string>{} : lists.back();
    }

    std::vector<std::vector<std::string>> lists;
    std::vector<std::string> errors;
};

// A loopback HTTP server on its own thread. Connection i gets script[i]: its pieces written
// with a pause between them, then the connection is closed, or held open (`hold`) until
// the client closes it or the server stops. Connections beyond the script are closed with
// no answer. The requests received are kept.
class ScriptedServer {
public:
    struct Reply {
        std::vector<std::string> pieces;
        bool hold = false;
        int pause_ms = 20;
    };

    explicit ScriptedServer(std::vector<Reply> script) : script_(std::move(script)) {
        sockaddr_in sin;
        lfd_ = test::listen_loopback(16, &sin);
        port = ntohs(sin.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~ScriptedServer() {
        stop_ = true;
        thread_.join();
        ::close(lfd_);
    }

    std::vector<std::string> requests() {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }
    size_t connections() const { return connections_; }

    uint16_t port = 0;

private:
    // Waits up to 50 ms for `fd` to be readable; false when the server is stopping.
    bool wait_readable(int fd, bool &ready) {
        pollfd p{fd, POLLIN, 0};
        ready = ::poll(&p, 1, 50) > 0;
        return !stop_;
    }

    void serve() {
        for (size_t i = 0; !stop_; ++i) {
            bool ready = false;
            while (wait_readable(lfd_, ready) && !ready) {
            }
            if (stop_) return;
            int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            ++connections_;
            // Past the script: the request is read (closing with it unread would reset the
            // connection), then the connection closed.
            answer(fd, i < script_.size() ? script_[i] : Reply{});
            ::close(fd);
        }
    }

    void answer(int fd, const Reply &reply) {
        std::string request;
        // The head, then as many body bytes as Content-Length says.
        for (;;) {
            size_t end = request.find("\r\n\r\n");
            if (end != std::string::npos) {
                size_t cl = request.find("Content-Length: ");
                size_t want = cl == std::string::npos ? 0 : std::stoul(request.substr(cl + 16));
                if (request.size() >= end + 4 + want) break;
            }
            bool ready = false;
            if (!wait_readable(fd, ready)) return;
            if (!ready) continue;
            char buf[4096];
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) return;
            request.append(buf, static_cast<size_t>(n));
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(request);
        }
        for (const std::string &piece : reply.pieces) {
            if (::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL) < 0) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(reply.pause_ms));
            if (stop_) return;
        }
        while (reply.hold) {  // until the client closes or the server stops
            bool ready = false;
            if (!wait_readable(fd, ready)) return;
            char buf[256];
            if (ready && ::read(fd, buf, sizeof buf) <= 0) return;
        }
    }

    std::vector<Reply> script_;
    int lfd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<size_t> connections_{0};
    std::mutex mu_;
    std::vector<std::string> requests_;
};

// A chunk of a chunked body.
inline std::string chunk(const std::string &data) {
    char size[20];
    snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
}

inline const char *kChunkedHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

inline std::string json_response(int status, const std::string &body) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace torii::etcd_test
