// One DNS question asked over UDP without blocking: what evdns cannot do for us (it has no
// SRV). Each attempt uses a fresh socket (a new random source port) connected to the server,
// so only that server's datagrams reach it, and a fresh random query id; an answer counts
// only when its id and question match. `attempts` attempts, each waiting `timeout`, go to
// the servers in turn.
#pragma once

#include <event2/event.h>

#include <functional>
#include <string>
#include <vector>

#include "core/base/libevent_ptr.h"
#include "core/base/socket_address.h"
#include "core/base/units.h"
#include "modules/discovery/dns_packet.h"

namespace torii {

class DnsUdpQuery {
public:
    struct Outcome {
        std::string error;  // empty: `message` is the server's answer (its rcode may be an error)
        dns::Message message;
    };
    using Done = std::function<void(Outcome)>;

    // `done` is called once, from the event loop (never from start()), unless the query is
    // destroyed first. It may destroy the query.
    DnsUdpQuery(event_base *base, std::vector<SocketAddress> servers, std::string name,
                uint16_t type, Millis timeout, int attempts, Done done);
    void start();

private:
    void attempt();
    // This attempt is over: the timer starts the next one or reports `why` (never from
    // inside start(), where `done` must not run).
    void attempt_failed(std::string why, bool retry = true);
    void finish(Outcome outcome);
    void on_readable();
    void on_timeout();
    static void readable_cb(evutil_socket_t, short, void *arg);
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
    UniqueFd fd_;
    EventPtr read_ev_;
    EventPtr timer_;
    std::string why_;  // why the last attempt failed ("timeout from 127.0.0.1:53")
};

}  // namespace torii
