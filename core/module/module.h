// Compiled-in modules: the protocol codecs a connection can be handed to and the services a
// worker runs (the admin listener). They are listed explicitly in modules/modules.cc, in
// the order they are consulted; nothing registers itself from a static initialiser.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/base/socket_address.h"

namespace torii {

class Worker;
class Socket;
class ClientConnection;
struct ServerGroup;

struct Module {
    const char *name;

    // Codec modules. `alpn` is the protocol id they speak ("http/1.1", "h2"); `accept`
    // takes a connection whose transport is ready (TLS done) and returns it registered
    // with the worker, or nullptr after closing it.
    const char *alpn = nullptr;
    ClientConnection *(*accept)(Worker &worker, std::unique_ptr<Socket> sock,
                                const SocketAddress &peer, const ServerGroup &group) = nullptr;

    // Service modules: called once per worker after its servers are built.
    Result<void> (*init_worker)(Worker &worker) = nullptr;
};

// The compiled-in modules, each defined beside its code.
extern const Module http1_module;   // core/server/http1_connection.cc
extern const Module admin_module;   // modules/admin/admin_server.cc
extern const Module http2_module;   // modules/http2/http2_connection.cc
extern const Module stream_module;  // modules/stream/tcp_server.cc (tcp servers)

// Every compiled-in module, in order (modules/modules.cc).
const std::vector<const Module *> &modules();
// The codec module for an ALPN id, or nullptr.
const Module *codec_for_alpn(std::string_view alpn);

}  // namespace torii
