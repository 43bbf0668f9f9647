// One request/response exchange with an upstream target, whatever the protocol toward it:
// the proxy session (retries, balancing, phases, relaying to the client) talks to this
// interface only. HTTP/1.1 implements it over a pooled connection
// (core/proxy/http1_upstream_stream); a multiplexed HTTP/2 session will hand out one stream
// per exchange behind the same interface.
//
//   open ─► on_stream_ready ─► send_head, send_body..., send_end
//        ◄─ on_stream_interim (1xx) ◄─ on_stream_head ◄─ on_stream_body... ◄─ on_stream_end
//   any time: on_stream_error (the stream is dead; the session decides about a retry)
#pragma once

#include <event2/buffer.h>

#include <cstdint>
#include <string_view>

#include <memory>

#include "core/base/deletable.h"
#include "core/http/message.h"
#include "core/proxy/in_flight.h"

namespace torii {

class Socket;

enum class UpstreamError {
    connect,          // the connection (TCP, TLS) could not be made
    connect_timeout,  // not made within connect_timeout
    send_timeout,     // the request did not go out within send_timeout
    read_timeout,     // no response byte within read_timeout
    closed,           // closed by the target (FIN)
    reset,            // reset by the target (RST)
    refused,          // refused before processing (HTTP/2 REFUSED_STREAM, after a GOAWAY)
    invalid,          // what came back is not a valid response
    upgrade,          // the target switched protocols (101), which needs a tunnel
};

class UpstreamStream;

class UpstreamStreamHandler {
public:
    // Connected (and TLS done): the request may be sent.
    virtual void on_stream_ready(UpstreamStream &s) = 0;
    // A 1xx interim response (100 is consumed by the stream; 103 and others come here).
    virtual void on_stream_interim(UpstreamStream &s, const ResponseHead &head) = 0;
    virtual void on_stream_head(UpstreamStream &s, const ResponseHead &head) = 0;
    // Response body bytes are in `data` (move what you take).
    virtual void on_stream_body(UpstreamStream &s, evbuffer *data) = 0;
    // The response is complete; trailers may be null or empty.
    virtual void on_stream_end(UpstreamStream &s, const HeaderList *trailers) = 0;
    // The request side can take more body (after output_full()).
    virtual void on_stream_drained(UpstreamStream &s) = 0;
    virtual void on_stream_error(UpstreamStream &s, UpstreamError err, const char *why) = 0;
    // The target switched protocols (101) as the request asked: the handler may take the
    // connection for a tunnel (take_tunnel) or abort the stream.
    virtual void on_stream_upgrade(UpstreamStream &s, const ResponseHead &head) = 0;

protected:
    ~UpstreamStreamHandler() = default;
};

// What the stream needs to frame a request.
struct UpstreamRequest {
    std::string_view method;
    std::string_view target;  // path?query
    // End-to-end fields (no framing, no hop-by-hop). The stream may append its framing
    // fields while it writes the head and removes them again.
    HeaderList *headers = nullptr;
    int64_t content_length = -1;  // >= 0: declared length; -1: none
    bool chunked = false;         // a body of unknown length follows (chunked on HTTP/1.1)
    bool te_trailers = false;     // the client sent TE: trailers (gRPC): HTTP/2 passes it
    int64_t read_timeout_ms = 0;  // 0: the upstream's read_timeout (a gRPC deadline cuts it)

    bool has_body() const { return chunked || content_length > 0; }
};

class UpstreamStream : public Deletable {
public:
    // Takes a pooled connection or session, or starts a connect; on_stream_ready or
    // on_stream_error may come before start() returns.
    virtual void start() = 0;
    // From a keep-alive pool (a failure before any response byte may only mean the target
    // closed it while idle).
    virtual bool reused() const = 0;
    virtual void send_head(const UpstreamRequest &req) = 0;
    virtual void send_body(evbuffer *data) = 0;  // moves all of data
    virtual void send_end(const HeaderList *trailers) = 0;
    // Writes what send_head/send_body queued (send_end flushes by itself).
    virtual void flush() = 0;
    // Backpressure toward the upstream: stop sending body while true; on_stream_drained
    // follows.
    virtual bool output_full() const = 0;
    // Backpressure toward the client: stop / resume delivering response body.
    virtual void pause_receiving() = 0;
    virtual void resume_receiving() = 0;
    // The session gives the stream up (error, client gone, answer replaced): nothing more
    // is delivered, the connection is not reused. Safe from any callback.
    virtual void abort() = 0;
    // After on_stream_upgrade: the connection to the target (bytes after the 101 are in its
    // input) and the target's in-flight count, for a tunnel. The stream is done after it.
    virtual std::unique_ptr<Socket> take_tunnel(InFlight *in_flight) = 0;
};

}  // namespace torii
