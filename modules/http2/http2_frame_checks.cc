#include "modules/http2/http2_frame_checks.h"

#include "modules/http2/http2_stream.h"

namespace torii {

static constexpr int64_t kMaxWindow = (int64_t{1} << 31) - 1;

uint32_t Http2FrameChecks::on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd &hd,
                                          const std::vector<Http2Stream *> &streams) {
    if (hd.type == NGHTTP2_HEADERS && (hd.stream_id & 1)) {
        int32_t id = hd.stream_id;
        if (id > max_stream_id_) {
            int32_t next = max_stream_id_ + (max_stream_id_ ? 2 : 1);
            if (id > next) {  // skipped: those ids are closed now
                if (gaps_.size() == kMaxGaps) gaps_.erase(gaps_.begin());
                gaps_.push_back({next, id - 2});
            }
            max_stream_id_ = id;
            return 0;
        }
        for (const Gap &g : gaps_)
            if (id >= g.first && id <= g.last) return NGHTTP2_PROTOCOL_ERROR;
        return 0;  // trailers, or a stream nghttp2 judges itself
    }
    if (hd.type == NGHTTP2_SETTINGS && !(hd.flags & NGHTTP2_FLAG_ACK)) {
        initial_window_before_ =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        max_stream_window_before_ = 0;
        for (const Http2Stream *s : streams) {
            int32_t w = nghttp2_session_get_stream_remote_window_size(session, s->id());
            if (w > max_stream_window_before_) max_stream_window_before_ = w;
        }
    }
    return 0;
}

uint32_t Http2FrameChecks::on_settings(nghttp2_session *session) {
    int64_t now =
        nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    int64_t delta = now - static_cast<int64_t>(initial_window_before_);
    if (delta > 0 && max_stream_window_before_ + delta > kMaxWindow)
        return NGHTTP2_FLOW_CONTROL_ERROR;
    return 0;
}

}  // namespace torii
