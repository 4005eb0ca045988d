/* lwm2m-gw: HTTP/1.1 server (libmicrohttpd) joined to the event loop (see http_server.h).
 *
 * libmicrohttpd runs in "external polling" mode with epoll and no thread of its own: its epoll
 * fd is watched by the loop, MHD_run() runs from that watcher and from one timer that follows
 * MHD_get_timeout(). Every libmicrohttpd callback therefore runs inside MHD_run(), in the loop
 * thread.
 *
 * One request is one http_exchange_t, allocated by the URI log callback (which sees the
 * request-target before libmicrohttpd decodes and splits it) and freed by the completion
 * callback. Its life:
 *
 *   URI callback -> handler (headers) -> handler (body pieces) -> handler (end of body):
 *     on_request; answered inside it -> queued at once; else MHD_suspend_connection()
 *   http_server_respond() later -> response stored, MHD_resume_connection(), MHD_run() soon ->
 *     handler once more -> MHD_queue_response() (libmicrohttpd wants it from the handler)
 *   completion callback -> on_abandoned if handed over and never answered; free
 *
 * Every connection also has an http_conn_t, from libmicrohttpd's "started" notification to its
 * "closed" one: the client's address (max_connections_per_client), the deadline of the request
 * under way (header_timeout_s, body_timeout_s; one timer for all), and a watch of its socket
 * for the client's hang-up (EPOLLRDHUP). The accept policy callback enforces the limits: at
 * max_connections a new client takes the place of the connection waiting longest for its
 * header, instead of waiting in the listen backlog (behind the reconnects of slow clients, as
 * the benchmark showed: 0 of 5 Registers in 30 s). The watch is there for two reasons:
 *  - libmicrohttpd does not watch a suspended connection, so it would not see a client that
 *    gives up while its request waits for the owner: that hang-up abandons the exchange and
 *    resumes the connection so that libmicrohttpd closes it;
 *  - libmicrohttpd 0.9.75 registers its sockets edge-triggered without EPOLLRDHUP and takes a
 *    short read for "no more to read": when the end of the stream comes with a client's last
 *    bytes (a few bytes, then close), no further event ever tells it, and the connection stays
 *    in CLOSE-WAIT, holding its slot, until idle_timeout_s. Once libmicrohttpd has read what
 *    there is, shutdown(SHUT_RD) on the socket wakes its epoll again; it reads the end of the
 *    stream and closes the connection (after sending an answer it is writing).
 * A deadline that passes shuts the socket down; libmicrohttpd sees the hang-up and closes it.
 * (Later libmicrohttpd versions add EPOLLRDHUP themselves; the wake is harmless there.) */
#include "http_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "gw_config.h"
#include "gw_error.h"
#include "gw_list.h"
#include "gw_log.h"

#define MOD "http"
#define DEFAULT_MAX_BODY 65536u
#define DEFAULT_MAX_CONNECTIONS 256u
#define DEFAULT_MAX_PER_CLIENT 16u
#define DEFAULT_IDLE_TIMEOUT_S 60u
#define DEFAULT_HEADER_TIMEOUT_S 10u
#define DEFAULT_BODY_TIMEOUT_S 30u
/* libmicrohttpd's own limit is above max_connections: a connection evicted to make room is
 * shut down at once but counted by libmicrohttpd until its next run, and one run accepts up to
 * 10 connections (daemon.c), so up to 20 may be on their way out. */
#define EVICTION_HEADROOM 20u
#define MAX_PEM_FILE (1024 * 1024) /* a PEM file larger than this is not a key or a CA list */
#define CN_MAX 256
#define PEER_IP_MAX 64 /* INET6_ADDRSTRLEN plus a scope id */

/* What the deadline of a connection guards: the request under way. */
typedef enum {
  CONN_AWAITING_HEADER, /* header_timeout_s from the opening (kept alive: + idle_timeout_s) */
  CONN_AWAITING_BODY,   /* body_timeout_s from the header */
  CONN_HANDED,          /* the owner's now: no deadline (the binding answers within its own) */
} conn_phase_t;

/* One TCP connection, from libmicrohttpd's "started" notification to its "closed" one. */
typedef struct http_conn {
  struct http_conn *prev, *next; /* server's list of open connections */
  http_server_t *server;
  int fd;                        /* libmicrohttpd's socket; it closes it */
  bool watched;                  /* fd watched by the loop for the client's hang-up */
  struct sockaddr_storage client; /* IPv4-mapped IPv6 as IPv4 (a dual-stack listener) */
  conn_phase_t phase;
  uint64_t deadline_ms;          /* 0: none */
  bool peer_closed;              /* the client half-closed or left */
  bool wake_pending;             /* libmicrohttpd must be woken to read the end of the stream */
  bool shut;                     /* shut down here; libmicrohttpd closes it next */
  http_exchange_t *exchange;     /* its request, from the URI callback to completion */
} http_conn_t;

