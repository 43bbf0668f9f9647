#include "core/http/http1_writer.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/base/small_copy.h"

namespace torii {

const char *status_reason(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 417:
            return "Expectation Failed";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

static size_t fields_size(const HeaderList &headers) {
    size_t n = 2;  // final CRLF
    for (const Header &h : headers)
        n += h.name.size() + h.value.size() + 4;
    return n;
}

static inline char *put(char *p, std::string_view s) {
    return copy_small(p, s);
}

static char *put_fields(char *p, const HeaderList &headers) {
    for (const Header &h : headers) {
        p = put(p, h.name);
        *p++ = ':';
        *p++ = ' ';
        p = put(p, h.value);
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

// Reserves `size` contiguous bytes at the end of `out`, fills them and commits once.
template <typename Fill>
static void write_contiguous(evbuffer *out, size_t size, Fill fill) {
    evbuffer_iovec v;
    if (evbuffer_reserve_space(out, static_cast<ev_ssize_t>(size), &v, 1) < 1) return;
    char *end = fill(static_cast<char *>(v.iov_base));
    v.iov_len = static_cast<size_t>(end - static_cast<char *>(v.iov_base));
    evbuffer_commit_space(out, &v, 1);
}

size_t request_head_size(std::string_view method, std::string_view target,
                         const HeaderList &headers) {
    return method.size() + 1 + target.size() + 11 + fields_size(headers);
}

char *put_request_head(char *p, std::string_view method, std::string_view target,
                       const HeaderList &headers) {
    p = put(p, method);
    *p++ = ' ';
    p = put(p, target);
    p = put(p, " HTTP/1.1\r\n");
    return put_fields(p, headers);
}

size_t response_head_size(int status, std::string_view reason, const HeaderList &headers) {
    if (reason.empty()) reason = status_reason(status);
    return 13 + reason.size() + 2 + fields_size(headers);
}

char *put_response_head(char *p, HttpVersion version, int status, std::string_view reason,
                        const HeaderList &headers) {
    if (reason.empty()) reason = status_reason(status);
    p = put(p, version == HttpVersion::http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    if (status < 100 || status > 999) status = 500;
    *p++ = char('0' + status / 100);
    *p++ = char('0' + status / 10 % 10);
    *p++ = char('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason);
    *p++ = '\r';
    *p++ = '\n';
    return put_fields(p, headers);
}

void write_request_head(evbuffer *out, std::string_view method, std::string_view target,
                        const HeaderList &headers) {
    write_contiguous(out, request_head_size(method, target, headers),
                     [&](char *p) { return put_request_head(p, method, target, headers); });
}

void write_response_head(evbuffer *out, HttpVersion version, int status, std::string_view reason,
                         const HeaderList &headers) {
    write_contiguous(out, response_head_size(status, reason, headers), [&](char *p) {
        return put_response_head(p, version, status, reason, headers);
    });
}

void write_chunk(evbuffer *out, evbuffer *data) {
    size_t len = evbuffer_get_length(data);
    if (len == 0) return;
    char line[24];
    int n = snprintf(line, sizeof line, "%zx\r\n", len);
    evbuffer_add(out, line, static_cast<size_t>(n));
    evbuffer_add_buffer(out, data);
    evbuffer_add(out, "\r\n", 2);
}

void write_last_chunk(evbuffer *out, const HeaderList *trailers) {
    static const HeaderList none;
    const HeaderList &t = trailers ? *trailers : none;
    write_contiguous(out, 3 + fields_size(t), [&](char *p) {
        p = put(p, "0\r\n");
        return put_fields(p, t);
    });
}

}  // namespace torii
