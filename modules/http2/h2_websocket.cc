#include "modules/http2/h2_websocket.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "core/base/arena.h"
#include "core/http/request.h"

namespace torii::h2 {

std::string_view websocket_handshake_from_connect(Request &req) {
    RequestHead &in = req.input;
    in.method = "GET";
    in.upgrade = true;
    in.chunked = false;  // the stream's DATA is the tunnel's, not a request body
    in.content_length = -1;
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {  // never seen fail; a key must still differ
        uint64_t t = reinterpret_cast<uintptr_t>(&req) ^ req.start_ms;
        std::memcpy(nonce, &t, sizeof t);
        std::memcpy(nonce + 8, &t, sizeof t);
    }
    char *key = req.arena.alloc(25);  // base64 of 16 bytes: 24 characters and a NUL
    EVP_EncodeBlock(reinterpret_cast<unsigned char *>(key), nonce, sizeof nonce);
    std::string_view k(key, 24);
    in.headers.add("upgrade", "websocket");
    in.headers.add("sec-websocket-key", k);
    return k;
}

bool websocket_accept_matches(std::string_view key, std::string_view accept) {
    static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char joined[64];
    if (key.size() + kGuid.size() > sizeof joined) return false;
    std::memcpy(joined, key.data(), key.size());
    std::memcpy(joined + key.size(), kGuid.data(), kGuid.size());
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<unsigned char *>(joined), key.size() + kGuid.size(), digest);
    unsigned char expected[32];
    int n = EVP_EncodeBlock(expected, digest, sizeof digest);
    return accept.size() == static_cast<size_t>(n) &&
           std::memcmp(accept.data(), expected, accept.size()) == 0;
}

}  // namespace torii::h2