struct http_exchange {
  struct http_exchange *prev, *next; /* server's list of live exchanges */
  http_server_t *server;
  struct MHD_Connection *conn;
  http_conn_t *link; /* its connection; NULL if that could not be tracked */
  char *target; /* raw request-target from the URI callback */
  uint8_t *body;
  size_t body_len, body_cap;
  bool headers_seen;  /* first handler call done */
  bool refused;       /* answered by the server itself (413, 500) */
  bool handed;        /* on_request called */
  bool answered;      /* http_server_respond() called */
  bool abandoned;     /* on_abandoned called */
  bool suspended;     /* MHD_suspend_connection() in force */
  struct MHD_Response *response; /* the answer until the handler queues it; NULL with answered:
                                    500 without a body */
  unsigned status;
};

struct http_server {
  gw_loop_t *loop;
  http_server_callbacks_t cb;
  struct MHD_Daemon *mhd;
  int epoll_fd; /* libmicrohttpd's, watched by the loop; -1 before */
  bool epoll_added;
  gw_timer_t timer;
  bool kick;     /* a connection was resumed: MHD_run() at once */
  bool stopping; /* http_server_free() running */
  size_t max_body;
  unsigned max_connections, max_per_client;
  unsigned idle_timeout_s, header_timeout_s, body_timeout_s;
  bool mhd_full;        /* libmicrohttpd's own limit reached: it stopped accepting */
  http_conn_t *conns;
  unsigned shut_count;  /* connections shut down here, still open until libmicrohttpd sees it */
  size_t wakes_pending; /* connections with wake_pending */
  gw_timer_t deadline_timer; /* at the earliest deadline of the connections */
  uint16_t port;
  bool verify_clients; /* client_ca_file given */
  char *cert_pem, *key_pem, *ca_pem; /* libmicrohttpd keeps pointers to these */
  struct MHD_Response *resp_413, *resp_500;
  http_exchange_t *exchanges;
  http_server_status_t status;
};

/* ---- helpers --------------------------------------------------------------------------------- */

static void free_secret(char *p) {
  if (p) {
    explicit_bzero(p, strlen(p));
    free(p);
  }
}

/* Reads a whole (PEM) file into a NUL-terminated buffer, for libmicrohttpd's *_MEM options. */
static int read_pem(const char *what, const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    GW_ERR(MOD, "%s %s: %s", what, path, strerror(errno));
    return GW_ERR_CONFIG;
  }
  char *buf = malloc(MAX_PEM_FILE + 1);
  if (!buf) {
    fclose(f);
    return GW_ERR_NOMEM;
  }
  size_t n = fread(buf, 1, MAX_PEM_FILE + 1, f);
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err || n == 0 || n > MAX_PEM_FILE) {
    GW_ERR(MOD, "%s %s: %s", what, path,
           err ? strerror(err) : n == 0 ? "empty file" : "larger than 1 MiB");
    explicit_bzero(buf, n > MAX_PEM_FILE ? MAX_PEM_FILE : n);
    free(buf);
    return GW_ERR_CONFIG;
  }
  buf[n] = '\0';
  *out = buf;
  return GW_OK;
}

/* libmicrohttpd only reports "cannot start" for a bad key or certificate, indistinguishable
 * from a failed bind: check the PEM texts with GnuTLS first, so that the operator is told
 * which file is wrong and gets GW_ERR_CONFIG. */
static int check_tls_files(const http_server_conf_t *conf, const http_server_t *s) {
  gnutls_certificate_credentials_t cred;
  if (gnutls_certificate_allocate_credentials(&cred) < 0)
    return GW_ERR_NOMEM;
  int rc = GW_OK;
  gnutls_datum_t cert = {(unsigned char *)s->cert_pem, (unsigned)strlen(s->cert_pem)};
  gnutls_datum_t key = {(unsigned char *)s->key_pem, (unsigned)strlen(s->key_pem)};
  int g = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
  if (g < 0) {
    GW_ERR(MOD, "cert_file %s / key_file %s: %s", conf->cert_file, conf->key_file,
           gnutls_strerror(g));
    rc = GW_ERR_CONFIG;
  }
  if (rc == GW_OK && s->ca_pem) {
    gnutls_datum_t ca = {(unsigned char *)s->ca_pem, (unsigned)strlen(s->ca_pem)};
    g = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
    if (g <= 0) {
      GW_ERR(MOD, "client_ca_file %s: %s", conf->client_ca_file,
             g < 0 ? gnutls_strerror(g) : "no certificate in it");
      rc = GW_ERR_CONFIG;
    }
  }
  gnutls_certificate_free_credentials(cred);
  return rc;
}

/* gw_parse_host_port() wants a port from 1 to 65535; a listener may ask for any free port
 * (":0"), so that one is parsed with port 1 and set back to 0. */
static int parse_listen(const char *text, struct sockaddr_storage *addr, unsigned *len) {
  size_t n = strlen(text);
  if (n >= 2 && strcmp(text + n - 2, ":0") == 0) {
    char *copy = strdup(text);
    if (!copy)
      return GW_ERR_NOMEM;
    copy[n - 1] = '1';
    int rc = gw_parse_host_port(copy, addr, len);
    free(copy);
    if (rc != 0)
      return GW_ERR_INVAL;
    if (addr->ss_family == AF_INET)
      ((struct sockaddr_in *)addr)->sin_port = 0;
    else if (addr->ss_family == AF_INET6)
      ((struct sockaddr_in6 *)addr)->sin6_port = 0;
    return GW_OK;
  }
  return gw_parse_host_port(text, addr, len) == 0 ? GW_OK : GW_ERR_INVAL;
}

