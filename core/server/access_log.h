// The access log: one line per exchange in nginx's "combined" format plus the request time
// and the upstream address, with credentials in the query masked (query_mask.h). Lines are
// buffered in memory and written in batches (every second or every 32 KiB), so the request
// path never waits on the disk.
#pragma once

#include <string>

namespace torii {

struct Request;

// "off" disables; otherwise an absolute path, opened for appending.
bool access_log_open(const std::string &target, std::string *error);
void access_log_write(const Request &req);
void access_log_flush();
void access_log_reopen();

}  // namespace torii
