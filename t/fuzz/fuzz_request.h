// A Request for the targets that run torii's request-side code without a connection
// (template, rewrite, jwt): its head and fields as a client could have sent them, taken
// from the fuzz input. Views point into the input, which outlives the call.
#pragma once

#include <string_view>

#include "core/http/request.h"
#include "t/fuzz/fuzz_input.h"

namespace torii::fuzz {

// Fields, one per line: method, target, authority, remote address, then "Name: value"
// header lines to the end. The status byte comes first ($status, a response phase).
inline void fill_request(Request &req, Input &in) {
    int status = in.byte();
    req.input.method = in.field();
    req.input.target = in.field();
    req.input.authority = in.field();
    req.remote_addr = in.field();
    req.input.scheme = "http";
    size_t q = req.input.target.find('?');
    req.path = req.input.target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view{} : req.input.target.substr(q + 1);
    if (status) req.response.status = 100 + status * 2;
    for (int i = 0; i < 64 && !in.empty(); ++i) {
        std::string_view line = in.field();
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        req.input.headers.add(line.substr(0, colon), value);
        req.headers.add(line.substr(0, colon), value);
    }
}

}  // namespace torii::fuzz
