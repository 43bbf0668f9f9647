/* ratelimit's Redis backend: machines share one limit through one Redis.
 *
 * Each worker keeps one connection per Redis address, made on first use with hiredis' async
 * API on an adapter of our own over host->io_watch/io_update/io_unwatch (the worker's
 * event loop; the plugin never sees libevent). A request is paused while one EVALSHA of the
 * token-bucket script below runs; the script reads the clock with TIME inside Redis, so the
 * machines' clocks do not matter, and it refills, takes and stores atomically. The reply
 * resumes the request: CONTINUE, a delay, or 429.
 *
 * Failures: a command not answered within redis_timeout, a refused or dropped connection, or
 * an error reply make on_backend_error decide ("allow": go on unlimited, "deny": 503), and
 * are logged at most once per log_interval. A timeout also drops the connection (everything
 * queued behind the stuck command fails at once). While down, requests do not wait: a new
 * connection is tried on the first request after a back-off of 100 ms, doubling up to 1 s
 * while connecting fails. */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fnv.h"
#include "ratelimit.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000
#define REDIS_KEY_RAW_MAX 200

/* KEYS[1] the bucket; ARGV[1] tokens per millisecond, ARGV[2] the capacity. Returns
 * {taken (0/1), tokens before taking (after refill) in thousandths}. Numbers passed to
 * redis.call are written with 17 digits, so the stored state keeps its precision. */
