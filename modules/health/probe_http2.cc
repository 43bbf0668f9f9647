// HTTP/2 probe exchange (h2 and h2c upstreams): a client session with one stream, a GET or,
// for a gRPC health check, a POST of one gRPC message. The session is thrown away with the
// connection, so nothing here is tuned: nghttp2's default windows (64 KiB, as much as a
// probe reads) and automatic WINDOW_UPDATEs.
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

#include "core/net/socket.h"
#include "modules/health/probe_exchange.h"
#include "modules/http2/h2_common.h"

namespace torii {
namespace {

struct SessionDeleter {
    void operator()(nghttp2_session *s) const { nghttp2_session_del(s); }
};

class Http2Exchange final : public ProbeExchange {
public:
    Http2Exchange(const ProbeRequest &req, ProbeResponseSink &sink) : req_(req), sink_(sink) {}

    void start(Socket &s) override {
        nghttp2_session_callbacks *cbs;
        if (nghttp2_session_callbacks_new(&cbs) != 0) {
            fail("out of memory");
            return;
        }
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
        nghttp2_session *session = nullptr;
        int rv = nghttp2_session_client_new(&session, cbs, this);
        nghttp2_session_callbacks_del(cbs);
        if (rv != 0) {
            fail("out of memory");
            return;
        }
        session_.reset(session);
        nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
        nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
        auto nv = [](std::string_view name, std::string_view value) {
            return nghttp2_nv{reinterpret_cast<uint8_t *>(const_cast<char *>(name.data())),
                              reinterpret_cast<uint8_t *>(const_cast<char *>(value.data())),
                              name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
        };
        // A GET, or for a gRPC health check a POST of its message, with gRPC's fields.
        const nghttp2_nv head[] = {
            nv(":method", req_.grpc ? "POST" : "GET"),
            nv(":scheme", req_.tls ? "https" : "http"),
            nv(":authority", req_.authority),
            nv(":path", req_.path),
            nv("user-agent", "torii-health"),
            nv("content-type", "application/grpc"),
            nv("te", "trailers"),
        };
        constexpr size_t kGetFields = 5;  // the GET stops before content-type
        nghttp2_data_provider body{};
        body.read_callback = read_body;
        id_ =
            nghttp2_submit_request(session, nullptr, head, req_.grpc ? std::size(head) : kGetFields,
                                   req_.grpc ? &body : nullptr, nullptr);
        if (id_ < 0) {
            fail(std::string("HTTP/2: ") + nghttp2_strerror(id_));
            return;
        }
        send(s);
    }

    void on_read(Socket &s) override {
        if (done_) return;
        if (int rv = h2::recv_all(session_.get(), s.input())) {
            fail(std::string("HTTP/2: ") + nghttp2_strerror(rv));
            return;
        }
        if (done_) return;
        send(s);  // SETTINGS ACK, WINDOW_UPDATE; a GOAWAY after a connection error
        if (done_) return;
        // Bytes that are no HTTP/2 (an HTTP/1.1 server's answer to the preface) end the
        // session inside nghttp2, which reads no more once its GOAWAY is out: say why.
        if (!nghttp2_session_want_read(session_.get())) {
            fail("HTTP/2: " +
                 (error_.empty() ? std::string("the target ended the session") : error_));
            return;
        }
        if (s.eof())
            fail(head_seen_ ? "connection closed in the middle of the body"
                            : "connection closed before the response");
    }

private:
    static Http2Exchange *self(void *p) { return static_cast<Http2Exchange *>(p); }

    void send(Socket &s) {
        // Only a few small frames ever go out: the high-water mark is never reached.
        if (int rv = h2::send_all(session_.get(), s, 64 * 1024, 16 * 1024))
            fail(std::string("HTTP/2: ") + nghttp2_strerror(rv));
    }

    void fail(std::string why) {
        if (done_) return;
        done_ = true;
        sink_.on_probe_failed(std::move(why));
    }

    // The request body (a gRPC health check's message), handed over whole: it is a few bytes.
    static ssize_t read_body(nghttp2_session *, int32_t, uint8_t *buf, size_t length,
                             uint32_t *data_flags, nghttp2_data_source *, void *user) {
        Http2Exchange *x = self(user);
        const size_t n = std::min(length, x->req_.body.size() - x->body_sent_);
        std::memcpy(buf, x->req_.body.data() + x->body_sent_, n);
        x->body_sent_ += n;
        if (x->body_sent_ == x->req_.body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
    }

    static int on_header(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                         void *user) {
        Http2Exchange *x = self(user);
        if (x->done_ || frame->hd.stream_id != x->id_) return 0;
        // RFC 7541's size of a field (32 bytes of overhead each), as SETTINGS count it; the
        // trailers count with the head.
        x->head_bytes_ += namelen + valuelen + 32;
        if (x->head_bytes_ > kProbeMaxHead) {
            x->fail("response head over 16 KiB");
            return 0;
        }
        std::string_view n(reinterpret_cast<const char *>(name), namelen);
        if (x->head_seen_ || (x->status_ >= 200 && !n.empty() && n[0] != ':')) {  // head, trailer
            const bool trailer = x->head_seen_ || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
            x->sink_.on_probe_field(
                n, std::string_view(reinterpret_cast<const char *>(value), valuelen), trailer);
            return 0;
        }
        if (n == ":status") {
            const char *v = reinterpret_cast<const char *>(value);
            int status = 0;
            std::from_chars(v, v + valuelen, status);  // nghttp2 checked: three digits
            x->status_ = status;
        }
        return 0;
    }

    static int on_frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *user) {
        Http2Exchange *x = self(user);
        if (x->done_ || frame->hd.stream_id != x->id_ || frame->hd.type != NGHTTP2_HEADERS ||
            x->head_seen_)
            return 0;
        if (x->status_ < 200) {  // an interim response (100, 103): the final one follows
            x->status_ = 0;
            return 0;
        }
        x->head_seen_ = true;
        if (!x->sink_.on_probe_head(x->status_)) x->done_ = true;
        return 0;
    }

    static int on_data_chunk(nghttp2_session *, uint8_t, int32_t stream_id, const uint8_t *data,
                             size_t len, void *user) {
        Http2Exchange *x = self(user);
        if (x->done_ || stream_id != x->id_ || !x->head_seen_) return 0;
        if (!x->sink_.on_probe_body(reinterpret_cast<const char *>(data), len)) x->done_ = true;
        return 0;
    }

    // nghttp2's reason for a connection error ("Received frame exceeds max frame size"...).
    static int on_error(nghttp2_session *, int, const char *msg, size_t len, void *user) {
        Http2Exchange *x = self(user);
        if (x->error_.empty()) x->error_.assign(msg, len);
        return 0;
    }

    static int on_stream_close(nghttp2_session *, int32_t stream_id, uint32_t error_code,
                               void *user) {
        Http2Exchange *x = self(user);
        if (x->done_ || stream_id != x->id_) return 0;
        if (error_code != NGHTTP2_NO_ERROR || !x->head_seen_) {
            x->fail(std::string("HTTP/2 stream reset: ") + nghttp2_http2_strerror(error_code));
            return 0;
        }
        x->done_ = true;
        x->sink_.on_probe_end();
        return 0;
    }

    ProbeRequest req_;  // read by start(), which comes later (nghttp2 copies the fields)
    ProbeResponseSink &sink_;
    std::unique_ptr<nghttp2_session, SessionDeleter> session_;
    int32_t id_ = -1;
    size_t body_sent_ = 0;
    int status_ = 0;
    size_t head_bytes_ = 0;
    std::string error_;
    bool head_seen_ = false;
    bool done_ = false;
};

}  // namespace

std::unique_ptr<ProbeExchange> make_http2_exchange(const ProbeRequest &req,
                                                   ProbeResponseSink &sink) {
    return std::make_unique<Http2Exchange>(req, sink);
}

}  // namespace torii
