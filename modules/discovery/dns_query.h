// One DNS question asked without blocking: what evdns cannot do for us (it has no SRV).
// Over UDP first: each attempt uses a fresh socket (a new random source port) connected to
// the server, so only that server's datagrams reach it, and a fresh random query id; an
// answer counts only when its id and question match. `attempts` attempts, each waiting
// `timeout`, go to the servers in turn. An answer that did not fit (TC set: more records than
// the 1232 bytes asked for) is asked again over TCP of the server that said so (RFC 7766),
// once, within `timeout`: a large SRV set is read whole instead of failing.
#pragma once

#include <event2/event.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/socket_address.h"
#include "core/base/units.h"
#include "modules/discovery/dns_packet.h"

namespace torii {

class DnsQuery {
public:
    struct Outcome {
        std::string error;  // empty: `message` is the server's answer (its rcode may be an error)
        dns::Message message;
    };
    using Done = std::function<void(Outcome)>;

    // `done` is called once, from the event loop (never from start()), unless the query is
    // destroyed first. It may destroy the query.
    DnsQuery(event_base *base, std::vector<SocketAddress> servers, std::string name, uint16_t type,
             Millis timeout, int attempts, Done done);
    void start();

private:
    void attempt();
    // This attempt is over: the timer starts the next one or reports `why` (never from
    // inside start(), where `done` must not run).
    void attempt_failed(std::string why, bool retry = true);
    void finish(Outcome outcome);
    void on_readable();
    void on_timeout();
    // The same question over TCP to `server` (the 2-byte length, then the message).
    void ask_over_tcp(const SocketAddress &server);
    void on_tcp_event(short what);
    void tcp_failed(const std::string &why);
    // The answer's checks, UDP or TCP: *why says what was wrong when it returns nothing.
    std::optional<dns::Message> accept_answer(const uint8_t *data, size_t len,
                                              std::string *why) const;
    static void readable_cb(evutil_socket_t, short, void *arg);
    static void tcp_cb(evutil_socket_t, short, void *arg);
    static void timer_cb(evutil_socket_t, short, void *arg);

    event_base *base_;
    std::vector<SocketAddress> servers_;
    std::string name_;    // as asked
    std::string wanted_;  // normalized, to match the answer's question
    uint16_t type_;
    Millis timeout_;
    int attempts_;
    Done done_;
    int sent_ = 0;
    uint16_t id_ = 0;
    std::vector<uint8_t> query_;  // the last one sent, with its 2-byte length in front for TCP
    UniqueFd fd_;
    EventPtr read_ev_;
    // TCP: the server asked, and what has come of the answer (length first).
    bool tcp_ = false;
    SocketAddress tcp_server_;
    size_t tcp_sent_ = 0;
    std::vector<uint8_t> tcp_in_;
    EventPtr timer_;
    std::string why_;  // why the last attempt failed ("timeout from 127.0.0.1:53")
};

}  // namespace torii
