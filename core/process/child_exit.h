// How a process forked by the master (a worker, the fleet process) ends, and what the master
// does before each fork so that ending is safe.
#pragma once

namespace torii {

// Before fork(): empties this process's stdio buffers, so that a child never holds a copy of
// bytes the parent has yet to write.
void flush_before_fork();

// Ends a forked child with `code` once it has freed what it owns. Never returns.
//
// Not exit(): the child's atexit list and stdio buffers are copies of the master's. exit()
// would run the master's handlers (static destructors, OpenSSL's cleanup) once more in every
// worker, on state the master still owns. So a child leaves through _exit(), after flushing
// only its own stdio output (flush_before_fork emptied the inherited buffers).
//
// In the sanitizer build LeakSanitizer's check, which runs from atexit, would then never see
// a worker: it is called here explicitly instead. The master's objects still sit in the
// child's copy of memory, reachable from the stack frames below, so what is reported is what
// the child itself allocated and lost. A leak makes the process exit with LSan's exit code.
[[noreturn]] void exit_forked_child(int code);

}  // namespace torii
