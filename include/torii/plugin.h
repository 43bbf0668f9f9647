/* torii plugin ABI, version 1 (minor 4).
 *
 * The one header a plugin needs. A plugin is a shared object that exports exactly one
 * symbol, `torii_plugin_entry`, returning a descriptor (torii_plugin_t) with the ABI
 * version it was built for and the hooks it implements. torii calls the hooks; the hooks
 * call back into torii only through the function table (torii_host_t) they are handed.
 *
 * Rules of the ABI
 * - Pure C: plain structs, fixed-width integers, no C++ types, nothing thrown across it.
 * - Strings are {ptr, len} (torii_str_t), not NUL-terminated unless said otherwise.
 *   Strings the host returns stay valid until the request ends (request data) or the
 *   instance is destroyed (config data); copy them to keep them longer.
 * - Versioning: the major number must match the host's exactly or the plugin is refused
 *   with a message naming both. Minor versions only add: new host functions and new
 *   descriptor fields go at the end of their struct, whose first member is its own size, so
 *   both sides can tell what the other knows (TORII_HOST_HAS below).
 * - Every hook may be NULL except where a comment says otherwise.
 * - Threading: each worker process runs one single-threaded event loop. Hooks of one
 *   worker never run concurrently; state shared between workers goes through the host's
 *   shared counters and key/value store.
 * - A hook must not block (no sleeping, no synchronous network or disk I/O): pause the
 *   request and resume it from a timer or your own non-blocking I/O instead.
 */
#ifndef TORII_PLUGIN_H
#define TORII_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TORII_PLUGIN_ABI_MAJOR 1
#define TORII_PLUGIN_ABI_MINOR 4

/* The exported entry point's name, and the export attribute for it. */
#define TORII_PLUGIN_ENTRY torii_plugin_entry
#if defined(__GNUC__)
#define TORII_EXPORT __attribute__((visibility("default")))
#else
#define TORII_EXPORT
#endif

typedef struct torii_str {
    const char *ptr;
    size_t len;
} torii_str_t;

#define TORII_STR(literal) ((torii_str_t){(literal), sizeof(literal) - 1})

typedef struct torii_header {
    torii_str_t name;
    torii_str_t value;
} torii_header_t;

/* Opaque handles owned by the host. */
typedef struct torii_request torii_request_t;   /* one exchange; valid during a hook   */
typedef struct torii_conf torii_conf_t;         /* a TOML table of the config           */
typedef struct torii_timer torii_timer_t;       /* a one-shot timer                     */
typedef struct torii_template torii_template_t; /* a compiled "$var text" template     */
typedef struct torii_io torii_io_t;             /* a watched file descriptor            */
typedef struct torii_buf torii_buf_t;           /* an output buffer the host owns       */

#define TORII_IO_READ 1
#define TORII_IO_WRITE 2

/* The phases every request passes, in this order (SPEC section 3). A TCP session (a
 * [[server]] with protocol = "tcp") has no HTTP phases: it runs the `connect` hook of the
 * descriptor (1.2), then balance, then log once the session has ended. */
typedef enum torii_phase {
    TORII_PHASE_PRE_ROUTE = 0, /* head parsed, location not chosen: rewrite, real-ip     */
    TORII_PHASE_ACCESS = 1,    /* location chosen: auth, rate limits, circuit breakers     */
    TORII_PHASE_BALANCE = 2,   /* pick a target of the upstream (the balancer's `pick`)    */
    TORII_PHASE_UPSTREAM = 3,  /* just before the head goes upstream: request headers      */
    TORII_PHASE_RESPONSE = 4,  /* the response head is ready: response headers             */
    TORII_PHASE_LOG = 5,       /* the exchange ended, successfully or not                  */
    TORII_PHASE_COUNT = 6
} torii_phase_t;

