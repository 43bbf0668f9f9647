// The access log: one line per exchange in the format of `[main] access_log_format`
// (core/server/log_format.h; by default nginx's "combined" plus the request time and the
// upstream address), with credentials in the query masked (query_mask.h). Lines are
// buffered in memory and written in batches (every second or every 32 KiB), so the request
// path never waits on the disk.
#pragma once

#include <memory>
#include <string>

namespace torii {

struct Request;
class LogFormat;

// "off" disables; otherwise an absolute path, opened for appending. `format` null: the
// default format.
bool access_log_open(const std::string &target, std::shared_ptr<const LogFormat> format,
                     std::string *error);
void access_log_write(Request &req);
void access_log_flush();
void access_log_reopen();

}  // namespace torii
