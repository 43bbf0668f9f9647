/* Test plugin: the host functions added in ABI 1.3 and 1.4, each made visible in a response
 * header or a shared counter for t/integration/test_plugin_abi.py.
 *
 * As a location plugin ([server.location.plugins.abi_1_3]):
 *   create   conf_dir + `file` (relative to the config's folder; its first line becomes
 *            X-File), conf_array_int/_float/_bool over `ints`, `floats`, `flags` (summed
 *            into X-Arrays), conf_array_type over `mixed` (X-Types), conf_scope (X-Scope),
 *            var_ref("request_uri"), hash64 of `hash_input` with seed 7 (X-Hash)
 *   access   req_query_arg(`hide`) -> X-Hidden-Value on the upstream request, then
 *            req_remove_query_arg(`hide`) and req_set_query_arg("via", "torii")
 *   response var_get -> X-Request-Uri, req_protocol -> X-Proto, req_ctx == *req_ctx -> X-Ctx;
 *            1.4: var_int of $status, $request_length and $request_uri (text) -> X-Numbers,
 *            shared_slot("abi13|slot", 16): word 0 bumped by one atomic add per response
 *            -> X-Slot, the same key with another length -> X-Slot-Other ("null")
 * As a balancer (upstream balancer = "abi_1_3"): pick takes the first untried healthy peer
 *   and keeps a malloc'd note in host->req_ctx(r); feedback finds it there again
 *   ("abi13|seen"); request_done frees it ("abi13|done").
 * create() also adds a 20 ms timer (each worker runs it once) and cancels a 10 ms one.
 * /abi13 on the admin listener shows the counters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <torii/plugin.h>

static const torii_host_t *host;

typedef struct {
    int balancer;
    char file_line[128];
    char arrays[64];
    char types[64];
    char scope[160];
    char hash[24];
    char hide[32];
    int uri_ref, status_ref, length_ref;
} inst_t;

typedef struct {
    uint32_t magic;
    int picks;
} note_t;

#define NOTE_MAGIC 0x13131313u

static void counters(void *arg, torii_buf_t *out) {
    (void)arg;
    char text[192];
    int n = snprintf(text, sizeof text,
                     "{\"picked\":%lld,\"seen\":%lld,\"done\":%lld,\"timer\":%lld,"
                     "\"cancelled\":%lld}",
                     (long long)host->counter_get(TORII_STR("abi13|picked")),
                     (long long)host->counter_get(TORII_STR("abi13|seen")),
                     (long long)host->counter_get(TORII_STR("abi13|done")),
                     (long long)host->counter_get(TORII_STR("abi13|timer")),
                     (long long)host->counter_get(TORII_STR("abi13|cancelled")));
    host->buf_append(out, (torii_str_t){text, (size_t)n});
}

/* Timers asked for in create(), before any worker loop exists: each worker runs them. */
static void timer_fired(void *arg) {
    (void)arg;
    host->counter_add(TORII_STR("abi13|timer"), 1);
}

static void cancelled_fired(void *arg) {
    (void)arg;
    host->counter_add(TORII_STR("abi13|cancelled"), 1);
}

static void read_first_line(const inst_t *in_const, inst_t *in, const torii_conf_t *conf) {
    (void)in_const;
    torii_str_t name, dir = host->conf_dir(conf);
    if (host->conf_string(conf, "file", &name) != TORII_OK) return;
    char path[512];
    snprintf(path, sizeof path, "%.*s/%.*s", (int)dir.len, dir.ptr, (int)name.len, name.ptr);
    FILE *f = fopen(path, "r"); /* create() runs at load, in the master: no loop to block */
    if (!f) {
        host->conf_error(conf, "file", "cannot open %s", path);
        return;
    }
    if (fgets(in->file_line, sizeof in->file_line, f))
        in->file_line[strcspn(in->file_line, "\r\n")] = 0;
    fclose(f);
}

static void *create(const torii_host_t *h, const torii_conf_t *conf) {
    (void)h;
    if (!TORII_HOST_HAS(host, req_remove_query_arg)) return NULL;
    inst_t *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    torii_str_t scope = {"", 0};
    host->conf_scope(conf, &scope);
    snprintf(in->scope, sizeof in->scope, "%.*s", (int)scope.len, scope.ptr);
    in->balancer = scope.len > 9 && memcmp(scope.ptr, "upstream ", 9) == 0;
    (void)host->admin_register("/abi13", "application/json", counters, NULL);
    if (in->balancer) return in; /* the [upstream.X] table: targets and the rest */

    read_first_line(in, in, conf);
    int64_t isum = 0, v = 0;
    double fsum = 0, d = 0;
    int trues = 0, b = 0;
    for (size_t i = 0; host->conf_array_int(conf, "ints", i, &v) == TORII_OK; ++i)
        isum += v;
    for (size_t i = 0; host->conf_array_float(conf, "floats", i, &d) == TORII_OK; ++i)
        fsum += d;
    for (size_t i = 0; host->conf_array_bool(conf, "flags", i, &b) == TORII_OK; ++i)
        trues += b;
    snprintf(in->arrays, sizeof in->arrays, "%lld %.2f %d", (long long)isum, fsum, trues);
    size_t n = 0;
    for (size_t i = 0;; ++i) {
        int t = host->conf_array_type(conf, "mixed", i);
        if (t == 0 || n + 3 >= sizeof in->types) break;
        n += (size_t)snprintf(in->types + n, sizeof in->types - n, "%s%d", i ? "," : "", t);
    }
    torii_str_t input;
    if (host->conf_string(conf, "hash_input", &input) == TORII_OK)
        snprintf(in->hash, sizeof in->hash, "%016llx",
                 (unsigned long long)host->hash64(input.ptr, input.len, 7));
    torii_str_t hide;
    if (host->conf_string(conf, "hide", &hide) == TORII_OK)
        snprintf(in->hide, sizeof in->hide, "%.*s", (int)hide.len, hide.ptr);
    if (!host->timer_add(20, timer_fired, NULL)) host->conf_error(conf, NULL, "timer_add refused");
    host->timer_cancel(host->timer_add(10, cancelled_fired, NULL));
    in->uri_ref = host->var_ref(TORII_STR("request_uri"));
    if (in->uri_ref < 0) host->conf_error(conf, NULL, "var_ref refused request_uri");
    in->status_ref = host->var_ref(TORII_STR("status"));
    in->length_ref = host->var_ref(TORII_STR("request_length"));
    return in;
}

