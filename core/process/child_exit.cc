#include "core/process/child_exit.h"

#include <unistd.h>

#include <cstdio>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace torii {

void flush_before_fork() {
    fflush(nullptr);
}

void exit_forked_child(int code) {
    fflush(nullptr);  // this child's own output only: the inherited buffers were empty
#if defined(__SANITIZE_ADDRESS__)
    // Honours ASAN_OPTIONS detect_leaks=0; reports and exits non-zero on a leak.
    __lsan_do_leak_check();
#endif
    _exit(code);
}

}  // namespace torii