/* The client's address, an IPv4-mapped IPv6 one (a client of a dual-stack listener) as plain
 * IPv4; AF_UNSPEC for any other family. */
static void client_address(const struct sockaddr *sa, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (!sa)
    return;
  if (sa->sa_family == AF_INET) {
    memcpy(out, sa, sizeof(struct sockaddr_in));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      memcpy(out, v6, sizeof *v6);
      return;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    v4->sin_family = AF_INET;
    v4->sin_port = v6->sin6_port;
    memcpy(&v4->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
  }
}

/* Same client: same address (the port does not count). */
static bool same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
  return false;
}

/* Numeric text of an address from client_address(): "192.0.2.1", "2001:db8::1", or "?". */
static void address_text(const struct sockaddr_storage *a, char *out, size_t size) {
  socklen_t len =
      a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (a->ss_family == AF_UNSPEC ||
      getnameinfo((const struct sockaddr *)a, len, out, (socklen_t)size, NULL, 0,
                  NI_NUMERICHOST) != 0)
    snprintf(out, size, "?");
}

static void peer_ip_text(struct MHD_Connection *conn, char *out, size_t size) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  struct sockaddr_storage a;
  client_address(ci ? ci->client_addr : NULL, &a);
  address_text(&a, out, size);
}

/* ---- TLS client certificates ----------------------------------------------------------------- */

static const char *cert_status_text(unsigned status) {
  if (status & GNUTLS_CERT_EXPIRED)
    return "certificate expired";
  if (status & GNUTLS_CERT_NOT_ACTIVATED)
    return "certificate not yet valid";
  if (status & GNUTLS_CERT_REVOKED)
    return "certificate revoked";
  if (status & GNUTLS_CERT_SIGNER_NOT_CA)
    return "issuer is not a CA";
  if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
    return "insecure signature algorithm";
  if (status & GNUTLS_CERT_SIGNATURE_FAILURE)
    return "bad certificate signature";
  return "certificate not trusted";
}

/* Verifies the client's certificate against client_ca_file; on success writes its subject CN
 * into cn (and returns NULL), on failure returns why. No certificate: NULL and cn empty.
 * GnuTLS asked for the certificate during the handshake but did not verify it (libmicrohttpd
 * uses GNUTLS_CERT_REQUEST), so that is done here, once per request. */
static const char *client_cert_check(struct MHD_Connection *conn, char *cn, size_t cn_size) {
  cn[0] = '\0';
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (!ci || !ci->tls_session)
    return NULL;
  gnutls_session_t session = (gnutls_session_t)ci->tls_session;
  unsigned npeers = 0;
  const gnutls_datum_t *peers = gnutls_certificate_get_peers(session, &npeers);
  if (!peers || npeers == 0)
    return NULL;
  unsigned status = 0;
  int g = gnutls_certificate_verify_peers2(session, &status);
  if (g < 0)
    return "certificate verification failed";
  if (status != 0)
    return cert_status_text(status);
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init(&crt) < 0)
    return "out of memory";
  const char *why = NULL;
  size_t size = cn_size;
  if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0)
    why = "certificate unreadable";
  else if ((g = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
                                                &size)) < 0)
    why = g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ? "certificate has no CN" : "CN unreadable";
  else if (size == 0 || strlen(cn) != size)
    why = "CN unreadable"; /* empty, or an embedded NUL */
  gnutls_x509_crt_deinit(crt);
  if (why)
    cn[0] = '\0';
  return why;
}

/* ---- running libmicrohttpd ------------------------------------------------------------------- */

/* The timer follows MHD_get_timeout(); a pending resume wants MHD_run() at once (the ITC would
 * wake the epoll fd too, but a 0 ms timer does not depend on that). */
static void rearm_timer(http_server_t *s) {
  MHD_UNSIGNED_LONG_LONG ms = 0;
  if (s->kick) {
    gw_timer_start(s->loop, &s->timer, 0);
  } else if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
    gw_timer_start(s->loop, &s->timer, ms);
  } else {
    gw_timer_stop(s->loop, &s->timer);
  }
}

static void conns_after_run(http_server_t *s);

static void run_mhd(http_server_t *s) {
  s->kick = false;
  if (MHD_run(s->mhd) != MHD_YES)
    GW_WARN(MOD, "MHD_run failed");
  conns_after_run(s);
  rearm_timer(s);
}

static void mhd_epoll_ready(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)fd;
  (void)events;
  run_mhd(arg);
}

static void mhd_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  run_mhd(arg);
}

/* ---- exchanges ------------------------------------------------------------------------------- */

/* Lets libmicrohttpd process x's connection again (to send the answer, or to close it). */
static void exchange_resume(http_exchange_t *x) {
  if (!x->suspended)
    return;
  x->suspended = false;
  MHD_resume_connection(x->conn);
  x->server->kick = true;
  if (!x->server->stopping)
    gw_timer_start(x->server->loop, &x->server->timer, 0);
}

