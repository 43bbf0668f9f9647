// The error log: leveled lines to stderr or a file, "2026/11/22 10:00:00 [warn] 1234: text".
// Writes are unbuffered appends of whole lines so concurrent workers never interleave lines.
#pragma once

#include <cstdarg>
#include <string>

namespace torii {

enum class LogLevel { debug = 0, info, notice, warn, error, crit };

class Log {
public:
    // "stderr" or a path; an unusable path falls back to stderr with a warning.
    static bool open(const std::string &target, LogLevel level, std::string *error);
    static void reopen();  // SIGUSR1: logrotate moved the file
    static void set_level(LogLevel level) { level_ = level; }
    static bool enabled(LogLevel level) { return level >= level_; }
    static bool parse_level(const std::string &name, LogLevel *out);

    static void write(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    static void vwrite(LogLevel level, const char *fmt, va_list ap);

private:
    static inline LogLevel level_ = LogLevel::info;
    static inline int fd_ = 2;
    static inline std::string path_;
};

#define TORII_LOG(level, ...)                                                      \
    do {                                                                           \
        if (::torii::Log::enabled(level)) ::torii::Log::write(level, __VA_ARGS__); \
    } while (0)
#define log_debug(...) TORII_LOG(::torii::LogLevel::debug, __VA_ARGS__)
#define log_info(...) TORII_LOG(::torii::LogLevel::info, __VA_ARGS__)
#define log_notice(...) TORII_LOG(::torii::LogLevel::notice, __VA_ARGS__)
#define log_warn(...) TORII_LOG(::torii::LogLevel::warn, __VA_ARGS__)
#define log_error(...) TORII_LOG(::torii::LogLevel::error, __VA_ARGS__)

}  // namespace torii
