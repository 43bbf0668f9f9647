// The life of one request/response exchange, the same for every protocol. A downstream
// codec (HTTP/1.1 today, HTTP/2 streams next) parses a head into a Request and calls:
//
//   exchange_acquire      a pooled Request bound to the codec (Downstream) and the client
//   exchange_begin        the head is complete: count it, start its clock
//   exchange_route        target, path normalisation, server by Host, Content-Length limit
//   exchange_run          phases, location, handler (proxy, return, admin)
//     ... the handler answers through req.downstream: send_head/body/end/abort ...
//   exchange_abort        the client went away first: the handler stops, 499 is logged
//   exchange_finish       log phase and access log (once), the handler is released
//   exchange_release      back to the pool, after the current event callback
//
// Bookkeeping (counts, timing, logging, handler lifetime) lives here once, so no codec
// repeats it and none forgets it.
#pragma once

#include <string_view>

#include "core/base/socket_address.h"

namespace torii {

struct Request;
struct ServerGroup;
class Downstream;
class HttpServer;
class Worker;

Request *exchange_acquire(Worker &worker, Downstream *downstream, const SocketAddress &peer,
                          std::string_view remote_text);
void exchange_begin(Worker &worker, Request &req);
// Chooses the server for the request and checks what can be checked before any phase runs.
// nullptr with *status set when the request must be refused (400 for a bad target, 413 for
// a Content-Length over client_max_body_size): the codec answers it with respond_error,
// having decided first whether the connection stays.
HttpServer *exchange_route(Request &req, const ServerGroup &group, int *status);
void exchange_run(Request &req, HttpServer &server);
// The client is gone or broke the request: the handler stops (it may not send anything
// more) and the log will say 499 unless a status was already set.
void exchange_abort(Request &req);
// The log phase and the access log, once per request; the handler goes to deferred
// deletion. Safe to call again.
void exchange_finish(Request &req);
// Resets the request and returns it to the worker's pool once the current callback is over
// (a handler being torn down may still hold a reference).
void exchange_release(Worker &worker, Request *req);

}  // namespace torii
