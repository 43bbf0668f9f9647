// A client connection of any protocol, as the worker's registry sees it: counted, drained
// on a graceful stop, freed through deferred deletion. The accept stage, HTTP/1.1 and later
// HTTP/2 and tunnels all register here; the worker names none of them.
#pragma once

#include "core/base/deletable.h"

namespace torii {

class ClientConnection : public Deletable {
public:
    // The worker is stopping: close now if idle, else after what is under way.
    virtual void shutdown_gracefully() = 0;
    // The worker ends now (shutdown_timeout passed, or the master retired its generation):
    // close at once, but the protocol's clean way (a WebSocket close frame, an HTTP/2
    // GOAWAY, a FIN; never a reset). Without an override the connection is closed when the
    // worker exits, a moment later.
    virtual void close_now() {}

    // The Worker's registry is an intrusive list: registering allocates nothing.
    ClientConnection *registry_prev = nullptr;
    ClientConnection *registry_next = nullptr;
};

}  // namespace torii
