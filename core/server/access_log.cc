#include "core/server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "core/http/request.h"
#include "core/server/log_format.h"

namespace torii {

namespace {
int log_fd = -1;
std::string log_path;
std::shared_ptr<const LogFormat> log_format;
std::string pending;
constexpr size_t kFlushAt = 32 * 1024;
}  // namespace

bool access_log_open(const std::string &target, std::shared_ptr<const LogFormat> format,
                     std::string *error) {
    if (log_fd >= 0) ::close(log_fd);
    log_fd = -1;
    log_path.clear();
    if (!format) {
        auto compiled = LogFormat::compile({});
        if (!compiled) {  // cannot happen: the default is a fixed, valid format
            if (error) *error = "access_log_format: " + compiled.error();
            return false;
        }
        format = std::move(compiled.value());
    }
    log_format = std::move(format);
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
    if (!log_path.empty()) access_log_open(std::string(log_path), log_format, nullptr);
}

void access_log_write(Request &req) {
    if (log_fd < 0) return;
    log_format->append_line(req, pending);
    if (pending.size() >= kFlushAt) access_log_flush();
}

}  // namespace torii
