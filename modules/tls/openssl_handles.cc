#include "modules/tls/openssl_handles.h"

#include <openssl/err.h>

namespace torii {

std::string openssl_errors(const char *fallback) {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        // "error:0A000086:SSL routines::certificate verify failed" -> keep the reason
        const char *reason = ERR_reason_error_string(e);
        if (!out.empty()) out += "; ";
        out += reason ? reason : buf;
    }
    return out.empty() ? fallback : out;
}

}  // namespace torii
