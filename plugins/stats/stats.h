/* stats: what the plugin's files share: the layout of the values it keeps in the shared zone,
 * its instance (the histogram's bucket bounds), and the functions each file gives the others.
 * See stats.c for what the plugin records and how the zone is laid out. */
#ifndef TORII_STATS_STATS_H
#define TORII_STATS_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <torii/plugin.h>

/* Everything below is internal to this plugin's .so: hidden, so that the files reach each
 * other's globals directly rather than through the GOT (one load less per host-> call). */
#pragma GCC visibility push(hidden)

extern const torii_host_t *stats_host;
#define host stats_host

#define METRICS_PATH "/metrics"
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define KEY_PREFIX "stats|"
#define MAX_BUCKETS 20
#define VALUE_VERSION 1
#define LABELS_MAX 256 /* a shared value's size limit */
/* Caps of the short label values; the location (route) gets what is left of LABELS_MAX. */
#define SHORT_FIELD_MAX 64
#define TRUNC_MARK_LEN 9 /* "~" and 8 hex digits */

enum { CLASS_OTHER = 0, CLASS_NONE = 6, ROUTE_CLASSES = 6, UPSTREAM_CLASSES = 7 };

/* The shared values. `layout` identifies the bucket bounds the histogram was counted with:
 * a value written under other bounds (before a reload that changed `buckets`) has its
 * histogram restarted by the next update and is not rendered until then. */
typedef struct {
    uint16_t version;
    uint16_t nbuckets;
    uint32_t layout;
    int64_t requests[ROUTE_CLASSES];
    int64_t bytes_in;  /* request body bytes ($request_length) */
    int64_t bytes_out; /* response body bytes ($bytes_sent) */
    int64_t in_flight;
    int64_t sum_us;
    int64_t buckets[MAX_BUCKETS + 1]; /* per bucket, not cumulative; the last is "> last bound" */
} route_val_t;

typedef struct {
    uint16_t version;
    uint16_t nbuckets;
    uint32_t layout;
    int64_t responses[UPSTREAM_CLASSES];
    int64_t sum_us;
    int64_t buckets[MAX_BUCKETS + 1];
} upstream_val_t;

/* gRPC calls of a route, apart from route_val_t (which fills its 256 bytes): by status code
 * 0-16 (OK ... UNAUTHENTICATED), then "other" and "none". */
enum { GRPC_CODES = 17, GRPC_OTHER = GRPC_CODES, GRPC_NONE, GRPC_SLOTS };

typedef struct {
    uint16_t version;
    uint16_t unused16;
    uint32_t unused32;
    int64_t calls[GRPC_SLOTS];
} grpc_val_t;

/* Error answers of a route by exact code, beside route_val_t: a class cannot tell a rate
 * limit (429) from a missing page (404), nor an open breaker (503) from a dead target (502).
 * The codes torii and the bundled plugins answer with, then "other" for any other 4xx/5xx. */
static const int error_codes[] = {400, 401, 403, 404, 405, 408, 413,
                                  429, 431, 499, 500, 502, 503, 504};
enum { ERROR_CODES = sizeof error_codes / sizeof error_codes[0], ERROR_SLOTS = ERROR_CODES + 1 };

typedef struct {
    uint16_t version;
    uint16_t unused16;
    uint32_t unused32;
    int64_t responses[ERROR_SLOTS];
} error_val_t;

/* collect.c updates the values with atomic adds (host->shared_slot) and reads their first
 * 8 bytes as one word (version | nbuckets << 16 | layout << 32, little-endian) to claim them. */
_Static_assert(offsetof(route_val_t, requests) == 8 && offsetof(upstream_val_t, responses) == 8 &&
                   offsetof(grpc_val_t, calls) == 8 && offsetof(error_val_t, responses) == 8,
               "a value's header is one 64-bit word");
_Static_assert(offsetof(route_val_t, buckets) == offsetof(route_val_t, sum_us) + 8 &&
                   offsetof(upstream_val_t, buckets) == offsetof(upstream_val_t, sum_us) + 8,
               "a histogram is sum_us followed by its buckets");
_Static_assert(sizeof(error_val_t) <= LABELS_MAX, "error value over the limit");
_Static_assert(sizeof(route_val_t) <= LABELS_MAX, "route value over the shared value limit");
_Static_assert(sizeof(grpc_val_t) <= LABELS_MAX, "grpc value over the limit");
_Static_assert(sizeof(upstream_val_t) <= LABELS_MAX, "upstream value over the limit");

/* A route's shared values by the config strings that name it. They belong to the instance's
 * configuration, so while the instance lives their addresses identify them: most exchanges
 * find their values here without hashing the labels. Each worker fills its own copy. */
#define ROUTE_CACHE 16 /* direct-mapped on the location's address */
typedef struct {
    const char *server, *location, *upstream; /* NULL server and location: an empty entry */
    void *route, *errors, *grpc;
} route_cache_t;

typedef struct stats {
    uint64_t bounds_us[MAX_BUCKETS];
    size_t nbuckets;
    uint32_t layout;
    route_cache_t routes[ROUTE_CACHE];
} stats_t;

/* What one exchange adds to a series. */
typedef struct {
    const stats_t *s;
    int observe; /* 1: count the exchange; 0: only move the in-flight gauge */
    int cls;     /* status class index */
    int bucket;  /* -1: no latency to observe */
    int64_t us;  /* the latency */
    int64_t bytes_in, bytes_out, in_flight;
} delta_t;

/* Per request, from the access phase to the log phase: the route's shared values (NULL
 * when the zone had no room). The in-flight gauge was incremented when `route` is set. */
typedef struct {
    void *route, *errors, *grpc;
} req_state_t;
#define KEY_LEN (sizeof KEY_PREFIX - 1 + 16 + 2) /* "stats|" + 16 hex digits + "|" + suffix */

/* collect.c: recording (the hooks), and the label cache the last instance frees */
torii_action_t stats_access(void *instance, torii_request_t *r, void **ctx);
torii_action_t stats_log(void *instance, torii_request_t *r, void **ctx);
void stats_peer_result(void *instance, torii_request_t *r, torii_str_t upstream,
                       torii_str_t address, torii_peer_outcome_t outcome, int status);
void stats_labels_forget(void);
/* Resolves the variables the hooks read (once per process); TORII_OK or an error. */
int stats_resolve_vars(void);

/* prometheus.c: GET /metrics; arg is the stats_t whose buckets are rendered */
void stats_render(void *arg, torii_buf_t *out);

/* config.c */
int stats_read_buckets(const torii_conf_t *conf, stats_t *s, int *explicit_buckets);
uint32_t stats_layout_of(const stats_t *s);
int stats_same_buckets(const stats_t *a, const stats_t *b);

#pragma GCC visibility pop

#endif /* TORII_STATS_STATS_H */
