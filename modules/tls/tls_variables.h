// The $ssl_* variables of a request that arrived over TLS: $ssl_protocol ("TLSv1.3"),
// $ssl_cipher, $ssl_server_name (SNI), $ssl_client_s_dn (RFC 2253, mTLS).
#pragma once

#include <string_view>

struct ssl_st;

namespace torii {

class Arena;

// True for the names above (without '$').
bool is_tls_variable(std::string_view name);
// The value for `ssl`, with strings in `arena`; false when the connection has no such value
// (plain HTTP, no SNI, no client certificate).
bool tls_variable(ssl_st *ssl, std::string_view name, Arena &arena, std::string_view *out);

}  // namespace torii
