// The pid file that `torii -s` and init systems use to find the running master.
#pragma once

#include <string>

namespace torii {

// Writes getpid() to `path` (nothing for an empty path); prints why on failure.
bool write_pid_file(const std::string &path);
// Removes it, only if it still names this process (a newer instance may own it now).
void remove_pid_file(const std::string &path);

}  // namespace torii