static void exchange_abandon(http_exchange_t *x) {
  http_server_t *s = x->server;
  x->abandoned = true;
  s->status.abandoned++;
  GW_DEBUG(MOD, "%s: abandoned before its answer", x->target);
  if (s->cb.on_abandoned)
    s->cb.on_abandoned(s->cb.arg, x);
}

static void exchange_free(http_exchange_t *x) {
  http_server_t *s = x->server;
  if (x->link && x->link->exchange == x)
    x->link->exchange = NULL;
  GW_LIST_REMOVE(s->exchanges, x);
  if (x->response)
    MHD_destroy_response(x->response);
  free(x->target);
  free(x->body);
  free(x);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void deadline_timer_arm(http_server_t *s, uint64_t due_ms) {
  if (s->stopping || (gw_timer_active(&s->deadline_timer) && s->deadline_timer.due_ms <= due_ms))
    return;
  uint64_t now = gw_now_ms();
  gw_timer_start(s->loop, &s->deadline_timer, due_ms > now ? due_ms - now : 0);
}

/* The request under way on c is now in phase; it must be through it within after_s (0: no
 * deadline). */
static void conn_expect(http_conn_t *c, conn_phase_t phase, unsigned after_s) {
  if (!c || c->shut)
    return;
  c->phase = phase;
  c->deadline_ms = after_s ? gw_now_ms() + 1000ull * after_s : 0;
  if (c->deadline_ms)
    deadline_timer_arm(c->server, c->deadline_ms);
}

static void conn_unwatch(http_conn_t *c) {
  if (c->watched)
    gw_loop_del_fd(c->server->loop, c->fd);
  c->watched = false;
}

/* Ends c from outside libmicrohttpd: it sees the hang-up on its epoll fd and closes the
 * connection (completion and "closed" notifications follow). */
static void conn_shut(http_conn_t *c) {
  c->shut = true;
  c->server->shut_count++;
  c->deadline_ms = 0;
  shutdown(c->fd, SHUT_RDWR);
}

static void conn_time_out(http_conn_t *c) {
  http_server_t *s = c->server;
  char ip[PEER_IP_MAX];
  address_text(&c->client, ip, sizeof ip);
  if (c->phase == CONN_AWAITING_HEADER) {
    s->status.header_timeouts++;
    GW_INFO_LIMITED(MOD, "%s: request header not complete in time (header_timeout_s %u); "
                    "connection closed", ip, s->header_timeout_s);
  } else {
    s->status.body_timeouts++;
    GW_INFO_LIMITED(MOD, "%s: request body not complete in time (body_timeout_s %u); "
                    "connection closed", ip, s->body_timeout_s);
  }
  conn_shut(c);
}

/* The deadline timer: closes the connections whose deadline passed, waits for the next one. */
static void deadlines_due(gw_loop_t *loop, void *arg) {
  (void)loop;
  http_server_t *s = arg;
  uint64_t now = gw_now_ms(), next = 0;
  for (http_conn_t *c = s->conns; c; c = c->next) {
    if (!c->deadline_ms)
      continue;
    if (c->deadline_ms <= now)
      conn_time_out(c);
    else if (!next || c->deadline_ms < next)
      next = c->deadline_ms;
  }
  if (next)
    deadline_timer_arm(s, next);
}

/* The client half-closed or left (EPOLLRDHUP, EPOLLHUP): see the top of this file. */
static void on_peer_closed(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)fd;
  (void)events;
  http_conn_t *c = arg;
  http_server_t *s = c->server;
  conn_unwatch(c); /* level-triggered: it would fire again and again */
  c->peer_closed = true;
  if (c->shut)
    return;
  http_exchange_t *x = c->exchange;
  if (x && x->suspended) { /* its request waits for the owner */
    if (!x->answered && !x->abandoned)
      exchange_abandon(x);
    exchange_resume(x); /* libmicrohttpd then sees the closed socket, or the handler says MHD_NO */
    return;
  }
  c->wake_pending = true;
  s->wakes_pending++;
  s->kick = true; /* conns_after_run() once libmicrohttpd has read what came before the end */
  rearm_timer(s);
}

/* After each MHD_run(): wakes libmicrohttpd for the half-closed connections whose bytes it has
 * all read (the rest wait until it has), and runs it again once it is below its own connection
 * limit (it takes its listening socket back into its epoll set only at the start of a run). */
static void conns_after_run(http_server_t *s) {
  for (http_conn_t *c = s->conns; c && s->wakes_pending; c = c->next) {
    int unread = 0;
    if (!c->wake_pending || (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0))
      continue;
    c->wake_pending = false;
    s->wakes_pending--;
    shutdown(c->fd, SHUT_RD);
    s->kick = true;
  }
  if (s->mhd_full && s->status.connections < s->max_connections + EVICTION_HEADROOM) {
    s->mhd_full = false;
    s->kick = true;
  }
}

/* The connection to close for a new client when max_connections are open: the one that has
 * waited longest for a request header (the earliest deadline of that phase). A client that
 * trickles its header (slowloris) is such a connection by construction; a legitimate one sends
 * its header at once, or idles between requests (RFC 9112 9.3 lets a server close that). NULL
 * when all are busy with a request. */
