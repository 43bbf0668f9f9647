#include "core/server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/config/config.h"
#include "core/http/request.h"
#include "core/server/query_mask.h"
#include "core/worker/worker.h"

namespace torii {

namespace {
int log_fd = -1;
std::string log_path;
std::string pending;
constexpr size_t kFlushAt = 32 * 1024;
}  // namespace

bool access_log_open(const std::string &target, std::string *error) {
    if (log_fd >= 0) ::close(log_fd);
    log_fd = -1;
    log_path.clear();
    if (target.empty() || target == "off") return true;
    int fd = ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (error) *error = "cannot open access_log \"" + target + "\": " + strerror(errno);
        return false;
    }
    log_fd = fd;
    log_path = target;
    pending.reserve(kFlushAt + 1024);
    return true;
}

void access_log_flush() {
    if (log_fd < 0 || pending.empty()) return;
    ssize_t rc = ::write(log_fd, pending.data(), pending.size());
    (void)rc;
    pending.clear();
}

void access_log_reopen() {
    access_log_flush();
    if (!log_path.empty()) access_log_open(std::string(log_path), nullptr);
}

// Escapes what could forge a log line (quotes, backslashes, control bytes).
static void append_escaped(std::string &out, std::string_view s) {
    for (char c : s) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
            static_cast<unsigned char>(c) == 0x7f) {
            char esc[5];
            snprintf(esc, sizeof esc, "\\x%02X", static_cast<unsigned char>(c));
            out += esc;
        } else {
            out += c;
        }
    }
}

static void append_quoted(std::string &out, std::string_view s) {
    out += '"';
    if (s.empty()) out += '-';
    append_escaped(out, s);
    out += '"';
}

void access_log_write(const Request &req) {
    if (log_fd < 0) return;
    char time_buf[40];
    time_t now = ::time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(time_buf, sizeof time_buf, "%d/%b/%Y:%H:%M:%S %z", &tm);
    pending += req.remote_addr;
    pending += " - - [";
    pending += time_buf;
    pending += "] \"";
    if (req.tcp_server) {
        // A TCP session has no request line: "TCP <the server's address>" stands in for it
        // (bytes sent = to the client; $request_length has those from it).
        pending += "TCP ";
        pending += req.tcp_server->listen_text.front();
        pending += "\" ";
    } else {
        pending += req.input.method;
        pending += ' ';
        // No credentials from the query; and a target is client input like any header (an
        // HTTP/2 :path may hold '"'): escaped like them.
        static std::string target;
        target.clear();
        append_masked_target(target, req.input.target);
        append_escaped(pending, target);
        pending += req.input.version == HttpVersion::http10  ? " HTTP/1.0\" "
                   : req.input.version == HttpVersion::http2 ? " HTTP/2.0\" "
                                                             : " HTTP/1.1\" ";
    }
    char nums[96];
    double secs = static_cast<double>(Worker::now_ms() - req.start_ms) / 1000.0;
    snprintf(nums, sizeof nums, "%d %llu ", req.response.status,
             static_cast<unsigned long long>(req.bytes_sent));
    pending += nums;
    append_quoted(pending, req.input.headers.get("referer"));
    pending += ' ';
    append_quoted(pending, req.input.headers.get("user-agent"));
    snprintf(nums, sizeof nums, " %.3f ", secs);
    pending += nums;
    pending += req.upstream_addr.empty() ? std::string_view("-") : req.upstream_addr;
    pending += '\n';
    if (pending.size() >= kFlushAt) access_log_flush();
}

}  // namespace torii
