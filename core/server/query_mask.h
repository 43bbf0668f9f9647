// Credentials in request targets ("/x?apikey=..."): the access log writes the value of a query
// argument that carries one as "***". Which arguments: a built-in list of conventional names
// (apikey, access_token, password, ...) plus the names plugins register through
// host->log_mask_query_arg (auth's `query`). Names compare case-insensitively after
// percent-decoding, as an upstream reads them, so "api%4Bey=" is masked too.
#pragma once

#include <string>
#include <string_view>

namespace torii {

// Masks one more argument name for this process's life. false: empty or over 64 bytes.
bool query_mask_add(std::string_view name);

// Appends `target` to `out` with the value of every masked argument replaced by "***".
void append_masked_target(std::string &out, std::string_view target);
// The same for a query alone (what follows '?'): $args in the access log.
void append_masked_query(std::string &out, std::string_view query);

}  // namespace torii
