/* lwm2m-gw: an HTTP/1.1 server (libmicrohttpd) that lives in the one event loop.
 *
 * libmicrohttpd runs without threads of its own (MHD_USE_EPOLL, no internal thread): its epoll
 * fd is one fd of the gateway's loop and its timeout one timer. A request is handed to the
 * owner once its whole body is in; the owner answers at once or later (the connection is
 * suspended meanwhile: MHD_suspend_connection / MHD_resume_connection), exactly once. Only this
 * file and http_server.c include libmicrohttpd and GnuTLS.
 *
 * TLS (optional): server certificate and key; with a client CA, client certificates are asked
 * for and verified against it, and the subject's CN of a verified one is given with the
 * request. A missing or unverifiable certificate is not an error here (client_cert_cn NULL,
 * client_cert_error set): the owner decides what an anonymous client may do.
 *
 * Abuse (slowloris, floods): connections are limited in total and per client address, and a
 * request must arrive in time: its header within header_timeout_s of the connection's opening
 * (on a kept-alive connection: of the previous answer plus idle_timeout_s), its body within
 * body_timeout_s of the header. Whatever an idle timeout alone would let a client hold by
 * trickling bytes is thereby bounded. With all connections open, a new client takes the place
 * of the one waiting longest for its header, so that slow clients cannot keep others out even
 * until their deadline. A client that half-closes is noticed at once.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct http_server http_server_t;
/* One request waiting for its answer; valid from on_request until http_server_respond() or
 * on_abandoned(), whichever comes first. */
typedef struct http_exchange http_exchange_t;

typedef struct {
  const char *listen;          /* "host:port" or "[v6]:port"; required */
  const char *cert_file;       /* PEM; TLS when set (key_file then required) */
  const char *key_file;        /* PEM */
  const char *client_ca_file;  /* PEM; client certificates are requested and verified */
  size_t max_body;             /* larger bodies are answered 413 by the server; 0: 65536 */
  unsigned max_connections;    /* open at once; 0: 256. A new client takes the place of the
                                  one waiting longest for a request header, or is closed at
                                  once when all are busy with requests */
  unsigned max_connections_per_client; /* open at once from one address; more are closed at
                                          once; 0: 16 */
  unsigned idle_timeout_s;     /* a connection without traffic is closed after; 0: 60 */
  unsigned header_timeout_s;   /* a request's header must be complete within; 0: 10 */
  unsigned body_timeout_s;     /* a request's body must be complete within, after its header;
                                  0: 30 */
} http_server_conf_t;

/* What the owner gets; everything is borrowed for the on_request call only, except that the
 * exchange stays valid until answered or abandoned. */
typedef struct {
  const char *method;         /* as received, NUL-terminated */
  const char *target;         /* the request-target exactly as received (path and query, not
                                 percent-decoded), NUL-terminated */
  const char *content_type;   /* Content-Type field value or NULL */
  const char *authorization;  /* Authorization field value or NULL */
  const uint8_t *body;        /* NULL when body_len is 0 */
  size_t body_len;
  const char *peer_ip;        /* numeric address of the client ("127.0.0.1", "::1") */
  const char *client_cert_cn; /* CN of a client certificate verified against client_ca_file;
                                 NULL when none was given, TLS is off, or it failed */
  const char *client_cert_error; /* why a given certificate was not accepted; NULL otherwise */
} http_server_request_t;

/* Header fields of an answer; NULL members are left out. */
typedef struct {
  const char *content_type;
  const char *location;
  const char *www_authenticate; /* for 401 (RFC 9110 11.6.1) */
} http_server_headers_t;

typedef struct {
  void *arg;
  /* In the loop thread. The owner must call http_server_respond(x, ...) exactly once, now or
   * later, unless on_abandoned(x) comes first. */
  void (*on_request)(void *arg, http_exchange_t *x, const http_server_request_t *req);
  /* In the loop thread: the client went away (or the server is being freed) before the answer;
   * x must not be used any more. May be NULL. */
  void (*on_abandoned)(void *arg, http_exchange_t *x);
} http_server_callbacks_t;

typedef struct {
  uint64_t requests;        /* handed to on_request */
  uint64_t answered;        /* http_server_respond() calls */
  uint64_t abandoned;       /* clients gone before their answer */
  uint64_t refused;         /* answered by the server itself (413 body too large, 400 from
                               libmicrohttpd's own parser) */
  uint64_t tls_failures;    /* TLS handshakes that failed */
  uint64_t refused_per_client; /* connections closed at once: max_connections_per_client */
  uint64_t evicted;         /* connections waiting for a request header closed for a new
                               client when max_connections were open */
  uint64_t refused_busy;    /* connections closed at once: max_connections busy with requests */
  uint64_t header_timeouts; /* connections closed: header not complete in header_timeout_s */
  uint64_t body_timeouts;   /* connections closed: body not complete in body_timeout_s */
  unsigned connections;     /* open now */
} http_server_status_t;

/* Checks conf, loads the TLS files, binds and listens, joins the loop. Returns GW_OK,
 * GW_ERR_INVAL (bad listen address), GW_ERR_CONFIG (a TLS file unreadable or invalid),
 * GW_ERR_IO (bind or listen failed; errno logged), GW_ERR_NOMEM. */
int http_server_new(gw_loop_t *loop, const http_server_conf_t *conf,
                    const http_server_callbacks_t *cb, http_server_t **out_server);

/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const http_server_t *s);

/* Answers x (exactly once): status, header fields, body (copied; may be NULL with len 0).
 * Callable inside on_request or later from the loop thread. Returns GW_OK or GW_ERR_NOMEM (x is
 * then answered 500 without a body). */
int http_server_respond(http_exchange_t *x, unsigned status, const http_server_headers_t *h,
                        const uint8_t *body, size_t len);

/* Closes the listener and all connections (pending exchanges get on_abandoned), leaves the
 * loop, frees, sets *s to NULL. */
void http_server_free(http_server_t **s);

const http_server_status_t *http_server_status(const http_server_t *s);

#endif