static const char SCRIPT[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
    "local v = redis.call('HMGET', KEYS[1], 'tk', 'ts')\n"
    "local tokens = tonumber(v[1])\n"
    "local ts = tonumber(v[2])\n"
    "if tokens == nil or ts == nil then\n"
    "  tokens = burst\n"
    "  ts = now\n"
    "elseif now > ts then\n"
    "  tokens = tokens + (now - ts) * rate\n"
    "  ts = now\n"
    "end\n"
    "if tokens > burst then tokens = burst end\n"
    "local before = tokens\n"
    "local taken = 0\n"
    "if tokens >= 1 then\n"
    "  taken = 1\n"
    "  tokens = tokens - 1\n"
    "end\n"
    "redis.call('HMSET', KEYS[1], 'tk', tokens, 'ts', ts)\n"
    "redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - tokens) / rate) + 1000, 1e12))\n"
    "return {taken, math.floor(before * 1000)}\n";

typedef struct rl_link rl_link_t;

/* The connection to one address, for the worker's life. */
struct rl_conn {
    struct rl_conn *next;
    char ip[64];
    int port;
    rl_link_t *link;      /* the current hiredis context, NULL while down */
    uint64_t retry_at_ms; /* no new connection before this */
    uint64_t backoff_ms;
    int had_error; /* log the next successful connect */
    char last_error[160];
};

/* One hiredis context and its watch. Freed by the adapter's cleanup hook, which hiredis
 * calls whenever it frees the context (or later, if that happens inside our I/O callback). */
struct rl_link {
    rl_conn_t *conn;
    redisAsyncContext *ac;
    torii_io_t *io;
    int events;
    int connected;
    int in_io;          /* inside on_io: the cleanup hook must not free us yet */
    int dead;           /* hiredis is done with the context */
    const char *reason; /* why we dropped it ourselves */
    char sha[41];       /* the script's SHA1 once SCRIPT LOAD answered; EVAL until then */
};

typedef struct rl_call {
    rl_t *in;
    rl_link_t *link;
    rl_ctx_t *ctx;        /* request memory: only while token_request(token) is non-NULL */
    uint64_t token;       /* 0 once answered (timed out) */
    torii_timer_t *timer; /* redis_timeout */
    int retried;          /* NOSCRIPT: sent again as EVAL once */
    size_t key_len;
    char key[];
} rl_call_t;

static rl_conn_t *conns; /* this worker's, reachable for the process's life */

/* ---- the event adapter ---------------------------------------------------------------- */

static void link_events(rl_link_t *l, int events) {
    if (l->dead || !l->io || events == l->events) return;
    l->events = events;
    host->io_update(l->io, events);
}

static void ev_add_read(void *p) {
    rl_link_t *l = p;
    link_events(l, l->events | TORII_IO_READ);
}
static void ev_del_read(void *p) {
    rl_link_t *l = p;
    link_events(l, l->events & ~TORII_IO_READ);
}
static void ev_add_write(void *p) {
    rl_link_t *l = p;
    link_events(l, l->events | TORII_IO_WRITE);
}
static void ev_del_write(void *p) {
    rl_link_t *l = p;
    link_events(l, l->events & ~TORII_IO_WRITE);
}

static void link_down(rl_link_t *l, const char *reason);

/* hiredis is freeing the context (after the pending callbacks ran with NULL replies). */
static void ev_cleanup(void *p) {
    rl_link_t *l = p;
    const char *why = l->reason ? l->reason : l->ac->err ? l->ac->errstr : "connection closed";
    link_down(l, why);
    if (l->io) host->io_unwatch(l->io);
    l->io = NULL;
    l->dead = 1;
    l->ac->data = NULL;
    l->ac->ev.data = NULL;
    if (!l->in_io) free(l);
}

static void on_io(int fd, int events, void *arg) {
    rl_link_t *l = arg;
    (void)fd;
    l->in_io = 1;
    if ((events & TORII_IO_READ) && !l->dead) redisAsyncHandleRead(l->ac);
    if ((events & TORII_IO_WRITE) && !l->dead) redisAsyncHandleWrite(l->ac);
    l->in_io = 0;
    if (l->dead) free(l);
}

/* ---- connections ---------------------------------------------------------------------- */

static void link_down(rl_link_t *l, const char *reason) {
    rl_conn_t *c = l->conn;
    if (c->link != l) return;
    c->link = NULL;
    snprintf(c->last_error, sizeof c->last_error, "%s", reason);
    if (l->connected || !c->backoff_ms)
        c->backoff_ms = BACKOFF_FIRST_MS;
    else
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    c->retry_at_ms = host->now_ms() + c->backoff_ms;
    c->had_error = 1;
}

static void on_connect(const redisAsyncContext *ac, int status) {
    rl_link_t *l = ac->data;
    if (!l || status != REDIS_OK) return; /* a failure: the cleanup hook follows */
    l->connected = 1;
    if (l->conn->had_error)
        host->log(TORII_LOG_NOTICE, "ratelimit: redis %s:%d: connected again", l->conn->ip,
                  l->conn->port);
    l->conn->had_error = 0;
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata) {
    rl_link_t *l = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(l->sha, reply->str, 40);
        l->sha[40] = 0;
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        host->log(TORII_LOG_WARN, "ratelimit: redis %s:%d: SCRIPT LOAD failed: %s", l->conn->ip,
                  l->conn->port, reply->str);
    }
}

static rl_conn_t *conn_find(const rl_t *in) {
    for (rl_conn_t *c = conns; c; c = c->next)
        if (c->port == in->redis_port && strcmp(c->ip, in->redis_host) == 0) return c;
    rl_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->ip, sizeof c->ip, "%s", in->redis_host);
    c->port = in->redis_port;
    c->next = conns;
    conns = c;
    return c;
}

static void connect_failed(rl_conn_t *c, const char *why) {
    snprintf(c->last_error, sizeof c->last_error, "%s", why);
    c->backoff_ms = !c->backoff_ms                       ? BACKOFF_FIRST_MS
                    : c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : c->backoff_ms * 2;
    c->retry_at_ms = host->now_ms() + c->backoff_ms;
    c->had_error = 1;
}

