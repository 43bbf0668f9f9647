#include "core/proxy/upstream_connection.h"

#include "core/proxy/upstream.h"
#include "core/worker/worker.h"

namespace torii {

UpstreamConnection::UpstreamConnection(UpstreamRuntime &upstream, int target, Socket *sock)
    : upstream_(upstream), target_(target), sock_(sock) {}

UpstreamConnection::~UpstreamConnection() = default;

void UpstreamConnection::park(int64_t idle_timeout_ms) {
    sock_->set_handler(this);
    // The write event is not armed when idle, so its timeout value needs no reset.
    sock_->set_read_timeout(idle_timeout_ms);
    sock_->resume_read();
}

void UpstreamConnection::retire(std::unique_ptr<UpstreamConnection> conn) {
    if (!conn) return;
    if (conn->sock_) conn->sock_->detach();
    Worker::current().defer_delete(std::move(conn));
}

void UpstreamConnection::on_socket_read(Socket &) {
    upstream_.drop_idle(this);
}
void UpstreamConnection::on_socket_error(Socket &, int) {
    upstream_.drop_idle(this);
}
void UpstreamConnection::on_socket_timeout(Socket &, bool) {
    upstream_.drop_idle(this);
}

}  // namespace torii
