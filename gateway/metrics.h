/* lwm2m-gw: the metrics endpoint. A minimal HTTP/1.0 responder on gateway.metrics that serves
 * the counters of gateway.h in the Prometheus text format on GET /metrics. Loopback by default:
 * it is for the router's own monitoring agent. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>

#include "gateway.h"

typedef enum {
  GW_HTTP_INCOMPLETE,  /* no full request line yet */
  GW_HTTP_METRICS,     /* GET /metrics */
  GW_HTTP_NOT_FOUND,   /* GET elsewhere */
  GW_HTTP_BAD_METHOD,  /* anything but GET/HEAD */
  GW_HTTP_BAD_REQUEST  /* not an HTTP request line */
} gw_http_route_t;

/* Parses the request line at the start of buf (len bytes, need not be NUL terminated). */
gw_http_route_t gw_metrics_route(const char *buf, size_t len);

/* Writes the Prometheus text for gw into out; returns the length (truncated to out_size-1). */
size_t gw_metrics_format(const gw_gateway_t *gw, char *out, size_t out_size);

int gw_metrics_server_start(gw_gateway_t *gw, const char *listen);
void gw_metrics_server_stop(gw_gateway_t *gw);

#endif
