#include "core/base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/base/libevent_ptr.h"

namespace torii {

void UniqueFd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

static const char *level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::notice:
            return "notice";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
        case LogLevel::crit:
            return "crit";
    }
    return "?";
}

bool Log::parse_level(const std::string &name, LogLevel *out) {
    for (int i = 0; i <= static_cast<int>(LogLevel::crit); ++i) {
        if (name == level_name(static_cast<LogLevel>(i))) {
            *out = static_cast<LogLevel>(i);
            return true;
        }
    }
    return false;
}

bool Log::open(const std::string &target, LogLevel level, std::string *error) {
    level_ = level;
    if (target.empty() || target == "stderr") {
        if (fd_ > 2) ::close(fd_);
        fd_ = 2;
        path_.clear();
        return true;
    }
    int fd = ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (error) *error = "cannot open error_log \"" + target + "\": " + strerror(errno);
        return false;
    }
    if (fd_ > 2) ::close(fd_);
    fd_ = fd;
    path_ = target;
    return true;
}

void Log::reopen() {
    if (path_.empty()) return;
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;  // keep writing to the old file rather than losing lines
    if (fd_ > 2) ::close(fd_);
    fd_ = fd;
}

void Log::write(LogLevel level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}

void Log::vwrite(LogLevel level, const char *fmt, va_list ap) {
    char line[2048];
    time_t now = ::time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    int n = static_cast<int>(strftime(line, sizeof line, "%Y/%m/%d %H:%M:%S", &tm));
    n += snprintf(line + n, sizeof line - n, " [%s] %d: ", level_name(level),
                  static_cast<int>(getpid()));
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    n = m < 0 ? n : (n + m > static_cast<int>(sizeof line) - 2 ? sizeof line - 2 : n + m);
    line[n++] = '\n';
    // One write(2) per line: O_APPEND makes it atomic against other workers.
    ssize_t rc = ::write(fd_, line, n);
    (void)rc;
}

}  // namespace torii