static http_conn_t *eviction_victim(http_server_t *s) {
  http_conn_t *victim = NULL;
  for (http_conn_t *c = s->conns; c; c = c->next)
    if (!c->shut && c->phase == CONN_AWAITING_HEADER &&
        (!victim || c->deadline_ms <= victim->deadline_ms)) /* the list is newest first */
      victim = c;
  return victim;
}

/* libmicrohttpd's accept policy: at most max_per_client connections from one address, and at
 * most max_connections in all, a new client taking the place of one that waits for its header
 * (rather than waiting in the listen backlog behind the reconnects of slow clients). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addrlen;
  http_server_t *s = cls;
  struct sockaddr_storage client;
  client_address(addr, &client);
  unsigned from_client = 0;
  for (http_conn_t *c = s->conns; c; c = c->next)
    if (!c->shut && same_client(&c->client, &client))
      from_client++;
  char ip[PEER_IP_MAX];
  if (from_client >= s->max_per_client) {
    s->status.refused_per_client++;
    address_text(&client, ip, sizeof ip);
    GW_INFO_LIMITED(MOD, "%s: %u connections open from this address already "
                    "(max_connections_per_client); connection refused", ip, from_client);
    return MHD_NO;
  }
  if (s->status.connections - s->shut_count < s->max_connections)
    return MHD_YES;
  http_conn_t *victim = eviction_victim(s);
  if (!victim) {
    s->status.refused_busy++;
    address_text(&client, ip, sizeof ip);
    GW_NOTICE_LIMITED(MOD, "%s: all %u connections busy with requests (max_connections); "
                      "connection refused", ip, s->max_connections);
    return MHD_NO;
  }
  s->status.evicted++;
  address_text(&victim->client, ip, sizeof ip);
  GW_INFO_LIMITED(MOD, "%s: connection waiting for a request header closed to make room "
                  "(max_connections %u)", ip, s->max_connections);
  conn_shut(victim);
  return MHD_YES;
}

static void conn_open(http_server_t *s, struct MHD_Connection *conn, void **socket_context) {
  if (++s->status.connections >= s->max_connections + EVICTION_HEADROOM)
    s->mhd_full = true;
  int fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
  http_conn_t *c = calloc(1, sizeof *c);
  if (!c) { /* untracked, it would escape the deadlines */
    GW_WARN(MOD, "out of memory for a connection; closed");
    shutdown(fd, SHUT_RDWR);
    return;
  }
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  client_address(ci ? ci->client_addr : NULL, &c->client);
  c->server = s;
  c->fd = fd;
  GW_LIST_PUSH(s->conns, c);
  c->watched = gw_loop_add_fd(s->loop, c->fd, EPOLLRDHUP, on_peer_closed, c) == GW_OK;
  conn_expect(c, CONN_AWAITING_HEADER, s->header_timeout_s);
  *socket_context = c;
}

static void conn_close(http_server_t *s, http_conn_t *c) {
  if (s->status.connections > 0)
    s->status.connections--;
  if (!c)
    return;
  conn_unwatch(c);
  if (c->wake_pending)
    s->wakes_pending--;
  if (c->shut)
    s->shut_count--;
  if (c->exchange)
    c->exchange->link = NULL;
  GW_LIST_REMOVE(s->conns, c);
  free(c);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  http_server_t *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn_open(s, conn, socket_context);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    conn_close(s, *socket_context);
    *socket_context = NULL;
  }
}

/* ---- requests -------------------------------------------------------------------------------- */

/* libmicrohttpd's URI log callback: the first sight of a request, before the target is
 * percent-decoded and split at '?'. What it returns is the handler's first *req_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  http_server_t *s = cls;
  http_exchange_t *x = calloc(1, sizeof *x);
  if (!x)
    return NULL;
  x->target = strdup(uri ? uri : "");
  if (!x->target) {
    free(x);
    return NULL;
  }
  x->server = s;
  x->conn = conn;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  x->link = ci ? ci->socket_context : NULL;
  if (x->link)
    x->link->exchange = x;
  GW_LIST_PUSH(s->exchanges, x);
  return x;
}

/* The request is over; a kept-alive connection now waits for the next one: idle (up to
 * idle_timeout_s), then its header (header_timeout_s). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn;
  (void)toe;
  http_server_t *s = cls;
  http_exchange_t *x = *req_cls;
  if (!x)
    return;
  *req_cls = NULL;
  if (x->handed && !x->answered && !x->abandoned)
    exchange_abandon(x);
  conn_expect(x->link, CONN_AWAITING_HEADER, s->idle_timeout_s + s->header_timeout_s);
  exchange_free(x);
}

/* Lines of libmicrohttpd's error log that report what a client did (closed early, sent a bad
 * field), not trouble of the gateway. */
static bool client_fault_line(const char *line) {
  static const char *const prefixes[] = {
      "Connection was closed by remote", "Socket has been disconnected",
      "Connection socket is closed",     "Failed to send",
      "Server reached connection limit", "Too large value of",
      "Failed to parse",                 "Received HTTP/1.1 request without",
      "Not enough memory in pool",       NULL};
  for (const char *const *p = prefixes; *p; p++)
    if (strncmp(line, *p, strlen(*p)) == 0)
      return true;
  return false;
}

