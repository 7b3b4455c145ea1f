/*
 * metrics_http.h - Prometheus text exposition on GET /metrics (libmicrohttpd).
 *
 * Threading: libmicrohttpd serves HTTP on its own internal thread. A scrape
 * hands a request to the loop thread (uv_async_send) and waits, bounded, on
 * a condition variable; the loop takes the snapshot (the snapshot source is
 * loop-only) and renders the text there. Names are sfp_* with base units,
 * counters end in _total, labels are per job and per tier only (never per
 * tensor); process_* metrics follow the Prometheus client conventions.
 * docs/OPERATIONS.md lists every metric.
 */
#ifndef SFPD_EDGES_METRICS_HTTP_H
#define SFPD_EDGES_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "base/config.h"
#include "base/stats.h"

struct uv_loop_s;
typedef struct sfpd_metrics sfpd_metrics;

/*
 * Serves cfg->metrics_listen ("host:port", "[v6]:port"; empty: *out = NULL,
 * returns 0). On success *out is owned by the caller. On failure logs why,
 * leaves nothing running and returns a negative errno.
 */
int sfpd_metrics_start(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_snapshot_source snap,
                       sfpd_metrics **out);
/* SIGTERM: scrapes answer with the draining gauge set to 1 from now on. */
void sfpd_metrics_set_draining(sfpd_metrics *m);
/* Loop thread: stops serving and closes the loop handle. Accepts NULL;
 * sets *m to NULL. Safe before or after uv_run returned. */
void sfpd_metrics_stop(sfpd_metrics **m);

/*
 * Renders s in the text exposition format 0.0.4 into a malloc'd string
 * (caller frees with sfpd_free) and its length; NULL on allocation failure.
 */
char *sfpd_metrics_render(const sfpd_snapshot *s, bool draining, size_t *len);

#endif /* SFPD_EDGES_METRICS_HTTP_H */
