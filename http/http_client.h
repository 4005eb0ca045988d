/* lwm2m-gw: an HTTP/1.1 client (libcurl multi interface) that lives in the one event loop.
 *
 * curl's sockets are watched by the loop (CURLMOPT_SOCKETFUNCTION) and its timeout is one loop
 * timer (CURLMOPT_TIMERFUNCTION); curl_multi_socket_action() runs from those callbacks only, so
 * nothing ever blocks (the libcurl multi-uv / hiperfifo pattern). Connections are reused across
 * requests to the same host (keep-alive). Only this file and http_client.c include libcurl.
 */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct http_client http_client_t;

typedef struct {
  /* TLS toward https:// URLs: trust anchor (NULL: the system's), and the gateway's own client
   * certificate and key when devices ask for one. Optional. */
  const char *ca_file;
  const char *cert_file;
  const char *key_file;
  uint32_t connect_timeout_ms; /* 0: 5000 */
  size_t max_response_body;    /* larger answers fail with "response too large"; 0: 65536 */
  unsigned max_in_flight;      /* requests at once; more are refused with GW_ERR_FULL; 0: 256 */
} http_client_conf_t;

typedef struct {
  const char *method;       /* "GET", "PUT", "POST", "DELETE"; required */
  const char *url;          /* absolute http:// or https:// URL; required */
  const char *content_type; /* Content-Type field, or NULL */
  const char *accept;       /* Accept field, or NULL (then no Accept is sent at all) */
  const char *authorization; /* Authorization field value, or NULL */
  const uint8_t *body;      /* copied; NULL when body_len is 0 */
  size_t body_len;
  uint32_t timeout_ms;      /* whole request; 0: 10000 */
} http_client_request_t;

/* The outcome of one request; borrowed for the done callback only. */
typedef struct {
  unsigned status;          /* HTTP status; 0 when no answer came (error set) */
  const char *content_type; /* Content-Type of the answer or NULL */
  const char *location;     /* Location of the answer or NULL */
  const uint8_t *body;      /* NULL when body_len is 0 */
  size_t body_len;
  const char *error;        /* why no answer came (curl's words: "Connection refused",
                               "Timeout was reached", "response too large"); NULL on an answer */
} http_client_response_t;

/* In the loop thread, exactly once per accepted request (also when cancelled by
 * http_client_free: status 0, error "cancelled"). */
typedef void (*http_client_done_cb_t)(void *arg, uint64_t id, const http_client_response_t *resp);

typedef struct {
  uint64_t started;
  uint64_t completed; /* an HTTP answer came, whatever its status */
  uint64_t failed;    /* no answer: connect error, timeout, too large, cancelled */
  unsigned in_flight;
} http_client_status_t;

int http_client_new(gw_loop_t *loop, const http_client_conf_t *conf, http_client_t **out_client);

/* Starts req (copied) and returns at once; *out_id (may be NULL) names it for
 * http_client_cancel. Returns GW_OK, GW_ERR_INVAL (no method / URL, or a URL curl refuses),
 * GW_ERR_FULL (max_in_flight), GW_ERR_NOMEM. done is never called from inside this call. */
int http_client_send(http_client_t *c, const http_client_request_t *req, http_client_done_cb_t done,
                     void *arg, uint64_t *out_id);

/* Drops request id if still running: its done callback is NOT called. Unknown ids are ignored. */
void http_client_cancel(http_client_t *c, uint64_t id);

/* Cancels everything (done called with "cancelled"), leaves the loop, frees, sets *c NULL. */
void http_client_free(http_client_t **c);

const http_client_status_t *http_client_status(const http_client_t *c);

#endif