/* libmicrohttpd's error log. libmicrohttpd has no callback for a failed TLS handshake nor for
 * a request it answers itself (400 for a malformed one, 505, 431...), but logs each one: those
 * lines are what tls_failures and refused count. They are the clients' faults, so INFO (any
 * port scan makes some), and every line is rate-limited: a flood must not fill the log.
 * "Application reported internal error" follows every MHD_NO of ours, each already logged
 * with its reason. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  http_server_t *s = cls;
  char line[256];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  const char *code = strstr(line, "HTTP response code is ");
  if (strstr(line, "handshake")) {
    s->status.tls_failures++;
    GW_INFO_LIMITED(MOD, "TLS handshake failed: %s", line);
  } else if (strncmp(line, "Error processing request", 24) == 0) {
    s->status.refused++;
    GW_INFO_LIMITED(MOD, "malformed request answered %.3s by libmicrohttpd",
                    code ? code + strlen("HTTP response code is ") : "4xx");
  } else if (strncmp(line, "Application reported internal error", 35) == 0) {
    GW_DEBUG(MOD, "libmicrohttpd: %s", line);
  } else if (client_fault_line(line)) {
    GW_INFO_LIMITED(MOD, "libmicrohttpd: %s", line);
  } else {
    GW_WARN_LIMITED(MOD, "libmicrohttpd: %s", line);
  }
}

static enum MHD_Result refuse(http_exchange_t *x, unsigned status, struct MHD_Response *r) {
  x->refused = true;
  x->server->status.refused++;
  return MHD_queue_response(x->conn, status, r);
}

/* The answer stored by http_server_respond(), or 500 when it could not be built. */
static enum MHD_Result queue_answer(http_exchange_t *x) {
  http_server_t *s = x->server;
  enum MHD_Result ret;
  if (x->response) {
    ret = MHD_queue_response(x->conn, x->status, x->response);
    MHD_destroy_response(x->response); /* the queued response holds its own reference */
    x->response = NULL;
  } else {
    ret = MHD_queue_response(x->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, s->resp_500);
  }
  return ret;
}

/* First handler call, headers only: a declared body over max_body is refused before it is
 * read (no 100 Continue is sent then); a declared one that fits gets its buffer now. */
static enum MHD_Result on_headers(http_exchange_t *x) {
  http_server_t *s = x->server;
  x->headers_seen = true;
  conn_expect(x->link, CONN_AWAITING_BODY, s->body_timeout_s);
  const char *cl = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (!cl)
    return MHD_YES;
  unsigned long long declared = 0;
  for (const char *p = cl; *p >= '0' && *p <= '9'; p++) {
    declared = declared * 10 + (unsigned)(*p - '0');
    if (declared > s->max_body)
      break;
  }
  if (declared > s->max_body) {
    GW_INFO_LIMITED(MOD, "%s: body of %s bytes refused (max_body %zu)", x->target, cl,
                    s->max_body);
    return refuse(x, MHD_HTTP_CONTENT_TOO_LARGE, s->resp_413);
  }
  if (declared > 0) {
    x->body = malloc((size_t)declared);
    if (!x->body)
      return refuse(x, MHD_HTTP_INTERNAL_SERVER_ERROR, s->resp_500);
    x->body_cap = (size_t)declared;
  }
  return MHD_YES;
}

/* A piece of the body. libmicrohttpd does not let the handler answer while the body comes in,
 * so a chunked body that grows past max_body closes the connection. */
static enum MHD_Result on_body(http_exchange_t *x, const char *data, size_t *size) {
  http_server_t *s = x->server;
  size_t n = *size;
  *size = 0;
  if (n > s->max_body - x->body_len) {
    GW_INFO_LIMITED(MOD, "%s: body over max_body %zu, connection closed", x->target,
                    s->max_body);
    x->refused = true;
    s->status.refused++;
    return MHD_NO;
  }
  if (x->body_len + n > x->body_cap) {
    size_t cap = x->body_cap ? x->body_cap : 1024;
    while (cap < x->body_len + n)
      cap *= 2;
    if (cap > s->max_body)
      cap = s->max_body;
    uint8_t *b = realloc(x->body, cap);
    if (!b) {
      GW_WARN(MOD, "%s: out of memory for the body, connection closed", x->target);
      return MHD_NO;
    }
    x->body = b;
    x->body_cap = cap;
  }
  memcpy(x->body + x->body_len, data, n);
  x->body_len += n;
  return MHD_YES;
}

/* The request waits for the owner's answer, suspended; unless its client has left already
 * (on_peer_closed() came before the request was read): then it is abandoned and closed. */
static enum MHD_Result wait_for_owner(http_exchange_t *x) {
  if (x->link && x->link->peer_closed) {
    if (!x->abandoned)
      exchange_abandon(x);
    return MHD_NO;
  }
  MHD_suspend_connection(x->conn);
  x->suspended = true;
  return MHD_YES;
}

