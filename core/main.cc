// torii's command line (SPEC section 1):
//   torii [-c FILE]              run in the foreground
//   torii -t [-c FILE]           check the config, print "ok" or the error, exit 0 / 1
//   torii -T [-c FILE]           check it as -t does, then print the effective config
//   torii -s reload|stop|quit    signal the running master found through pid_file
//   torii -v                     versions
#include <event2/event.h>
#include <nghttp2/nghttp2ver.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "core/base/pool_alloc.h"
#include "core/process/process.h"
#include "core/version.h"

namespace {

void usage(FILE *out) {
    fprintf(out,
            "usage: torii [-c FILE] [-t | -T] [-s reload|stop|quit|reopen] [-v]\n"
            "  -c FILE   configuration file (default conf/torii.toml)\n"
            "  -t        check the configuration and every plugin, then exit\n"
            "  -T        check as -t, then print the effective configuration (defaults\n"
            "            resolved, each location's plugin chain in run order) and exit\n"
            "  -s SIGNAL send reload, stop, quit or reopen to the running torii (pid_file)\n"
            "  -v        print versions and exit\n");
}

void print_versions() {
    printf("torii version %s\n", TORII_VERSION);
    printf("plugin ABI %d.%d\n", TORII_PLUGIN_ABI_MAJOR, TORII_PLUGIN_ABI_MINOR);
    printf("libevent %s\n", event_get_version());
    printf("OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
    printf("nghttp2 %s\n", NGHTTP2_VERSION);
}

// A build whose HTTP parser uses SSE4.2 (TORII_LLHTTP_SSE42 in CMakeLists.txt) says so and
// stops on a CPU without it, rather than dying of SIGILL on the first request it parses.
bool cpu_runs_this_build() {
#if defined(TORII_LLHTTP_SSE42)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("sse4.2")) {
        fprintf(stderr,
                "torii: this build parses HTTP with SSE4.2, which this CPU lacks; rebuild with "
                "cmake -DTORII_LLHTTP_SSE42=OFF\n");
        return false;
    }
#endif
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    if (!cpu_runs_this_build()) return 1;
    torii::pool::install_for_libevent();  // before any libevent object exists
    std::string config_file = "conf/torii.toml";
    bool test_only = false;
    bool dump = false;
    std::string signal_name;
    int opt;
    while ((opt = getopt(argc, argv, "c:tTs:vh")) != -1) {
        switch (opt) {
            case 'c':
                config_file = optarg;
                break;
            case 't':
                test_only = true;
                break;
            case 'T':
                dump = true;
                break;
            case 's':
                signal_name = optarg;
                break;
            case 'v':
                print_versions();
                return 0;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "torii: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (dump) return torii::dump_config(config_file);
    if (test_only) return torii::check_config(config_file);
    if (!signal_name.empty()) return torii::signal_running(config_file, signal_name);
    return torii::run_foreground(config_file);
}
