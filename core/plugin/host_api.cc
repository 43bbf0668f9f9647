#include "core/plugin/host_api.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/base/hash64.h"
#include "core/base/log.h"
#include "core/http/field_chars.h"
#include "core/http/query_args.h"
#include "core/http/request.h"
#include "core/http/variables.h"
#include "core/plugin/phase_runner.h"
#include "core/plugin/plugin_conf.h"
#include "core/plugin/plugin_set.h"
#include "core/shm/shared_zone.h"
#include "core/server/http_server.h"
#include "core/server/query_mask.h"
#include "core/worker/worker.h"
#include "modules/grpc/grpc_status.h"

struct torii_timer {
    event *ev;
    void (*cb)(void *);
    void *arg;
    uint64_t ms = 0;                            // deferred: the delay to arm with
    torii::DeferredHandles *waiting = nullptr;  // deferred: the list it waits in
};

struct torii_io {
    event *ev;
    int fd;
    int events;
    void (*cb)(int fd, int events, void *arg);
    void *arg;
    torii::DeferredHandles *waiting = nullptr;
};

namespace torii {

namespace {

SharedZone *zone = nullptr;

Request &req_of(torii_request_t *r) {
    return *reinterpret_cast<Request *>(r);
}
std::string_view sv(torii_str_t s) {
    return {s.ptr ? s.ptr : "", s.len};
}
torii_str_t ts(std::string_view s) {
    return {s.data(), s.size()};
}

void host_log(torii_log_level_t level, const char *fmt, ...) {
    static const LogLevel map[] = {LogLevel::debug, LogLevel::info, LogLevel::notice,
                                   LogLevel::warn, LogLevel::error};
    LogLevel l = level >= 0 && level <= TORII_LOG_ERROR ? map[level] : LogLevel::error;
    if (!Log::enabled(l)) return;
    va_list ap;
    va_start(ap, fmt);
    Log::vwrite(l, fmt, ap);
    va_end(ap);
}

// ---- request head ----

torii_str_t req_method(torii_request_t *r) {
    return ts(req_of(r).input.method);
}
torii_str_t req_path(torii_request_t *r) {
    return ts(req_of(r).path);
}
torii_str_t req_query(torii_request_t *r) {
    return ts(req_of(r).query);
}

int req_set_path(torii_request_t *r, torii_str_t path) {
    Request &req = req_of(r);
    if (path.len == 0 || path.ptr[0] != '/' || req.head_sent) return TORII_EINVAL;
    req.path = req.arena.copy(sv(path));
    return TORII_OK;
}

int get_header(const HeaderList &list, torii_str_t name, torii_str_t *out) {
    bool found;
    std::string_view v = list.get(sv(name), &found);
    if (!found) return TORII_NOT_FOUND;
    *out = ts(v);
    return TORII_OK;
}

// Header names and values must not break the head they go into, nor be read differently by
// a backend: RFC 9110's token for names, visible characters, spaces and tabs for values.
bool valid_field(torii_str_t name, torii_str_t value) {
    return valid_field_name(sv(name)) && valid_field_value(sv(value));
}

int req_header(torii_request_t *r, torii_str_t name, torii_str_t *out) {
    return get_header(req_of(r).headers, name, out);
}
size_t req_header_count(torii_request_t *r) {
    return req_of(r).headers.size();
}
int req_header_at(torii_request_t *r, size_t i, torii_header_t *out) {
    const HeaderList &h = req_of(r).headers;
    if (i >= h.size()) return TORII_NOT_FOUND;
    out->name = ts(h[i].name);
    out->value = ts(h[i].value);
    return TORII_OK;
}

int req_set_header(torii_request_t *r, torii_str_t name, torii_str_t value) {
    Request &req = req_of(r);
    if (!valid_field(name, value)) return TORII_EINVAL;
    req.headers.set(req.arena.copy(sv(name)), req.arena.copy(sv(value)));
    return TORII_OK;
}
int req_add_header(torii_request_t *r, torii_str_t name, torii_str_t value) {
    Request &req = req_of(r);
    if (!valid_field(name, value)) return TORII_EINVAL;
    req.headers.add(req.arena.copy(sv(name)), req.arena.copy(sv(value)));
    return TORII_OK;
}
int req_remove_header(torii_request_t *r, torii_str_t name) {
    return req_of(r).headers.remove(sv(name)) ? TORII_OK : TORII_NOT_FOUND;
}

// ---- response head ----

int resp_status(torii_request_t *r) {
    return req_of(r).response.status;
}
int resp_header(torii_request_t *r, torii_str_t name, torii_str_t *out) {
    return get_header(req_of(r).response.headers, name, out);
}
int resp_set_header(torii_request_t *r, torii_str_t name, torii_str_t value) {
    Request &req = req_of(r);
    if (req.head_sent || !valid_field(name, value)) return TORII_EINVAL;
    req.response.headers.set(req.arena.copy(sv(name)), req.arena.copy(sv(value)));
    return TORII_OK;
}
int resp_add_header(torii_request_t *r, torii_str_t name, torii_str_t value) {
    Request &req = req_of(r);
    if (req.head_sent || !valid_field(name, value)) return TORII_EINVAL;
    req.response.headers.add(req.arena.copy(sv(name)), req.arena.copy(sv(value)));
    return TORII_OK;
}
int resp_remove_header(torii_request_t *r, torii_str_t name) {
    Request &req = req_of(r);
    if (req.head_sent) return TORII_EINVAL;
    return req.response.headers.remove(sv(name)) ? TORII_OK : TORII_NOT_FOUND;
}

// ---- variables and templates ----

int var(torii_request_t *r, torii_str_t name, torii_str_t *out) {
    std::string_view v;
    if (!get_variable(req_of(r), sv(name), &v)) return TORII_NOT_FOUND;
    *out = ts(v);
    return TORII_OK;
}

torii_template_t *template_compile(const torii_conf_t *conf, const char *key, torii_str_t text) {
    auto t = Template::compile(sv(text));
    if (!t) {
        if (conf) host_api()->conf_error(conf, key, "%s", t.error().c_str());
        return nullptr;
    }
    // Owned by the plugin set being loaded; templates are made in create().
    PluginSet *set = PluginSet::loading();
    if (!set) {
        log_error("template_compile called outside create(): refused");
        return nullptr;
    }
    return set->adopt(std::make_unique<torii_template>(torii_template{std::move(t.value())}));
}

int template_expand(torii_request_t *r, const torii_template_t *t, torii_str_t *out) {
    if (!t) return TORII_EINVAL;
    *out = ts(t->t.expand(req_of(r)));
    return TORII_OK;
}

// ---- respond, memory, pause ----

int respond(torii_request_t *r, int status, const torii_header_t *headers, size_t n,
            torii_str_t body) {
    Request &req = req_of(r);
    if (status < 100 || status > 599 || req.head_sent) return TORII_EINVAL;
    PluginResponse &pr = req.plugin_response;
    pr = PluginResponse{};
    pr.status = status;
    for (size_t i = 0; i < n; ++i) {
        if (!valid_field(headers[i].name, headers[i].value)) return TORII_EINVAL;
        pr.headers.add(req.arena.copy(sv(headers[i].name)), req.arena.copy(sv(headers[i].value)));
    }
    pr.body = req.arena.copy(sv(body));
    return TORII_OK;
}

void *req_alloc(torii_request_t *r, size_t size) {
    return req_of(r).arena.alloc(size);
}

uint64_t pause(torii_request_t *r) {
    return pause_request(req_of(r));
}
int resume(uint64_t token, torii_action_t action) {
    return resume_request(token, action);
}
torii_request_t *token_req(uint64_t token) {
    return reinterpret_cast<torii_request_t *>(token_request(token));
}

// ---- timers ----

void on_timer_cb(evutil_socket_t, short, void *ctx) {
    auto *t = static_cast<torii_timer *>(ctx);
    void (*cb)(void *) = t->cb;
    void *arg = t->arg;
    event_free(t->ev);
    delete t;
    cb(arg);
}

void arm_timer(torii_timer *t) {
    t->ev = evtimer_new(Worker::current().base(), on_timer_cb, t);
    timeval tv = to_timeval(static_cast<int64_t>(t->ms));
    evtimer_add(t->ev, &tv);
}

// From create() there is no loop yet: the handle waits in the set being loaded.
DeferredHandles *deferring() {
    if (Worker::has_current()) return nullptr;
    PluginSet *set = PluginSet::loading();
    return set ? &set->deferred() : nullptr;
}

template <class T>
void forget(std::vector<T *> &list, T *item) {
    for (auto it = list.begin(); it != list.end(); ++it)
        if (*it == item) {
            list.erase(it);
            return;
        }
}

torii_timer_t *timer_add(uint64_t ms, void (*cb)(void *), void *arg) {
    if (!cb) return nullptr;
    auto *t = new torii_timer{nullptr, cb, arg};
    t->ms = ms;
    if (DeferredHandles *d = deferring()) {
        t->waiting = d;
        d->timers.push_back(t);
        return t;
    }
    if (!Worker::has_current()) {  // no loop and no set being loaded: nowhere to run
        delete t;
        return nullptr;
    }
    arm_timer(t);
    return t;
}

void timer_cancel(torii_timer_t *t) {
    if (!t) return;
    if (t->waiting) forget(t->waiting->timers, t);
    if (t->ev) event_free(t->ev);
    delete t;
}

uint64_t now_ms() {
    return Worker::now_ms();
}

// ---- shared state ----

int64_t counter_add(torii_str_t key, int64_t delta) {
    return zone ? zone->counter_add(sv(key), delta) : 0;
}
int64_t counter_get(torii_str_t key) {
    return zone ? zone->counter_get(sv(key)) : 0;
}
int kv_set(torii_str_t key, const void *value, size_t len, uint64_t ttl_ms) {
    if (!zone) return TORII_EINVAL;
    return zone->kv_set(sv(key), value, len, ttl_ms) ? TORII_OK : TORII_EINVAL;
}
int kv_get(torii_str_t key, void *buf, size_t *len) {
    if (!zone) return TORII_EINVAL;
    return zone->kv_get(sv(key), buf, len) == 0 ? TORII_OK : TORII_NOT_FOUND;
}
int kv_delete(torii_str_t key) {
    if (!zone) return TORII_EINVAL;
    return zone->kv_delete(sv(key)) ? TORII_OK : TORII_NOT_FOUND;
}

int shared_update(torii_str_t key, void (*fn)(void *, size_t *, void *), void *arg,
                  uint64_t ttl_ms) {
    if (!zone || !fn) return TORII_EINVAL;
    return zone->update(sv(key), fn, arg, ttl_ms) ? TORII_OK : TORII_EINVAL;
}

void *shared_slot(torii_str_t key, size_t len) {
    return zone ? zone->slot(sv(key), len) : nullptr;
}

// ---- I/O watches ----

void on_io_cb(evutil_socket_t fd, short what, void *ctx) {
    auto *io = static_cast<torii_io *>(ctx);
    int events = ((what & EV_READ) ? TORII_IO_READ : 0) | ((what & EV_WRITE) ? TORII_IO_WRITE : 0);
    io->cb(static_cast<int>(fd), events, io->arg);
}

int io_update(torii_io_t *io, int events) {
    if (!io) return TORII_EINVAL;
    if (io->ev) event_free(io->ev);
    io->ev = nullptr;
    io->events = events & (TORII_IO_READ | TORII_IO_WRITE);
    if (io->events && !io->waiting) {
        short what = EV_PERSIST | ((io->events & TORII_IO_READ) ? EV_READ : 0) |
                     ((io->events & TORII_IO_WRITE) ? EV_WRITE : 0);
        io->ev = event_new(Worker::current().base(), io->fd, what, on_io_cb, io);
        event_add(io->ev, nullptr);
    }
    return TORII_OK;
}

torii_io_t *io_watch(int fd, int events, void (*cb)(int, int, void *), void *arg) {
    if (fd < 0 || !cb) return nullptr;
    auto *io = new torii_io{nullptr, fd, 0, cb, arg};
    if (DeferredHandles *d = deferring()) {
        io->waiting = d;
        d->ios.push_back(io);
    } else if (!Worker::has_current()) {
        delete io;
        return nullptr;
    }
    io_update(io, events);
    return io;
}

void io_unwatch(torii_io_t *io) {
    if (!io) return;
    if (io->waiting) forget(io->waiting->ios, io);
    if (io->ev) event_free(io->ev);
    delete io;
}

// ---- admin endpoints and route names ----

int admin_register(const char *path, const char *content_type, void (*fn)(void *, torii_buf_t *),
                   void *arg) {
    PluginSet *set = PluginSet::loading();
    if (!set || !path || !fn) return TORII_EINVAL;
    AdminEndpoint e{content_type ? content_type : "text/plain", fn, arg};
    return set->add_admin_endpoint(path, std::move(e)) ? TORII_OK : TORII_EINVAL;
}

void buf_append(torii_buf_t *out, torii_str_t text) {
    if (out && text.len) out->text.append(text.ptr, text.len);
}

torii_str_t req_server(torii_request_t *r) {
    const Request &req = req_of(r);
    const ServerConfig *cfg = req.server ? &req.server->config() : req.tcp_server;
    if (!cfg || cfg->listen_text.empty()) return ts({});
    return ts(cfg->listen_text.front());
}

torii_str_t req_location(torii_request_t *r) {
    const Request &req = req_of(r);
    return req.location ? ts(req.location->path) : ts({});
}

torii_str_t req_upstream(torii_request_t *r) {
    const Request &req = req_of(r);
    if (req.tcp_server) return ts(req.tcp_server->upstream);
    return req.location ? ts(req.location->upstream) : ts({});
}

int req_is_tcp(torii_request_t *r) {
    return req_of(r).tcp_server ? 1 : 0;
}

// ---- 1.3 ----

// Variables resolved once (var_ref), by handle. Process-wide: create() runs in the master
// and the workers inherit the table; names already known keep their handle.
std::vector<VarRef> &var_refs() {
    static std::vector<VarRef> refs;
    return refs;
}

int var_ref(torii_str_t name) {
    std::string_view n = sv(name);
    if (!n.empty() && n[0] == '$') n.remove_prefix(1);
    std::vector<VarRef> &refs = var_refs();
    for (size_t i = 0; i < refs.size(); ++i)
        if (refs[i].name == n) return static_cast<int>(i);
    VarRef ref;
    if (!resolve_variable(n, &ref)) return TORII_EINVAL;
    refs.push_back(std::move(ref));
    return static_cast<int>(refs.size() - 1);
}

int var_get(torii_request_t *r, int handle, torii_str_t *out) {
    const std::vector<VarRef> &refs = var_refs();
    if (handle < 0 || static_cast<size_t>(handle) >= refs.size()) return TORII_EINVAL;
    std::string_view v;
    if (!get_variable(req_of(r), refs[static_cast<size_t>(handle)], &v)) return TORII_NOT_FOUND;
    *out = ts(v);
    return TORII_OK;
}

int var_int(torii_request_t *r, int handle, int64_t *out) {
    const std::vector<VarRef> &refs = var_refs();
    if (handle < 0 || static_cast<size_t>(handle) >= refs.size()) return TORII_EINVAL;
    switch (get_variable_number(req_of(r), refs[static_cast<size_t>(handle)], out)) {
        case NumberResult::ok:
            return TORII_OK;
        case NumberResult::absent:
            return TORII_NOT_FOUND;
        case NumberResult::not_numeric:
            break;
    }
    return TORII_EINVAL;
}

void **req_ctx(torii_request_t *r) {
    return current_plugin_slot(req_of(r));
}

unsigned req_protocol(torii_request_t *r) {
    const Request &req = req_of(r);
    unsigned p = req.tcp_server                            ? TORII_PROTO_TCP
                 : req.input.version == HttpVersion::http2 ? TORII_PROTO_HTTP2
                                                           : TORII_PROTO_HTTP1;
    if (req.ssl) p |= TORII_PROTO_TLS;
    if (!req.tcp_server && is_grpc_request(req.input)) p |= TORII_PROTO_GRPC;
    if (req.input.upgrade) p |= TORII_PROTO_WEBSOCKET;
    return p;
}

int req_query_arg(torii_request_t *r, torii_str_t name, torii_str_t *out) {
    int rc = TORII_NOT_FOUND;
    each_query_arg(req_of(r).query, [&](std::string_view, std::string_view n, std::string_view v) {
        if (!query_arg_name_is(n, sv(name))) return false;
        *out = ts(v);
        rc = TORII_OK;
        return true;
    });
    return rc;
}

// The query without every argument called `name`, then `name=value` when `value` is given.
int rewrite_query(Request &req, std::string_view name, const std::string_view *value) {
    if (name.empty() || req.head_sent) return TORII_EINVAL;
    std::string q;
    q.reserve(req.query.size() + (value ? name.size() + value->size() + 2 : 0));
    each_query_arg(req.query, [&](std::string_view arg, std::string_view n, std::string_view) {
        if (!query_arg_name_is(n, name)) {
            if (!q.empty()) q += '&';
            q += arg;
        }
        return false;
    });
    if (value) {
        if (!q.empty()) q += '&';
        q += name;
        q += '=';
        q += *value;
    }
    req.query = req.arena.copy(q);
    return TORII_OK;
}

int req_set_query_arg(torii_request_t *r, torii_str_t name, torii_str_t value) {
    for (char c : sv(name))  // written as given: it must not cut the query elsewhere
        if (c == '&' || c == '=' || c == '#' || c == ' ' || static_cast<unsigned char>(c) < 0x21)
            return TORII_EINVAL;
    for (char c : sv(value))
        if (c == '&' || c == '#' || c == ' ' || static_cast<unsigned char>(c) < 0x21)
            return TORII_EINVAL;
    std::string_view v = sv(value);
    return rewrite_query(req_of(r), sv(name), &v);
}

int req_remove_query_arg(torii_request_t *r, torii_str_t name) {
    return rewrite_query(req_of(r), sv(name), nullptr);
}

void shared_each(torii_str_t prefix, void (*fn)(torii_str_t, int64_t, const void *, size_t, void *),
                 void *arg) {
    if (!zone || !fn) return;
    struct Visit {
        void (*fn)(torii_str_t, int64_t, const void *, size_t, void *);
        void *arg;
    } visit{fn, arg};
    zone->each(
        sv(prefix),
        [](std::string_view key, int64_t counter, const void *value, size_t len, void *ctx) {
            auto *v = static_cast<Visit *>(ctx);
            v->fn(ts(key), counter, value, len, v->arg);
        },
        &visit);
}

int req_set_consumer(torii_request_t *r, torii_str_t name) {
    Request &req = req_of(r);
    req.consumer = req.arena.copy(sv(name));
    return TORII_OK;
}

int log_mask_query_arg(torii_str_t name) {
    return query_mask_add(sv(name)) ? TORII_OK : TORII_EINVAL;
}

torii_host_t make_host() {
    torii_host_t h;
    std::memset(&h, 0, sizeof h);
    h.size = sizeof(torii_host_t);
    h.abi_major = TORII_PLUGIN_ABI_MAJOR;
    h.abi_minor = TORII_PLUGIN_ABI_MINOR;
    h.log = host_log;
    fill_conf_api(&h);
    h.req_method = req_method;
    h.req_path = req_path;
    h.req_query = req_query;
    h.req_set_path = req_set_path;
    h.req_header = req_header;
    h.req_header_count = req_header_count;
    h.req_header_at = req_header_at;
    h.req_set_header = req_set_header;
    h.req_add_header = req_add_header;
    h.req_remove_header = req_remove_header;
    h.resp_status = resp_status;
    h.resp_header = resp_header;
    h.resp_set_header = resp_set_header;
    h.resp_add_header = resp_add_header;
    h.resp_remove_header = resp_remove_header;
    h.var = var;
    h.template_compile = template_compile;
    h.template_expand = template_expand;
    h.respond = respond;
    h.req_alloc = req_alloc;
    h.pause = pause;
    h.resume = resume;
    h.token_request = token_req;
    h.timer_add = timer_add;
    h.timer_cancel = timer_cancel;
    h.now_ms = now_ms;
    h.counter_add = counter_add;
    h.counter_get = counter_get;
    h.kv_set = kv_set;
    h.kv_get = kv_get;
    h.kv_delete = kv_delete;
    h.shared_update = shared_update;
    h.io_watch = io_watch;
    h.io_update = io_update;
    h.io_unwatch = io_unwatch;
    h.admin_register = admin_register;
    h.buf_append = buf_append;
    h.req_server = req_server;
    h.req_location = req_location;
    h.req_upstream = req_upstream;
    h.shared_each = shared_each;
    h.req_set_consumer = req_set_consumer;
    h.log_mask_query_arg = log_mask_query_arg;  // 1.1
    h.req_is_tcp = req_is_tcp;                  // 1.2 (conf_is_tcp_server: fill_conf_api)
    h.hash64 = hash64;                          // 1.3 (conf_scope, conf_dir, conf_array_*:
    h.var_ref = var_ref;                        //      fill_conf_api)
    h.var_get = var_get;
    h.req_ctx = req_ctx;
    h.req_protocol = req_protocol;
    h.req_query_arg = req_query_arg;
    h.req_set_query_arg = req_set_query_arg;
    h.req_remove_query_arg = req_remove_query_arg;
    h.shared_slot = shared_slot;  // 1.4
    h.var_int = var_int;
    return h;
}

}  // namespace

void DeferredHandles::arm() {
    for (torii_timer *t : timers) {
        t->waiting = nullptr;
        arm_timer(t);
    }
    for (torii_io *io : ios) {
        io->waiting = nullptr;
        io_update(io, io->events);
    }
    timers.clear();
    ios.clear();
}

void DeferredHandles::release() {
    for (torii_timer *t : timers)
        delete t;
    for (torii_io *io : ios)
        delete io;
    timers.clear();
    ios.clear();
}

const torii_host_t *host_api() {
    static const torii_host_t host = make_host();
    return &host;
}

void set_shared_zone(SharedZone *z) {
    zone = z;
}
SharedZone *shared_zone() {
    return zone;
}

}  // namespace torii
