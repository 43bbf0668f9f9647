// HTTP/1.1 probe exchange: one `GET path` with Connection: close, the response read with
// torii's own response parser (llhttp, strict), so Content-Length, chunked and read-to-EOF
// bodies are framed exactly as for proxied responses.
#include <event2/buffer.h>

#include "core/base/arena.h"
#include "core/http/http1_parser.h"
#include "core/http/message.h"
#include "core/net/socket.h"
#include "modules/health/probe_exchange.h"

namespace torii {
namespace {

class Http1Exchange final : public ProbeExchange {
public:
    Http1Exchange(const ProbeRequest &req, ProbeResponseSink &sink)
        : request_("GET " + req.path + " HTTP/1.1\r\nHost: " + req.authority +
                   "\r\nUser-Agent: torii-health\r\nConnection: close\r\n\r\n"),
          sink_(sink) {}

    void start(Socket &s) override {
        parser_.begin_response(&head_, &arena_, false);
        evbuffer_add(s.output(), request_.data(), request_.size());
        s.flush();
    }

    void on_read(Socket &s) override {
        if (done_) return;
        if (!parse(s)) return;
        if (!pass_body()) return;
        if (!s.eof()) return;
        // The peer closed before the message ended by its own framing: a body delimited by
        // the close completes here; anything else was cut short.
        ParseEvent ev = parser_.finish();
        if (ev == ParseEvent::message_complete && head_seen_) {
            done_ = true;
            sink_.on_probe_end();
            return;
        }
        fail(head_seen_ ? "connection closed in the middle of the body"
                        : "connection closed before the response");
    }

private:
    // Runs the parser over the input; false once the exchange is over.
    bool parse(Socket &s) {
        for (;;) {
            size_t before = evbuffer_get_length(s.input());
            ParseEvent ev = parser_.feed(s.input(), body_.get());
            if (!head_seen_) {
                // Head bytes are consumed as they are parsed (pieces go to the arena), so
                // what left the input before the final head is the head's size so far.
                head_bytes_ += before - evbuffer_get_length(s.input());
                if (head_bytes_ > kProbeMaxHead) {
                    fail("response head over 16 KiB");
                    return false;
                }
            }
            switch (ev) {
                case ParseEvent::head_complete:
                    if (head_.status < 200) {
                        interim_ = head_.status != 101;  // 101: the upgrade event follows
                        continue;
                    }
                    head_seen_ = true;
                    if (!sink_.on_probe_head(head_.status)) return stop();
                    continue;
                case ParseEvent::message_complete:
                    if (interim_) {  // 100 Continue, 103 Early Hints: the answer follows
                        interim_ = false;
                        head_.clear();
                        parser_.begin_response(&head_, &arena_, false);
                        continue;
                    }
                    if (!pass_body()) return false;
                    done_ = true;
                    sink_.on_probe_end();
                    return false;
                case ParseEvent::upgrade:
                    // 101 Switching Protocols to a GET that asked for none: judged by its
                    // status like any other, with no body to look into.
                    head_seen_ = true;
                    if (!sink_.on_probe_head(head_.status)) return stop();
                    done_ = true;
                    sink_.on_probe_end();
                    return false;
                case ParseEvent::error:
                    fail(std::string("invalid response: ") + parser_.error_reason());
                    return false;
                case ParseEvent::body_full:
                case ParseEvent::need_more:
                    return true;
            }
        }
    }

    // Hands the buffered body to the sink; false once the sink has its verdict.
    bool pass_body() {
        evbuffer *b = body_.get();
        while (evbuffer_get_length(b) > 0) {
            evbuffer_iovec v;
            if (evbuffer_peek(b, -1, nullptr, &v, 1) < 1) break;
            bool more = sink_.on_probe_body(static_cast<const char *>(v.iov_base), v.iov_len);
            evbuffer_drain(b, v.iov_len);
            if (!more) return stop();
        }
        return true;
    }

    bool stop() {
        done_ = true;
        return false;
    }

    void fail(std::string why) {
        done_ = true;
        sink_.on_probe_failed(std::move(why));
    }

    std::string request_;
    ProbeResponseSink &sink_;
    Arena arena_;
    ResponseHead head_;
    Http1Parser parser_{Http1Parser::Kind::response};
    EvbufferPtr body_ = make_evbuffer();
    size_t head_bytes_ = 0;
    bool head_seen_ = false;
    bool interim_ = false;
    bool done_ = false;
};

}  // namespace

std::unique_ptr<ProbeExchange> make_http1_exchange(const ProbeRequest &req,
                                                   ProbeResponseSink &sink) {
    return std::make_unique<Http1Exchange>(req, sink);
}

}  // namespace torii
