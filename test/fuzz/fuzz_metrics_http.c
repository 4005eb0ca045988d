/* libFuzzer target for the metrics endpoint's request-line parser: whatever a local client sends
 * on gateway.metrics reaches gw_metrics_route() as it is read, one growing buffer at a time.
 *
 * Checks beyond "no crash": the verdict is one of the enum's values; it depends on the first
 * line only (so reading more never changes a decided request, and the buffer is INCOMPLETE until
 * that line ends, unless it has reached the 2048-byte request limit); and a request routed to
 * the metrics is exactly "GET" or "HEAD", SP, "/metrics", SP, "HTTP/1.". */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define REQUEST_MAX 2048 /* metrics.c */

static void check(bool ok) {
  if (!ok)
    abort();
}

static gw_http_route_t route_copy(const uint8_t *data, size_t size) {
  /* Exact-size copy: ASan catches a read past what was "received" so far. */
  char *copy = malloc(size ? size : 1);
  check(copy != NULL);
  if (size)
    memcpy(copy, data, size);
  gw_http_route_t r = gw_metrics_route(copy, size);
  free(copy);
  return r;
}

static bool starts_with(const uint8_t *data, size_t size, const char *prefix) {
  size_t n = strlen(prefix);
  return size >= n && memcmp(data, prefix, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gw_http_route_t r = gw_metrics_route((const char *)data, size);
  check(r == GW_HTTP_INCOMPLETE || r == GW_HTTP_METRICS || r == GW_HTTP_NOT_FOUND ||
        r == GW_HTTP_BAD_METHOD || r == GW_HTTP_BAD_REQUEST);

  const uint8_t *eol = memchr(data, '\n', size);
  if (!eol) {
    check(r == (size >= REQUEST_MAX ? GW_HTTP_BAD_REQUEST : GW_HTTP_INCOMPLETE));
    return 0;
  }
  size_t line_end = (size_t)(eol - data) + 1;
  check(r != GW_HTTP_INCOMPLETE);
  /* The first line decides: the same verdict with nothing after it ... */
  check(route_copy(data, line_end) == r);
  /* ... and without its newline the request is still being read. */
  gw_http_route_t before = route_copy(data, line_end - 1);
  check(before == (line_end - 1 >= REQUEST_MAX ? GW_HTTP_BAD_REQUEST : GW_HTTP_INCOMPLETE));

  if (r == GW_HTTP_METRICS)
    check(starts_with(data, line_end, "GET /metrics HTTP/1.") ||
          starts_with(data, line_end, "HEAD /metrics HTTP/1."));
  if (r == GW_HTTP_NOT_FOUND)
    check(starts_with(data, line_end, "GET ") || starts_with(data, line_end, "HEAD "));
  return 0;
}
