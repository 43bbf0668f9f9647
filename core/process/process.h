// The process model: what `torii` does with its config once the command line is read.
// Today one process opens the listening sockets and runs one worker loop in itself; the
// master/worker split and graceful reload (issue #6) replace run_foreground's body.
#pragma once

#include <string>

namespace torii {

// -t: load and validate; prints "ok" to stdout or the error to stderr. Exit code 0 / 1.
int check_config(const std::string &file);
// -T: the same checks, then the effective configuration on stdout instead of "ok"
// (core/process/config_dump.h). Errors and exit codes as -t.
int dump_config(const std::string &file);
// -s NAME: sends the signal for reload|stop|quit to the pid in the config's pid_file.
int signal_running(const std::string &file, const std::string &name);
// Runs until stopped by a signal. Exit code 0, or 1 when the config or a socket fails.
int run_foreground(const std::string &file);

}  // namespace torii