static void destroy(void *instance) {
    free(instance);
}

static torii_str_t str(const char *s) {
    return (torii_str_t){s, strlen(s)};
}

static torii_action_t access(void *instance, torii_request_t *r, void **ctx) {
    inst_t *in = instance;
    (void)ctx;
    if (in->hide[0]) {
        torii_str_t v;
        if (host->req_query_arg(r, str(in->hide), &v) == TORII_OK)
            host->req_set_header(r, TORII_STR("X-Hidden-Value"), v);
        host->req_remove_query_arg(r, str(in->hide));
        host->req_set_query_arg(r, TORII_STR("via"), TORII_STR("torii"));
    }
    return TORII_CONTINUE;
}

static torii_action_t response(void *instance, torii_request_t *r, void **ctx) {
    inst_t *in = instance;
    torii_str_t v;
    if (host->var_get(r, in->uri_ref, &v) == TORII_OK)
        host->resp_set_header(r, TORII_STR("X-Request-Uri"), v);
    char proto[8];
    snprintf(proto, sizeof proto, "%u", host->req_protocol(r));
    host->resp_set_header(r, TORII_STR("X-Proto"), str(proto));
    host->resp_set_header(r, TORII_STR("X-Ctx"),
                          host->req_ctx(r) == ctx ? TORII_STR("same") : TORII_STR("other"));
    host->resp_set_header(r, TORII_STR("X-File"), str(in->file_line));
    host->resp_set_header(r, TORII_STR("X-Arrays"), str(in->arrays));
    host->resp_set_header(r, TORII_STR("X-Types"), str(in->types));
    host->resp_set_header(r, TORII_STR("X-Scope"), str(in->scope));
    host->resp_set_header(r, TORII_STR("X-Hash"), str(in->hash));

    /* 1.4 */
    int64_t status = -1, length = -1, uri = -1;
    int rs = host->var_int(r, in->status_ref, &status),
        rl = host->var_int(r, in->length_ref, &length), ru = host->var_int(r, in->uri_ref, &uri);
    char numbers[96];
    snprintf(numbers, sizeof numbers, "%d:%lld %d:%lld %d", rs, (long long)status, rl,
             (long long)length, ru);
    host->resp_set_header(r, TORII_STR("X-Numbers"), str(numbers));
    int64_t *slot = host->shared_slot(TORII_STR("abi13|slot"), 2 * sizeof(int64_t));
    char count[24] = "null";
    if (slot)
        snprintf(count, sizeof count, "%lld",
                 (long long)__atomic_add_fetch(&slot[0], 1, __ATOMIC_RELAXED));
    host->resp_set_header(r, TORII_STR("X-Slot"), str(count));
    host->resp_set_header(
        r, TORII_STR("X-Slot-Other"),
        host->shared_slot(TORII_STR("abi13|slot"), 8) ? TORII_STR("not null") : TORII_STR("null"));
    return TORII_CONTINUE;
}

static int pick(void *instance, torii_request_t *r, const torii_peer_set_t *peers,
                const uint8_t *tried) {
    (void)instance;
    void **slot = host->req_ctx(r);
    if (!slot) return TORII_PEER_NONE;
    note_t *note = *slot;
    if (!note) {
        note = calloc(1, sizeof *note);
        if (!note) return TORII_PEER_NONE;
        note->magic = NOTE_MAGIC;
        *slot = note;
    }
    note->picks++;
    host->counter_add(TORII_STR("abi13|picked"), 1);
    for (size_t i = 0; i < peers->count; ++i)
        if (!tried[i] && peers->peers[i].healthy) return (int)i;
    return TORII_PEER_NONE;
}

static void feedback(void *instance, torii_request_t *r, size_t peer, torii_peer_outcome_t outcome,
                     uint64_t latency_us) {
    (void)instance;
    (void)peer;
    (void)outcome;
    (void)latency_us;
    void **slot = host->req_ctx(r);
    const note_t *note = slot ? *slot : NULL;
    if (note && note->magic == NOTE_MAGIC) host->counter_add(TORII_STR("abi13|seen"), 1);
}

static void request_done(void *instance, torii_request_t *r, void *ctx) {
    (void)r;
    const inst_t *in = instance;
    if (!in->balancer || !ctx) return;
    note_t *note = ctx;
    if (note->magic == NOTE_MAGIC) host->counter_add(TORII_STR("abi13|done"), 1);
    note->magic = 0;
    free(note);
}

static const torii_plugin_t descriptor = {
    .size = sizeof(torii_plugin_t),
    .abi_major = TORII_PLUGIN_ABI_MAJOR,
    .abi_minor = TORII_PLUGIN_ABI_MINOR,
    .name = "abi_1_3",
    .version = "1.0",
    .create = create,
    .destroy = destroy,
    .access = access,
    .response = response,
    .request_done = request_done,
    .pick = pick,
    .feedback = feedback,
};

TORII_EXPORT const torii_plugin_t *torii_plugin_entry(const torii_host_t *h) {
    host = h;
    return &descriptor;
}