/* The connection to use now, or NULL while down (c->last_error says why). */
static rl_link_t *conn_link(rl_conn_t *c) {
    if (c->link) return c->link;
    if (host->now_ms() < c->retry_at_ms) return NULL;
    redisAsyncContext *ac = redisAsyncConnect(c->ip, c->port);
    if (!ac) {
        connect_failed(c, "out of memory");
        return NULL;
    }
    if (ac->err) {
        connect_failed(c, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    rl_link_t *l = calloc(1, sizeof *l);
    torii_io_t *io = l ? host->io_watch(ac->c.fd, 0, on_io, l) : NULL;
    if (!io) {
        connect_failed(c, "cannot watch the socket");
        redisAsyncFree(ac);
        free(l);
        return NULL;
    }
    l->conn = c;
    l->ac = ac;
    l->io = io;
    ac->data = l;
    ac->ev.data = l;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    c->link = l;
    redisAsyncSetConnectCallback(ac, on_connect); /* watches for writability: the connect */
    /* Queued first, so every EVALSHA after it on this connection finds the script. */
    redisAsyncCommand(ac, on_script_loaded, l, "SCRIPT LOAD %s", SCRIPT);
    return l;
}

void rl_redis_release(void) {
    /* The last instance is gone: drop the connections that are down. One still open keeps
     * its watch, which only the worker's loop could free (it is gone by now). */
    rl_conn_t **p = &conns;
    while (*p) {
        rl_conn_t *c = *p;
        if (c->link) {
            p = &c->next;
            continue;
        }
        *p = c->next;
        free(c);
    }
}

/* ---- calls ------------------------------------------------------------------------------ */

static void call_free(rl_call_t *call) {
    if (call->timer) host->timer_cancel(call->timer);
    rl_unref(call->in);
    free(call);
}

static void answer_backend_error(rl_t *in, uint64_t token, const char *why) {
    rl_note_error(in, "redis %s: %s; %s", in->redis_addr, why,
                  in->deny_on_error ? "answering 503 (on_backend_error = \"deny\")"
                                    : "letting requests through (on_backend_error = \"allow\")");
    torii_request_t *r = host->token_request(token);
    if (r && in->deny_on_error) {
        rl_respond_unavailable(r);
        host->resume(token, TORII_RESPOND);
    } else {
        host->resume(token, TORII_CONTINUE);
    }
}

static torii_action_t backend_error_now(rl_t *in, torii_request_t *r, const char *why) {
    rl_note_error(in, "redis %s: %s; %s", in->redis_addr, why,
                  in->deny_on_error ? "answering 503 (on_backend_error = \"deny\")"
                                    : "letting requests through (on_backend_error = \"allow\")");
    if (!in->deny_on_error) return TORII_CONTINUE;
    rl_respond_unavailable(r);
    return TORII_RESPOND;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static int send_call(rl_link_t *l, rl_call_t *call) {
    char rate[40], burst[24];
    const char *argv[6];
    size_t lens[6];
    snprintf(rate, sizeof rate, "%.17g", call->in->rate_ms);
    snprintf(burst, sizeof burst, "%lld", (long long)call->in->burst);
    int evalsha = l->sha[0] != 0;
    argv[0] = evalsha ? "EVALSHA" : "EVAL";
    argv[1] = evalsha ? l->sha : SCRIPT;
    argv[2] = "1";
    argv[3] = call->key;
    argv[4] = rate;
    argv[5] = burst;
    for (int i = 0; i < 6; ++i)
        lens[i] = strlen(argv[i]);
    lens[3] = call->key_len;
    return redisAsyncCommandArgv(l->ac, on_reply, call, 6, argv, lens);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
    rl_call_t *call = privdata;
    redisReply *reply = r;
    rl_link_t *l = call->link;
    if (reply && reply->type == REDIS_REPLY_ERROR && call->token && !call->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* The script cache was flushed: load it again, and run this one as EVAL. */
        l->sha[0] = 0;
        call->retried = 1;
        redisAsyncCommand(ac, on_script_loaded, l, "SCRIPT LOAD %s", SCRIPT);
        if (send_call(l, call) == REDIS_OK) return;
    }
    uint64_t token = call->token;
    if (!token) { /* already answered by the timeout */
        call_free(call);
        return;
    }
    if (call->timer) host->timer_cancel(call->timer);
    call->timer = NULL;
    if (!reply) {
        const char *why = l->reason ? l->reason : ac->err ? ac->errstr : "connection closed";
        link_down(l, why); /* before resuming: nothing new goes to a dying connection */
        answer_backend_error(call->in, token, why);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        answer_backend_error(call->in, token, reply->str);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
               reply->element[0]->type == REDIS_REPLY_INTEGER &&
               reply->element[1]->type == REDIS_REPLY_INTEGER) {
        if (host->token_request(token)) {
            rl_outcome_t out =
                rl_decide(call->in, call->ctx, (double)reply->element[1]->integer / 1000.0,
                          reply->element[0]->integer != 0);
            rl_resume_with(call->in, token, call->ctx, out);
        } else {
            host->resume(token, TORII_CONTINUE); /* the client left */
        }
    } else {
        answer_backend_error(call->in, token, "unexpected reply to the rate limit script");
    }
    call_free(call);
}

static void on_call_timeout(void *arg) {
    rl_call_t *call = arg;
    call->timer = NULL;
    uint64_t token = call->token;
    call->token = 0;
    rl_link_t *l = call->link;
    char why[96];
    snprintf(why, sizeof why, "no answer within %lld ms", (long long)call->in->redis_timeout_ms);
    /* The connection is stuck behind this command: mark it down first so that nothing new
     * is sent to it, answer this request, then free it; hiredis calls every other pending
     * callback with a NULL reply (this call's among them: it is freed there). */
    l->reason = "an earlier command timed out";
    link_down(l, why);
    answer_backend_error(call->in, token, why);
    if (!l->dead) redisAsyncFree(l->ac);
}

static torii_str_t redis_key(const rl_t *in, torii_str_t key, char *buf, size_t size) {
    int n = snprintf(buf, size, "torii:rl:%s:", in->name);
    size_t len = (size_t)n;
    if (key.len <= REDIS_KEY_RAW_MAX) {
        memcpy(buf + len, key.ptr, key.len);
        len += key.len;
    } else {
        uint64_t a = pc_hash64(key.ptr, key.len, 0);
        uint64_t b = pc_hash64(key.ptr, key.len, 0x9e3779b97f4a7c15ull);
        len += (size_t)snprintf(buf + len, size - len, "#%016llx%016llx", (unsigned long long)a,
                                (unsigned long long)b);
    }
    return (torii_str_t){buf, len};
}

torii_action_t rl_redis_access(rl_t *in, torii_request_t *r, rl_ctx_t *ctx, torii_str_t key) {
    if (!in->conn) in->conn = conn_find(in);
    if (!in->conn) return backend_error_now(in, r, "out of memory");
    rl_link_t *l = conn_link(in->conn);
    if (!l) return backend_error_now(in, r, in->conn->last_error);

    char buf[64 + REDIS_KEY_RAW_MAX];
    torii_str_t rkey = redis_key(in, key, buf, sizeof buf);
    rl_call_t *call = calloc(1, sizeof *call + rkey.len + 1);
    if (!call) return backend_error_now(in, r, "out of memory");
    call->in = in;
    call->link = l;
    call->ctx = ctx;
    call->key_len = rkey.len;
    memcpy(call->key, rkey.ptr, rkey.len);
    rl_ref(in);
    if (send_call(l, call) != REDIS_OK) {
        call_free(call);
        return backend_error_now(in, r, "cannot send the command");
    }
    call->token = host->pause(r);
    call->timer = host->timer_add((uint64_t)in->redis_timeout_ms, on_call_timeout, call);
    return TORII_PAUSE;
}