/* The whole request is in: hand it over, then queue the answer given meanwhile, or suspend. */
static enum MHD_Result hand_over(http_exchange_t *x, const char *method) {
  http_server_t *s = x->server;
  char peer_ip[PEER_IP_MAX];
  char cn[CN_MAX];
  peer_ip_text(x->conn, peer_ip, sizeof peer_ip);
  const char *cert_error = NULL;
  cn[0] = '\0';
  if (s->verify_clients)
    cert_error = client_cert_check(x->conn, cn, sizeof cn);
  http_server_request_t req = {
      .method = method,
      .target = x->target,
      .content_type = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_TYPE),
      .authorization = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION),
      .body = x->body_len ? x->body : NULL,
      .body_len = x->body_len,
      .peer_ip = peer_ip,
      .client_cert_cn = cn[0] ? cn : NULL,
      .client_cert_error = cert_error,
  };
  if (cert_error)
    GW_INFO_LIMITED(MOD, "%s: client certificate not accepted: %s", peer_ip, cert_error);
  x->handed = true;
  conn_expect(x->link, CONN_HANDED, 0);
  s->status.requests++;
  if (s->cb.on_request)
    s->cb.on_request(s->cb.arg, x, &req);
  else
    http_server_respond(x, 503, NULL, NULL, 0);
  if (x->answered)
    return queue_answer(x);
  return wait_for_owner(x);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **req_cls) {
  (void)url; /* decoded and without the query: x->target is used instead */
  (void)version;
  http_server_t *s = cls;
  http_exchange_t *x = *req_cls;
  if (!x) /* the URI callback could not allocate */
    return MHD_queue_response(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, s->resp_500);
  if (x->abandoned) /* resumed after the client hung up: close */
    return MHD_NO;
  if (x->answered) /* resumed by http_server_respond() */
    return queue_answer(x);
  if (x->handed) /* resumed without an answer: keep waiting */
    return wait_for_owner(x);
  if (!x->headers_seen)
    return on_headers(x);
  if (*upload_data_size)
    return on_body(x, upload_data, upload_data_size);
  return hand_over(x, method);
}

/* ---- API ------------------------------------------------------------------------------------- */

static bool header_value_ok(const char *v) { return !v || !strpbrk(v, "\r\n"); }

/* Builds x's answer into x->response; on failure leaves it NULL (answered 500). */
static int build_response(http_exchange_t *x, unsigned status, const http_server_headers_t *h,
                          const uint8_t *body, size_t len) {
  if (status < 200 || status > 599 || (len && !body) ||
      (h && (!header_value_ok(h->content_type) || !header_value_ok(h->location) ||
             !header_value_ok(h->www_authenticate)))) {
    GW_WARN(MOD, "%s: bad answer (status %u or a header field with CR/LF), answered 500",
            x->target, status);
    return GW_ERR_INVAL;
  }
  struct MHD_Response *r =
      len ? MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY)
          : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!r)
    return GW_ERR_NOMEM;
  bool ok = true;
  if (h && h->content_type)
    ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, h->content_type);
  if (h && h->location)
    ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, h->location);
  if (h && h->www_authenticate)
    ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, h->www_authenticate);
  if (!ok) {
    MHD_destroy_response(r);
    return GW_ERR_NOMEM;
  }
  x->response = r;
  x->status = status;
  return GW_OK;
}

int http_server_respond(http_exchange_t *x, unsigned status, const http_server_headers_t *h,
                        const uint8_t *body, size_t len) {
  if (!x)
    return GW_ERR_INVAL;
  if (!x->handed || x->answered || x->abandoned) {
    GW_WARN(MOD, "%s: answered twice, or after on_abandoned; ignored", x->target);
    return GW_ERR_INVAL;
  }
  x->answered = true;
  x->server->status.answered++;
  int rc = build_response(x, status, h, body, len);
  exchange_resume(x); /* outside on_request: the handler queues it when called again */
  return rc;
}

static void server_stop_mhd(http_server_t *s) {
  if (!s->mhd)
    return;
  /* libmicrohttpd must not be stopped with suspended connections: abandon what waits for the
   * owner (on_abandoned may answer others: they are then just answered), then resume all, and
   * let MHD_stop_daemon() close them (the completion callback frees the exchanges). */
  s->stopping = true;
  for (http_exchange_t *x = s->exchanges; x; x = x->next)
    if (x->handed && !x->answered && !x->abandoned)
      exchange_abandon(x);
  for (http_exchange_t *x = s->exchanges; x; x = x->next)
    exchange_resume(x);
  if (s->epoll_added)
    gw_loop_del_fd(s->loop, s->epoll_fd);
  s->epoll_added = false;
  MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
  while (s->conns) /* none left: MHD_stop_daemon() notifies each closed; defensive */
    conn_close(s, s->conns);
}

void http_server_free(http_server_t **sp) {
  if (!sp || !*sp)
    return;
  http_server_t *s = *sp;
  *sp = NULL;
  gw_timer_stop(s->loop, &s->timer);
  gw_timer_stop(s->loop, &s->deadline_timer);
  server_stop_mhd(s);
  gw_timer_stop(s->loop, &s->timer);
  while (s->exchanges) /* none left after MHD_stop_daemon(); defensive */
    exchange_free(s->exchanges);
  if (s->resp_413)
    MHD_destroy_response(s->resp_413);
  if (s->resp_500)
    MHD_destroy_response(s->resp_500);
  free(s->cert_pem);
  free_secret(s->key_pem);
  free(s->ca_pem);
  free(s);
}

