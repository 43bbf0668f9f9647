// One HTTP/2 stream: the Downstream of one exchange. The response head is submitted with a
// data provider that pulls body bytes from `out_` (NGHTTP2_ERR_DEFERRED while it is empty,
// resumed by send_body); trailers follow the last DATA frame. Request body bytes go to the
// request's body evbuffer and are acknowledged to the client (WINDOW_UPDATE) only when the
// handler has taken them (resume_body).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>

#include "core/base/deletable.h"
#include "core/base/libevent_ptr.h"
#include "core/base/recycled.h"
#include "core/http/request.h"
#include "modules/http2/h2_common.h"
#include "modules/http2/h2_request_checks.h"
#include "modules/http2/http2_tunnel.h"

namespace torii {

class Http2Connection;

// Recycled: a stream is opened and freed per request (freed in batches by the worker's
// graveyard, past what glibc's per-size cache keeps).
class Http2Stream final : public Downstream, public Deletable, public Recycled<Http2Stream> {
public:
    Http2Stream(Http2Connection &conn, int32_t id);
    ~Http2Stream() override;

    int32_t id() const { return id_; }
    Request *request() const { return req_; }
    // Its place in the connection's list of open streams: removed without a search.
    size_t slot() const { return slot_; }
    void set_slot(size_t i) { slot_ = i; }

    // nghttp2's header callback on a client session (user data: the Http2Connection): the
    // field goes to its stream's head or trailer section. Here rather than with the other
    // callbacks in http2_connection.cc so that on_header is inlined into it: a call level
    // less for every field.
    static int header_cb(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                         void *user);
    // nghttp2 callbacks, forwarded by the connection.
    void on_request_head(bool end_stream);
    void on_data(const uint8_t *data, size_t len);
    void on_request_end();
    // The trailer section's HEADERS frame ended (it must end the stream).
    void on_trailers_end(bool end_stream);
    // Non-zero (an nghttp2 error code) when the trailer section is over the header limits.
    int on_trailer(std::string_view name, std::string_view value);
    ssize_t read_body(uint8_t *buf, size_t length, uint32_t *flags);
    void on_close(uint32_t error_code);
    // The response's last frame (END_STREAM) went out.
    void on_response_sent();
    // The connection's send round is over: tell the handler its output drained.
    void notify_drained();

    // Downstream
    void send_head(Request &req) noexcept override;
    void send_body(Request &req, evbuffer *data) noexcept override;
    void send_end(Request &req, const HeaderList *trailers) noexcept override;
    void send_abort(Request &req) noexcept override;
    void send_reset(Request &req) noexcept override;
    void send_continue(Request &req) noexcept override;
    void send_interim(Request &req, int status, const HeaderList &fields) noexcept override;
    bool output_full(const Request &req) const noexcept override;
    void watch_output_drain(Request &req) noexcept override;
    void resume_body(Request &req) noexcept override;
    void start_tunnel(Request &req, std::unique_ptr<Socket> upstream,
                      InFlight in_flight) noexcept override;

    // The tunnel of a WebSocket over HTTP/2 (http2_tunnel.h) speaks to the client through
    // these.
    void tunnel_to_client(evbuffer *data);
    void tunnel_end_to_client();
    bool tunnel_client_full() const;
    void tunnel_watch_client_drain() { watch_drain_ = true; }
    void tunnel_consumed(size_t n);
    void tunnel_reset(uint32_t code) { do_reset(code); }

private:
    int on_header(std::string_view name, std::string_view value);
    void do_reset(uint32_t code);
    // What an answer to an extended CONNECT becomes (RFC 8441): the upstream's 101 a 200
    // that opens the tunnel, a 2xx without the switch a 502 (a 2xx would tell the client
    // its WebSocket is open).
    void do_websocket_answer(Request &req);
    // Resets the stream as malformed; the value to return from nghttp2's header callback.
    int do_refuse_malformed();
    void do_reset_malformed();
    size_t output_high() const;
    void do_refuse(int status);

    Http2Connection &conn_;
    int32_t id_;
    size_t slot_ = 0;
    Request *req_;
    h2::OutBody out_;           // the response body, pulled by nghttp2
    h2::RequestChecks checks_;  // RFC 9113 8.2-8.3, in nghttp2's place
    // WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with :protocol = websocket.
    std::string_view protocol_;       // :protocol as received
    std::string_view websocket_key_;  // the Sec-WebSocket-Key torii sent upstream
    EvbufferPtr early_;               // client DATA that came before the tunnel opened
    std::unique_ptr<Http2Tunnel> tunnel_;
    bool websocket_ = false;        // this stream is such a handshake
    bool tunnel_accepted_ = false;  // the 101 was valid: the 200 went out
    bool client_ended_ = false;     // END_STREAM received (on a tunnel: its FIN)
    bool malformed_ = false;        // reset as malformed: the rest of the stream is dropped
    uint64_t header_bytes_ = 0;
    size_t header_fields_ = 0;     // regular fields (not pseudo-headers) of the request head
    size_t cookies_ = 0;           // cookie fields among them (joined into one when several)
    bool head_too_large_ = false;  // over client_max_header_size or the field count: 431
    uint64_t trailer_bytes_ = 0;   // the trailer section, against the same limits
    size_t trailer_fields_ = 0;
    uint64_t body_buffered_ = 0;  // request body bytes in req_->body not yet consumed
    bool headers_done_ = false;
    bool dispatched_ = false;
    bool response_started_ = false;
    bool watch_drain_ = false;  // the handler waits for on_response_drained
    bool finished_ = false;     // logged and released
};

}  // namespace torii
