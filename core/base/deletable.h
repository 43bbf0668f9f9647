// Objects that may be asked to go away from inside their own callbacks (connections,
// request handlers) derive from Deletable and are handed to Worker::defer_delete, which frees
// them after the current event callback has returned (Envoy's deferredDelete).
#pragma once

namespace torii {

class Deletable {
public:
    virtual ~Deletable() = default;
};

}  // namespace torii
