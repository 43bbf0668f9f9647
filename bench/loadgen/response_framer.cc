#include "bench/loadgen/response_framer.h"

#include <algorithm>

namespace torii::loadgen {

namespace {

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == y; });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

}  // namespace

void ResponseFramer::reset() {
    *this = ResponseFramer();
}

ResponseFramer::Result ResponseFramer::fail(const char *why) {
    state_ = State::kError;
    error_ = why;
    return Result::kError;
}

ResponseFramer::Result ResponseFramer::feed(std::string_view data, size_t *used) {
    size_t pos = 0;
    while (pos < data.size()) {
        switch (state_) {
            case State::kBody:
            case State::kChunkData: {
                const size_t take =
                    static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - pos));
                pos += take;
                remaining_ -= take;
                if (remaining_ > 0) break;
                if (state_ == State::kChunkData) {
                    state_ = State::kChunkDataEnd;
                    break;
                }
                state_ = State::kDone;
                *used = pos;
                return Result::kComplete;
            }
            case State::kUntilClose:
                pos = data.size();
                break;
            case State::kDone:
                *used = pos;
                return Result::kComplete;
            case State::kError:
                *used = pos;
                return Result::kError;
            default: {  // the head, the chunk framing and the trailers: lines
                const size_t nl = data.find('\n', pos);
                const size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
                const std::string_view piece = data.substr(pos, end - pos);
                pos = end;
                if (line_.size() + piece.size() > kMaxLine + 2) return fail("line too long");
                // Chunk-size lines are bounded one by one; heads and trailers also in all.
                if (state_ != State::kChunkSize && state_ != State::kChunkDataEnd) {
                    head_bytes_ += piece.size();
                    if (head_bytes_ > kMaxHead) return fail("head or trailers too long");
                }
                if (nl == std::string_view::npos) {
                    line_.append(piece);
                    break;
                }
                std::string_view line = piece;
                if (!line_.empty()) {
                    line_.append(piece);
                    line = line_;
                }
                if (line.size() < 2 || line[line.size() - 2] != '\r') return fail("bare LF");
                line.remove_suffix(2);
                if (line.find('\r') != std::string_view::npos) return fail("CR inside a line");
                const Result r = on_line(line);
                line_.clear();
                if (r != Result::kNeedMore) {
                    *used = pos;
                    return r;
                }
            }
        }
    }
    *used = pos;
    return state_ == State::kError ? Result::kError : Result::kNeedMore;
}

ResponseFramer::Result ResponseFramer::finish_at_eof() {
    if (state_ == State::kUntilClose) {
        state_ = State::kDone;
        keep_alive_ = false;
        return Result::kComplete;
    }
    if (state_ == State::kDone) return Result::kComplete;
    return fail("connection closed before the response ended");
}

ResponseFramer::Result ResponseFramer::on_line(std::string_view line) {
    switch (state_) {
        case State::kStatusLine:
            return on_status_line(line);
        case State::kHeaders:
            return on_header(line);
        case State::kChunkSize:
            return on_chunk_size(line);
        case State::kChunkDataEnd:
            if (!line.empty()) return fail("chunk longer than its size");
            state_ = State::kChunkSize;
            return Result::kNeedMore;
        case State::kTrailers:
            if (line.empty()) {
                state_ = State::kDone;
                return Result::kComplete;
            }
            if (line.front() == ' ' || line.front() == '\t' || line.find(':') == 0 ||
                line.find(':') == std::string_view::npos)
                return fail("bad trailer field");
            return Result::kNeedMore;
        default:
            return fail("internal: line in a body state");
    }
}

ResponseFramer::Result ResponseFramer::on_status_line(std::string_view line) {
    // HTTP-version SP 3DIGIT SP [reason-phrase]; the reason may be absent, its SP not always.
    constexpr std::string_view kPrefix = "HTTP/1.";
    if (line.size() < 12 || line.substr(0, kPrefix.size()) != kPrefix ||
        (line[7] != '0' && line[7] != '1') || line[8] != ' ' || !is_digit(line[9]) ||
        !is_digit(line[10]) || !is_digit(line[11]) || (line.size() > 12 && line[12] != ' '))
        return fail("bad status line");
    status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status_ < 100 || status_ > 599) return fail("status out of range");
    http10_ = line[7] == '0';
    state_ = State::kHeaders;
    return Result::kNeedMore;
}

ResponseFramer::Result ResponseFramer::on_header(std::string_view line) {
    if (line.empty()) return on_head_end();
    if (line.front() == ' ' || line.front() == '\t') return fail("obs-fold");
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return fail("field without a name");
    const std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return fail("space in a field name");
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
        if (value.empty() || value.size() > 18 ||
            !std::all_of(value.begin(), value.end(), is_digit))
            return fail("bad Content-Length");
        uint64_t n = 0;
        for (char c : value)
            n = n * 10 + static_cast<uint64_t>(c - '0');
        if (has_length_ && n != length_) return fail("conflicting Content-Length");
        has_length_ = true;
        length_ = n;
    } else if (iequals(name, "transfer-encoding")) {
        if (chunked_ || !iequals(value, "chunked"))
            return fail("transfer coding other than chunked");
        chunked_ = true;
    } else if (iequals(name, "connection")) {
        // A list of tokens: only close and keep-alive matter here.
        std::string_view rest = value;
        while (!rest.empty()) {
            const size_t comma = rest.find(',');
            const std::string_view token = trim(rest.substr(0, comma));
            if (iequals(token, "close")) close_ = true;
            if (iequals(token, "keep-alive")) keep_alive_token_ = true;
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
    }
    return Result::kNeedMore;
}

ResponseFramer::Result ResponseFramer::on_head_end() {
    if (status_ < 200) {
        // 1xx: an interim response, the final one follows. 101 would switch protocols, which
        // a GET from here never asks for.
        if (status_ == 101) return fail("unexpected 101");
        const size_t head = head_bytes_;
        reset();
        head_bytes_ = head;  // interim heads count against the same limit
        return Result::kNeedMore;
    }
    if (chunked_ && has_length_) return fail("both Content-Length and chunked");
    keep_alive_ = !close_ && (!http10_ || keep_alive_token_);
    if (status_ == 204 || status_ == 304) {
        state_ = State::kDone;
        return Result::kComplete;
    }
    if (chunked_) {
        state_ = State::kChunkSize;
        return Result::kNeedMore;
    }
    if (has_length_) {
        if (length_ == 0) {
            state_ = State::kDone;
            return Result::kComplete;
        }
        remaining_ = length_;
        state_ = State::kBody;
        return Result::kNeedMore;
    }
    keep_alive_ = false;
    state_ = State::kUntilClose;
    return Result::kNeedMore;
}

ResponseFramer::Result ResponseFramer::on_chunk_size(std::string_view line) {
    // chunk-size [BWS ; chunk-ext]: at most 15 hex digits, so the size cannot overflow.
    size_t i = 0;
    uint64_t size = 0;
    for (; i < line.size() && hex_value(line[i]) >= 0; ++i) {
        if (i == 15) return fail("chunk size too large");
        size = size * 16 + static_cast<uint64_t>(hex_value(line[i]));
    }
    if (i == 0) return fail("bad chunk size");
    const std::string_view rest = trim(line.substr(i));
    if (!rest.empty() && rest.front() != ';') return fail("bad chunk size");
    if (size == 0) {
        state_ = State::kTrailers;
        return Result::kNeedMore;
    }
    remaining_ = size;
    state_ = State::kChunkData;
    return Result::kNeedMore;
}

}  // namespace torii::loadgen