/* What a phase hook answers. */
typedef enum torii_action {
    /* Done here: the next plugin of the phase runs, then the next phase. */
    TORII_CONTINUE = 0,
    /* The hook called host->respond(): the phase chain stops and that response is sent.
     * Returning it without having called respond() answers 500. */
    TORII_RESPOND = 1,
    /* The hook took a token with host->pause() and will call host->resume() later, from a
     * timer or an I/O callback. Honoured in pre_route, access, upstream and connect (1.2);
     * elsewhere it is treated as an error (500 before the response starts). */
    TORII_PAUSE = 2,
    /* Something failed inside the plugin: 500 before the response starts; logged. */
    TORII_ERROR = 3
} torii_action_t;

typedef enum torii_log_level {
    TORII_LOG_DEBUG = 0,
    TORII_LOG_INFO = 1,
    TORII_LOG_NOTICE = 2,
    TORII_LOG_WARN = 3,
    TORII_LOG_ERROR = 4
} torii_log_level_t;

/* Return codes of host functions. */
#define TORII_OK 0
#define TORII_NOT_FOUND 1 /* key, header or variable absent */
#define TORII_EINVAL (-1) /* wrong type, bad argument, or not allowed in this phase */

/* ---- Balancers ------------------------------------------------------------------------ */

/* A target of the upstream as the core sees it. The array is owned by the core and updated
 * in place (health, in_flight, latency, a slow_start weight) before each pick; a balancer
 * reads, never writes. Targets come and go at run time (discovery, the admin API): a peer
 * keeps its index while it lives, and a slot whose target left is an empty peer (address
 * "", weight 0, healthy 0) until a new target takes it; peers_changed says when. */
typedef struct torii_peer {
    torii_str_t address; /* "127.0.0.1:9001" */
    uint32_t weight;     /* >= 1; 0 only for an empty slot */
    uint32_t healthy;    /* 0 while marked down (passive or active health), drained, or empty */
    uint32_t in_flight;  /* requests on it now, all workers of the machine together */
    uint32_t latency_us; /* moving average of response-head latency; 0 when unknown */
} torii_peer_t;

typedef struct torii_peer_set {
    size_t count;
    const torii_peer_t *peers;
} torii_peer_set_t;

#define TORII_PEER_NONE (-1) /* pick: nothing left to try */

typedef enum torii_peer_outcome {
    TORII_PEER_OK = 0,     /* a response head arrived */
    TORII_PEER_FAILED = 1, /* refused, reset, or an invalid response */
    TORII_PEER_TIMEOUT = 2 /* connect or read timed out */
} torii_peer_outcome_t;

/* ---- The host's function table ------------------------------------------------------- */