static int load_tls(http_server_t *s, const http_server_conf_t *conf) {
  if (!conf->cert_file)
    return GW_OK;
  if (!conf->key_file) {
    GW_ERR(MOD, "cert_file %s given without key_file", conf->cert_file);
    return GW_ERR_CONFIG;
  }
  int rc = read_pem("cert_file", conf->cert_file, &s->cert_pem);
  if (rc == GW_OK)
    rc = read_pem("key_file", conf->key_file, &s->key_pem);
  if (rc == GW_OK && conf->client_ca_file)
    rc = read_pem("client_ca_file", conf->client_ca_file, &s->ca_pem);
  if (rc == GW_OK)
    rc = check_tls_files(conf, s);
  s->verify_clients = s->ca_pem != NULL;
  return rc;
}

static int start_mhd(http_server_t *s, const http_server_conf_t *conf,
                     struct sockaddr_storage *addr) {
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (addr->ss_family == AF_INET6) {
    /* "[::]" means every address, IPv4 too, as it does for most daemons */
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
    flags |= IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  }
  if (s->cert_pem)
    flags |= MHD_USE_TLS;
  struct MHD_OptionItem opts[16];
  size_t n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
  OPT(MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s); /* first: it logs the options' errors */
  OPT(MHD_OPTION_SOCK_ADDR, 0, addr);
  OPT(MHD_OPTION_URI_LOG_CALLBACK, on_uri, s);
  OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
  OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
  OPT(MHD_OPTION_CONNECTION_LIMIT, s->max_connections + EVICTION_HEADROOM, NULL);
  OPT(MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s, NULL);
  if (s->cert_pem) {
    OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
    OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
    if (s->ca_pem)
      OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->ca_pem); /* GnuTLS then asks for a certificate */
  }
  OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
  errno = 0;
  s->mhd = MHD_start_daemon(flags, 0, on_accept, s, on_access, s, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
  if (!s->mhd) {
    GW_ERR(MOD, "cannot listen on %s: %s", conf->listen,
           errno ? strerror(errno) : "libmicrohttpd refused to start");
    return GW_ERR_IO;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  s->epoll_fd = di ? di->epoll_fd : -1;
  di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : 0;
  if (s->epoll_fd < 0)
    return GW_ERR_IO;
  int rc = gw_loop_add_fd(s->loop, s->epoll_fd, EPOLLIN, mhd_epoll_ready, s);
  if (rc != GW_OK)
    return rc;
  s->epoll_added = true;
  rearm_timer(s);
  return GW_OK;
}

int http_server_new(gw_loop_t *loop, const http_server_conf_t *conf,
                    const http_server_callbacks_t *cb, http_server_t **out_server) {
  if (!out_server)
    return GW_ERR_INVAL;
  *out_server = NULL;
  if (!loop || !conf || !conf->listen) {
    GW_ERR(MOD, "listen address missing");
    return GW_ERR_INVAL;
  }
  struct sockaddr_storage addr;
  unsigned addr_len = 0;
  int rc = parse_listen(conf->listen, &addr, &addr_len);
  if (rc != GW_OK) {
    if (rc == GW_ERR_INVAL)
      GW_ERR(MOD, "listen \"%s\": expected host:port or [v6]:port", conf->listen);
    return rc;
  }
  http_server_t *s = calloc(1, sizeof *s);
  if (!s)
    return GW_ERR_NOMEM;
  s->loop = loop;
  s->epoll_fd = -1;
  if (cb)
    s->cb = *cb;
  s->max_body = conf->max_body ? conf->max_body : DEFAULT_MAX_BODY;
#define OR_DEFAULT(v, d) ((v) ? (v) : (d))
  s->max_connections = OR_DEFAULT(conf->max_connections, DEFAULT_MAX_CONNECTIONS);
  s->max_per_client = OR_DEFAULT(conf->max_connections_per_client, DEFAULT_MAX_PER_CLIENT);
  s->idle_timeout_s = OR_DEFAULT(conf->idle_timeout_s, DEFAULT_IDLE_TIMEOUT_S);
  s->header_timeout_s = OR_DEFAULT(conf->header_timeout_s, DEFAULT_HEADER_TIMEOUT_S);
  s->body_timeout_s = OR_DEFAULT(conf->body_timeout_s, DEFAULT_BODY_TIMEOUT_S);
#undef OR_DEFAULT
  gw_timer_init(&s->timer, mhd_timer_fired, s);
  gw_timer_init(&s->deadline_timer, deadlines_due, s);
  s->resp_413 = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  s->resp_500 = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  rc = !s->resp_413 || !s->resp_500 ? GW_ERR_NOMEM : load_tls(s, conf);
  if (rc == GW_OK)
    rc = start_mhd(s, conf, &addr);
  if (rc != GW_OK) {
    http_server_free(&s);
    return rc;
  }
  GW_INFO(MOD, "listening on %s (port %u)%s%s", conf->listen, (unsigned)s->port,
          s->cert_pem ? ", TLS" : "", s->verify_clients ? ", client certificates" : "");
  *out_server = s;
  return GW_OK;
}

uint16_t http_server_port(const http_server_t *s) { return s ? s->port : 0; }

const http_server_status_t *http_server_status(const http_server_t *s) {
  return s ? &s->status : NULL;
}
