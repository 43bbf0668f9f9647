#include "core/process/pid_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace torii {

bool write_pid_file(const std::string &path) {
    if (path.empty()) return true;
    FILE *f = fopen(path.c_str(), "w");
    if (!f) {
        fprintf(stderr, "torii: cannot write pid_file \"%s\": %s\n", path.c_str(), strerror(errno));
        return false;
    }
    fprintf(f, "%d\n", static_cast<int>(getpid()));
    fclose(f);
    return true;
}

void remove_pid_file(const std::string &path) {
    if (path.empty()) return;
    std::ifstream in(path);
    long pid = 0;
    if (in >> pid && pid == static_cast<long>(getpid())) unlink(path.c_str());
}

}  // namespace torii