typedef struct torii_host {
    uint32_t size; /* sizeof(torii_host_t) in the running torii */
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Logging to torii's error log, printf-style. */
    void (*log)(torii_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

    /* -- Config: read the plugin's TOML table (valid in `create` and for the instance's
     * life). Each getter returns TORII_OK, TORII_NOT_FOUND, or TORII_EINVAL (wrong type;
     * an error naming the key's file:line is recorded and `create` will fail). */
    int (*conf_string)(const torii_conf_t *conf, const char *key, torii_str_t *out);
    int (*conf_int)(const torii_conf_t *conf, const char *key, int64_t *out);
    int (*conf_float)(const torii_conf_t *conf, const char *key, double *out);
    int (*conf_bool)(const torii_conf_t *conf, const char *key, int *out);
    int (*conf_duration_ms)(const torii_conf_t *conf, const char *key, int64_t *out);
    int (*conf_size)(const torii_conf_t *conf, const char *key, uint64_t *out);
    /* A sub-table (`key = { ... }` or [..key]), or NULL. */
    const torii_conf_t *(*conf_table)(const torii_conf_t *conf, const char *key);
    /* Arrays: element count (0 when absent), then elements by index. For an array of
     * tables use conf_array_table. */
    size_t (*conf_array_size)(const torii_conf_t *conf, const char *key);
    int (*conf_array_string)(const torii_conf_t *conf, const char *key, size_t i, torii_str_t *out);
    const torii_conf_t *(*conf_array_table)(const torii_conf_t *conf, const char *key, size_t i);
    /* Keys of a table, in file order: returns TORII_NOT_FOUND past the end. */
    int (*conf_key_at)(const torii_conf_t *conf, size_t i, torii_str_t *out);
    /* Records an error at the key's place ("FILE:LINE:COL: plugin "x": <msg>"); `key` may
     * be NULL for the table itself. Always returns TORII_EINVAL. */
    int (*conf_error)(const torii_conf_t *conf, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* Records an error for every key not in the NULL-terminated list. Returns TORII_OK or
     * TORII_EINVAL. */
    int (*conf_allow_only)(const torii_conf_t *conf, const char *const *keys);

    /* -- Request head. Header names are case-insensitive. In the upstream phase these
     * change what is sent upstream; the client's original head stays visible to logs. */
    torii_str_t (*req_method)(torii_request_t *r);
    torii_str_t (*req_path)(torii_request_t *r);  /* working path, without the query */
    torii_str_t (*req_query)(torii_request_t *r); /* without '?' */
    int (*req_set_path)(torii_request_t *r, torii_str_t path);
    int (*req_header)(torii_request_t *r, torii_str_t name, torii_str_t *out);
    size_t (*req_header_count)(torii_request_t *r);
    int (*req_header_at)(torii_request_t *r, size_t i, torii_header_t *out);
    int (*req_set_header)(torii_request_t *r, torii_str_t name, torii_str_t value);
    int (*req_add_header)(torii_request_t *r, torii_str_t name, torii_str_t value);
    int (*req_remove_header)(torii_request_t *r, torii_str_t name);

    /* -- Response head (response and log phases). */
    int (*resp_status)(torii_request_t *r);
    int (*resp_header)(torii_request_t *r, torii_str_t name, torii_str_t *out);
    int (*resp_set_header)(torii_request_t *r, torii_str_t name, torii_str_t value);
    int (*resp_add_header)(torii_request_t *r, torii_str_t name, torii_str_t value);
    int (*resp_remove_header)(torii_request_t *r, torii_str_t name);

    /* -- Variables (SPEC section 4): name with or without '$', e.g. "remote_addr",
     * "http_user_agent", "arg_id", "cookie_session". */
    int (*var)(torii_request_t *r, torii_str_t name, torii_str_t *out);
    /* Templates: "$remote_addr:$http_x_user" compiled once (in create), expanded per
     * request into request memory. NULL on a syntax error (recorded against conf/key). */
    torii_template_t *(*template_compile)(const torii_conf_t *conf, const char *key,
                                          torii_str_t text);
    int (*template_expand)(torii_request_t *r, const torii_template_t *t, torii_str_t *out);

    /* -- Answering from the plugin: status, headers, body (copied). Then return
     * TORII_RESPOND from the hook, or call resume(token, TORII_RESPOND) when paused. */
    int (*respond)(torii_request_t *r, int status, const torii_header_t *headers,
                   size_t header_count, torii_str_t body);

    /* -- Request memory: freed when the request ends. */
    void *(*req_alloc)(torii_request_t *r, size_t size);

    /* -- Pause and resume. pause() returns a token for the request; resume(token, action)
     * continues it with TORII_CONTINUE, TORII_RESPOND (after respond()) or TORII_ERROR.
     * Resuming a token whose request is gone (the client left) is harmless and returns
     * TORII_NOT_FOUND. A paused request whose client disconnects is never resumed.
     * resume() never re-enters: the request continues from the event loop after the
     * caller returns, so it is safe from any callback (a timer, an I/O watch, another
     * request's hook). Only the first resume() of a pause counts. */
    uint64_t (*pause)(torii_request_t *r);
    int (*resume)(uint64_t token, torii_action_t action);
    /* The request of a live token, or NULL (only to call respond() before resuming). */
    torii_request_t *(*token_request)(uint64_t token);

    /* -- Timers on the worker's loop: `cb(arg)` once after `ms`. cancel() before it fires
     * frees it; after it fired the timer is already freed. Called from create() (1.3 and
     * later hosts), where no loop exists yet, the timer starts in each worker when it
     * starts (each worker runs its own copy; a reload's new workers those of the new
     * configuration). NULL when there is no loop and no configuration being loaded. */
    torii_timer_t *(*timer_add)(uint64_t ms, void (*cb)(void *arg), void *arg);
    void (*timer_cancel)(torii_timer_t *timer);
    uint64_t (*now_ms)(void); /* monotonic milliseconds */

    /* -- State shared by all workers (shared memory; survives a reload). Keys up to 64
     * bytes, values up to 256 bytes. counter_add returns the new value. kv_get copies up
     * to *len bytes into buf and sets *len to the value's length; ttl_ms 0 = no expiry. */
    int64_t (*counter_add)(torii_str_t key, int64_t delta);
    int64_t (*counter_get)(torii_str_t key);
    int (*kv_set)(torii_str_t key, const void *value, size_t len, uint64_t ttl_ms);
    int (*kv_get)(torii_str_t key, void *buf, size_t *len);
    int (*kv_delete)(torii_str_t key);
    /* Atomic read-modify-write of a shared value (token buckets, rolling windows): `fn`
     * runs under the shared zone's lock with the current bytes (*len == 0 when the key is
     * absent or expired) and may rewrite them in place (at most 256 bytes; set *len).
     * Keep fn short and non-blocking: every worker waits for it. */
    int (*shared_update)(torii_str_t key, void (*fn)(void *value, size_t *len, void *arg),
                         void *arg, uint64_t ttl_ms);

    /* -- Non-blocking I/O on the worker's loop, for client libraries (e.g. a hiredis
     * adapter). cb(fd, events, arg) runs when fd is ready for the watched TORII_IO_*
     * events. io_update changes the set (0 pauses); io_unwatch stops and frees the watch
     * (the fd is the plugin's to close). Create watches in worker_init or later; from
     * create() (1.3 and later hosts) the watch starts in each worker, on the fd each worker
     * inherited — rarely what a connection wants, so connect in worker_init. */
    torii_io_t *(*io_watch)(int fd, int events, void (*cb)(int fd, int events, void *arg),
                            void *arg);
    int (*io_update)(torii_io_t *io, int events);
    void (*io_unwatch)(torii_io_t *io);

    /* -- Admin endpoints: `GET <path>` on the [admin] listener calls fn(arg, out), which
     * writes the body with buf_append. Register in create(); the path must start with '/'
     * and not be taken (TORII_EINVAL otherwise). */
    int (*admin_register)(const char *path, const char *content_type,
                          void (*fn)(void *arg, torii_buf_t *out), void *arg);
    void (*buf_append)(torii_buf_t *out, torii_str_t text);

    /* -- Where the request went, for stats and logs: the server's first listen address,
     * the location's path and the upstream's name (empty when not proxied). */
    torii_str_t (*req_server)(torii_request_t *r);
    torii_str_t (*req_location)(torii_request_t *r);
    torii_str_t (*req_upstream)(torii_request_t *r);
    /* The core keeps these shared counters too (read them with counter_get):
     *   "torii|connections"   client connections open now, all workers together
     *   "torii|accepted"      client connections accepted since the master started */
    /* Visits every live shared entry whose key starts with `prefix` (counters and kv
     * alike), under the zone's lock: fn must be short and must not call back into the
     * shared-state functions. For exporters such as stats' /metrics. */
    void (*shared_each)(torii_str_t prefix,
                        void (*fn)(torii_str_t key, int64_t counter, const void *value, size_t len,
                                   void *arg),
                        void *arg);
    /* The authenticated consumer's name ($consumer), set by auth plugins; copied. */
    int (*req_set_consumer)(torii_request_t *r, torii_str_t name);

    /* ---- Added in 1.1 (check with TORII_HOST_HAS before calling) ---- */

    /* The query argument `name` carries a credential: the access log writes its value as
     * `name=***`. Names compare case-insensitively after percent-decoding; torii masks a
     * built-in list of conventional names (apikey, access_token, ...) without being asked.
     * Call it from create(). A name stays masked for the process's life (after a reload
     * dropped it too: masking more is harmless). TORII_EINVAL when empty or over 64 bytes. */
    int (*log_mask_query_arg)(torii_str_t name);

    /* ---- Added in 1.2 (check with TORII_HOST_HAS before calling) ---- */

    /* 1 when `conf` is the plugin's table on a TCP server ([[server]] protocol = "tcp"),
     * where only the connect hook (and log, peer_admit, peer_result, request_done) run: a
     * plugin refuses there, from create(), the settings that need an HTTP request. */
    int (*conf_is_tcp_server)(const torii_conf_t *conf);
    /* 1 when the request is a TCP session rather than an HTTP exchange: it has no method,
     * path or headers; $remote_addr, $remote_port, $upstream_addr, $bytes_sent (to the
     * client), $request_length (from the client), $request_time, $status and $ssl_* work. */
    int (*req_is_tcp)(torii_request_t *r);

    /* ---- Added in 1.3 (check with TORII_HOST_HAS before calling) ---- */

    /* Where `conf` is used, as a name that stays the same across reloads as long as the
     * config keeps that place: "server 127.0.0.1:8080 example.com location /api/" for a
     * location's table, "server 127.0.0.1:8080 example.com" for a server's (its first listen
     * address and first server_name), "upstream api" for a balancer's. Name state kept in
     * the shared zone after it (rate-limit buckets), and a reload finds it again: the zone
     * outlives generations. `out` stays valid as long as the instance. TORII_NOT_FOUND for a
     * plugin used without a table (a balancer without options). */
    int (*conf_scope)(const torii_conf_t *conf, torii_str_t *out);
    /* The folder of the config file, absolute, for relative paths in a plugin's settings
     * (a key file, a list of tokens): resolve them against it, as torii does its own. */
    torii_str_t (*conf_dir)(const torii_conf_t *conf);
    /* Arrays of other element types than strings and tables, and mixed arrays: the type of
     * element i (TORII_CONF_*), then
     * typed getters (TORII_EINVAL and a recorded error on another type). conf_array_type
     * returns 0 past the end or when `key` is absent. */
    int (*conf_array_type)(const torii_conf_t *conf, const char *key, size_t i);
    int (*conf_array_int)(const torii_conf_t *conf, const char *key, size_t i, int64_t *out);
    int (*conf_array_float)(const torii_conf_t *conf, const char *key, size_t i, double *out);
    int (*conf_array_bool)(const torii_conf_t *conf, const char *key, size_t i, int *out);

    /* One fast seeded 64-bit hash (not cryptographic) for every plugin's tables and rings,
     * instead of a copy of FNV in each: the same input and seed give the same value in
     * every process and version of the same major. */
    uint64_t (*hash64)(const void *data, size_t len, uint64_t seed);

    /* Variables resolved once: var_ref("upstream_response_time") in create() gives a
     * handle (>= 0; TORII_EINVAL for an unknown name), var_get(r, handle, &out) its value
     * for a request as host->var does, without looking the name up again. */
    int (*var_ref)(torii_str_t name);
    int (*var_get)(torii_request_t *r, int handle, torii_str_t *out);

    /* This instance's per-request slot, from any hook that gets the request (pick,
     * feedback, peer_admit, peer_result as well as the phase hooks, where it is the same
     * slot as *req_ctx): what a plugin stores there is handed to its request_done at the
     * end, whichever hooks it ran in. NULL outside a hook. */
    void **(*req_ctx)(torii_request_t *r);

    /* How the request arrived: TORII_PROTO_* bits (exactly one of HTTP1, HTTP2, TCP, plus
     * TLS, GRPC, WEBSOCKET when they apply). TLS details are the $ssl_* variables. */
    unsigned (*req_protocol)(torii_request_t *r);

    /* Query arguments by name (compared after percent-decoding, case-sensitively, as
     * applications do): the first one's raw value (TORII_NOT_FOUND when absent); set
     * (replaces every one of that name, or appends; `value` is written as given, so
     * percent-encode it); remove every one of that name. The upstream gets the result. */
    int (*req_query_arg)(torii_request_t *r, torii_str_t name, torii_str_t *out);
    int (*req_set_query_arg)(torii_request_t *r, torii_str_t name, torii_str_t value);
    int (*req_remove_query_arg)(torii_request_t *r, torii_str_t name);

    /* ---- Added in 1.4 (check with TORII_HOST_HAS before calling) ---- */

    /* Lock-free shared counters: the bytes of `key`'s value at an address that never
     * changes, in every worker, found or made as `len` zero bytes (len 1..256; 8-byte
     * aligned). NULL when the zone is full, or the key holds a value of another length or
     * one with a TTL. Write it with atomic operations only (__atomic_fetch_add and the
     * like): other workers write the same bytes at the same time, and a shared_update or
     * kv_set on the key would undo their adds. The entry is pinned: kv_delete refuses it
     * and it never expires.
     * Meant for counters bumped per request (stats): no lock, no key lookup per update;
     * get the pointer once per key and keep it (it outlives reloads, like the zone). */
    void *(*shared_slot)(torii_str_t key, size_t len);

    /* A numeric variable by handle (var_ref) as a number, without formatting text to parse
     * back: times in microseconds ($request_time, $upstream_response_time, and $msec since
     * the epoch), sizes in bytes ($bytes_sent, $body_bytes_sent, $request_length), $status,
     * $remote_port, $grpc_status. TORII_NOT_FOUND when the request has no value (as var_get),
     * TORII_EINVAL for a variable that is text. */
    int (*var_int)(torii_request_t *r, int handle, int64_t *out);
} torii_host_t;

/* conf_array_type results (1.3). */
#define TORII_CONF_STRING 1
#define TORII_CONF_INT 2
#define TORII_CONF_FLOAT 3
#define TORII_CONF_BOOL 4
#define TORII_CONF_TABLE 5
#define TORII_CONF_ARRAY 6
#define TORII_CONF_OTHER 7 /* dates and times */

/* req_protocol bits (1.3). */
#define TORII_PROTO_HTTP1 0x01u
#define TORII_PROTO_HTTP2 0x02u
#define TORII_PROTO_TCP 0x04u
#define TORII_PROTO_TLS 0x10u
#define TORII_PROTO_GRPC 0x20u
#define TORII_PROTO_WEBSOCKET 0x40u

/* True when the running host's table has `field` (it may be newer or older than you). */
#define TORII_HOST_HAS(host, field) \
    ((host)->size >= offsetof(torii_host_t, field) + sizeof((host)->field))

/* ---- The plugin's descriptor ---------------------------------------------------------- */

typedef torii_action_t (*torii_phase_hook_t)(void *instance, torii_request_t *r, void **req_ctx);

typedef struct torii_plugin {
    uint32_t size;       /* sizeof(torii_plugin_t) as the plugin was built: set it */
    uint16_t abi_major;  /* TORII_PLUGIN_ABI_MAJOR */
    uint16_t abi_minor;  /* TORII_PLUGIN_ABI_MINOR */
    const char *name;    /* informational; the config's name is what counts */
    const char *version; /* the plugin's own version, printed by `torii -t` */

    /* One instance per configured use (each server or location table; for a balancer, each
     * upstream using it, with that [upstream.X] table). Validate `conf` here: report
     * problems with host->conf_error and return NULL. May be NULL for a plugin without
     * state, in which case hooks receive a NULL instance. */
    void *(*create)(const torii_host_t *host, const torii_conf_t *conf);
    void (*destroy)(void *instance);
    /* Once in each worker process, after fork, before any request. Non-zero fails the
     * worker start. */
    int (*worker_init)(void *instance);

    /* Phase hooks. `*req_ctx` is this instance's slot for per-request state: NULL at
     * first, kept across phases of the request, handed to request_done at the end. */
    torii_phase_hook_t pre_route;
    torii_phase_hook_t access;
    torii_phase_hook_t upstream;
    torii_phase_hook_t response;
    /* The log phase runs after the response is complete (or the client left): nothing can
     * change the exchange any more, so its return value is ignored — every log hook of the
     * chain runs, whatever the others answered; return TORII_CONTINUE. */
    torii_phase_hook_t log;
    /* The request ended (after the log phase): free what *req_ctx holds. */
    void (*request_done)(void *instance, torii_request_t *r, void *req_ctx);

    /* Balancer hooks (a balancer sets at least `pick`).
     * peers_changed: the target list was built or changed: a target joined, left, or got
     *       another weight (rebuild rings here; not called for health changes).
     * pick: a peer index, skipping peers with healthy == 0 and those with tried[i] != 0
     *       (earlier attempts of this request), or TORII_PEER_NONE.
     * feedback: the outcome of an attempt on peer i, with its latency. */
    void (*peers_changed)(void *instance, const torii_peer_set_t *peers);
    int (*pick)(void *instance, torii_request_t *r, const torii_peer_set_t *peers,
                const uint8_t *tried);
    void (*feedback)(void *instance, torii_request_t *r, size_t peer, torii_peer_outcome_t outcome,
                     uint64_t latency_us);

    /* Target admission, for any plugin of the location's chain (not only balancers), after
     * the balancer picked a target and before torii connects: return 0 to let the attempt
     * go to `address` of `upstream`, non-zero to skip that target for this request (the
     * balancer picks again among the others). Per-target circuit breakers use it. */
    int (*peer_admit)(void *instance, torii_request_t *r, torii_str_t upstream,
                      torii_str_t address);
    /* The outcome of every attempt on a target (a retry reports each one), with the
     * response status when a head arrived (0 otherwise). */
    void (*peer_result)(void *instance, torii_request_t *r, torii_str_t upstream,
                        torii_str_t address, torii_peer_outcome_t outcome, int status);

    /* ---- Added in 1.2 (a 1.0/1.1 plugin's shorter descriptor reads as NULL here) ---- */

    /* The connection phase of a TCP server: a client connected to a [[server]] with
     * protocol = "tcp" whose plugin tables switch this plugin on ([server.plugins.NAME]).
     * It runs once per connection, before any byte is read, before TLS termination and
     * before a target is picked. `r` is the session (host->req_is_tcp(r) == 1): the client's
     * address is the variable "remote_addr" (and "remote_port"), the server is
     * host->req_server(r), the upstream host->req_upstream(r). Answers:
     *   TORII_CONTINUE  the next plugin, then the balancer and the connect to a target;
     *   TORII_RESPOND   after host->respond(r, status, ...): the connection is closed without
     *                   a byte sent (there is no HTTP to answer in); `status` is what the log
     *                   and stats record (403 denied, 429 over a rate, 503 ...);
     *   TORII_PAUSE     with a host->pause() token, as in the access phase;
     *   TORII_ERROR     the connection is closed, logged 500. */
    torii_phase_hook_t connect;
} torii_plugin_t;

/* The one exported symbol. `host` stays valid for the process's life; keep it. Return
 * NULL to refuse loading (log why through host->log). */
typedef const torii_plugin_t *(*torii_plugin_entry_fn)(const torii_host_t *host);

#ifdef __cplusplus
}
#endif

#endif /* TORII_PLUGIN_H */
