/* lwm2m-gw: HTTP/1.1 client on libcurl's multi interface, joined to the loop (see http_client.h).
 *
 * The libcurl multi-uv / ephiperfifo pattern: curl tells us which sockets to watch for what
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it up (CURLMOPT_TIMERFUNCTION); the loop calls
 * curl_multi_socket_action() when a socket is ready or the timer runs out, and finished transfers
 * are collected with curl_multi_info_read() right after. curl_multi_socket_action() is never
 * called from inside one of curl's own callbacks, and the owner's done callbacks run only from
 * the loop (never inside a curl call), so they may start, cancel, or even free, freely.
 *
 * Everything runs in the loop thread; the only other thread is curl's resolver, which curl
 * keeps to itself (CURLOPT_NOSIGNAL: it never uses signals for resolver timeouts). */
#include "http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include <curl/curl.h>

#include "gw_error.h"
#include "gw_list.h"
#include "gw_log.h"
#include "gw_text.h"

#define MOD "http"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_RESPONSE_BODY 65536u
#define DEFAULT_MAX_IN_FLIGHT 256u
/* Connections at once to one host:port; more requests wait inside curl for a free one (HTTP/1.1
 * has one request per connection at a time: RFC 9112 section 9.3.2 pipelining is not used). A
 * device is a small HTTP server; a handful of parallel connections is what it can take. */
#define MAX_HOST_CONNECTIONS 4L
/* Bounds of the captured fields: a media type is at most 127 + 1 + 127 characters before its
 * parameters (RFC 6838 section 4.2); a Location is a URI reference, kept as long as a target the
 * mapping layer accepts. Longer values are dropped, not cut: a cut Location would be wrong. */
#define MAX_CONTENT_TYPE 256u
#define MAX_LOCATION 2048u
#define ERR_TOO_LARGE "response too large"
#define ERR_CANCELLED "cancelled"

typedef struct http_req {
  struct http_req *next, *prev;
  http_client_t *c;
  uint64_t id;
  CURL *easy;
  struct curl_slist *headers;
  http_client_done_cb_t done;
  void *arg;
  char method[16]; /* for the log */
  uint8_t *body;   /* the answer's */
  size_t body_len, body_cap;
  char *content_type, *location;
  bool too_large, nomem;
  char errbuf[CURL_ERROR_SIZE];
  char error[CURL_ERROR_SIZE + 64];
} http_req_t;

/* One socket curl asked us to watch. Kept in a list by fd number, the loop's key, so that the
 * client can always unwatch what it watches; also given to curl (curl_multi_assign) to tell a
 * socket curl knows from a new one with a reused number (see on_socket). */
typedef struct sock_watch {
  struct sock_watch *next;
  curl_socket_t fd;
  uint32_t events;
} sock_watch_t;

struct http_client {
  gw_loop_t *loop;
  CURLM *multi;
  gw_timer_t timer; /* curl's one timeout */
  char *ca_file, *cert_file, *key_file;
  uint32_t connect_timeout_ms;
  size_t max_response_body;
  unsigned max_in_flight;
  http_req_t *reqs; /* running, newest first */
  uint64_t last_id;
  sock_watch_t *socks;
  int depth;    /* loop callbacks of ours on the stack */
  bool closing; /* http_client_free() has begun: no new requests */
  bool dead;    /* freed from inside a callback: the outermost one releases the memory */
  http_client_status_t status;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static int global_init(void) {
  /* The gateway is single-threaded: a plain flag is enough to call this once per process. */
  static bool done;
  if (done)
    return GW_OK;
  CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    GW_ERR(MOD, "curl_global_init: %s", curl_easy_strerror(rc));
    return GW_ERR_IO;
  }
  done = true;
  return GW_OK;
}


/* A method is an RFC 9110 token (section 9.1, 5.6.2): anything else would let the caller write
 * into the request line. */
static bool method_ok(const char *m) {
  if (!m || !*m || strlen(m) >= sizeof(((http_req_t *)0)->method))
    return false;
  for (const char *p = m; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          strchr("!#$%&'*+-.^_`|~", ch)))
      return false;
  }
  return true;
}

/* A field value (RFC 9110 section 5.5): no CR, LF or other control character, so a value can
 * never end the field and start another one. */
static bool field_value_ok(const char *v) {
  if (!v)
    return true;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
      return false;
  return true;
}

/* Whether curl's own URL parser takes url as an absolute http:// or https:// URL. */
static int url_check(const char *url) {
  if (!url)
    return GW_ERR_INVAL;
  CURLU *u = curl_url();
  if (!u)
    return GW_ERR_NOMEM;
  char *scheme = NULL;
  int rc = GW_ERR_INVAL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0))
    rc = GW_OK;
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

/* ---- the request list ------------------------------------------------------------------------ */

static void req_link(http_client_t *c, http_req_t *r) { GW_LIST_PUSH(c->reqs, r); }

static void req_unlink(http_client_t *c, http_req_t *r) { GW_LIST_REMOVE(c->reqs, r); }

static http_req_t *req_find(const http_client_t *c, uint64_t id) {
  for (http_req_t *r = c->reqs; r; r = r->next)
    if (r->id == id)
      return r;
  return NULL;
}

/* The easy handle must be out of the multi handle already. */
static void req_free(http_req_t *r) {
  if (!r)
    return;
  if (r->easy)
    curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r->content_type);
  free(r->location);
  free(r);
}

/* Takes r out of the client (list, multi handle, in_flight) and counts it. */
static void req_detach(http_client_t *c, http_req_t *r, bool answered) {
  req_unlink(c, r);
  curl_multi_remove_handle(c->multi, r->easy);
  c->status.in_flight--;
  if (answered)
    c->status.completed++;
  else
    c->status.failed++;
}

/* ---- curl's per-transfer callbacks ----------------------------------------------------------- */

/* Accumulates the body up to max_response_body; returning less than given makes curl abort
 * the transfer (CURLE_WRITE_ERROR), which is then reported as ERR_TOO_LARGE. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  http_req_t *r = arg;
  size_t len = size * nmemb, max = r->c->max_response_body;
  if (len > max - r->body_len) {
    r->too_large = true;
    return 0;
  }
  if (r->body_len + len > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : max < 1024 ? max : 1024;
    while (cap < r->body_len + len)
      cap = cap > max / 2 ? max : cap * 2;
    uint8_t *b = realloc(r->body, cap);
    if (!b) {
      r->nomem = true;
      return 0;
    }
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  return len;
}

/* If line is the field `name` (case-insensitive, RFC 9110 section 5.1), replaces *out with its
 * value without the surrounding whitespace (OWS, section 5.6.3) and line end. */
static void capture_field(http_req_t *r, const char *line, size_t len, const char *name,
                          size_t max, char **out) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
    return;
  const char *v = line + n + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t vlen = (size_t)(end - v);
  if (vlen >= max) {
    GW_DEBUG(MOD, "request %llu: %s of %zu bytes ignored", (unsigned long long)r->id, name, vlen);
    return;
  }
  char *copy = strndup(v, vlen);
  if (!copy) {
    r->nomem = true;
    return;
  }
  free(*out);
  *out = copy;
}

/* Called once per header line, status lines included. */
static size_t on_header(char *line, size_t size, size_t nitems, void *arg) {
  http_req_t *r = arg;
  size_t len = size * nitems;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
    /* A new response begins (after a 1xx interim one): only the final one's fields count. */
    free(r->content_type);
    free(r->location);
    r->content_type = r->location = NULL;
    return len;
  }
  capture_field(r, line, len, "Content-Type", MAX_CONTENT_TYPE, &r->content_type);
  capture_field(r, line, len, "Location", MAX_LOCATION, &r->location);
  return len;
}

/* ---- finishing ------------------------------------------------------------------------------- */

/* Why no answer came, in curl's words: its short text for the code, the precise message of the
 * error buffer without the short text again, and the system's word when a socket call failed:
 * "Couldn't connect to server: Failed to connect to 192.0.2.1 port 80 after 3 ms: Connection
 * refused", "Timeout was reached: Operation timed out after 300 milliseconds ...". */
static const char *error_text(http_req_t *r, CURLcode res) {
  if (r->too_large || res == CURLE_FILESIZE_EXCEEDED)
    return ERR_TOO_LARGE;
  if (r->nomem)
    return "out of memory";
  const char *brief = curl_easy_strerror(res);
  size_t n = strcspn(r->errbuf, "\r\n"), blen = strlen(brief);
  if (n >= blen + 2 && strncmp(r->errbuf + n - blen, brief, blen) == 0 &&
      strncmp(r->errbuf + n - blen - 2, ": ", 2) == 0)
    n -= blen + 2;
  r->errbuf[n] = '\0';
  if (n && strcmp(r->errbuf, brief) != 0)
    snprintf(r->error, sizeof r->error, "%s: %s", brief, r->errbuf);
  else
    snprintf(r->error, sizeof r->error, "%s", brief);
  long os_errno = 0;
  if ((res == CURLE_COULDNT_CONNECT || res == CURLE_SEND_ERROR || res == CURLE_RECV_ERROR) &&
      curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0) {
    const char *os = strerror((int)os_errno);
    size_t len = strlen(r->error);
    if (!strstr(r->error, os) && len < sizeof r->error)
      snprintf(r->error + len, sizeof r->error - len, ": %s", os);
  }
  return r->error;
}

static void finish(http_client_t *c, http_req_t *r, CURLcode res) {
  long code = 0;
  if (res == CURLE_OK && !r->nomem)
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  bool answered = code > 0;
  req_detach(c, r, answered);

  http_client_response_t resp = {0};
  if (answered) {
    resp.status = (unsigned)code;
    resp.content_type = r->content_type;
    resp.location = r->location;
    resp.body = r->body_len ? r->body : NULL;
    resp.body_len = r->body_len;
    GW_DEBUG(MOD, "request %llu (%s): %ld, %zu bytes", (unsigned long long)r->id, r->method,
             code, r->body_len);
  } else {
    resp.error = res == CURLE_OK ? "no HTTP status" : error_text(r, res);
    GW_INFO(MOD, "request %llu (%s) failed: %s", (unsigned long long)r->id, r->method,
            resp.error);
  }
  if (r->done)
    r->done(r->arg, r->id, &resp);
  req_free(r);
}

/* Collects the transfers curl has finished and tells their owners. A done callback may change
 * the list, curl's message queue (curl_multi_remove_handle drops a cancelled handle's message)
 * or free the client, so each message is read afresh and `dead` is checked between them. */
static void drain(http_client_t *c) {
  CURLMsg *m;
  int left;
  while (!c->dead && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode res = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    if (priv)
      finish(c, (http_req_t *)(void *)priv, res);
  }
}

/* Loop callbacks bracket their work with these so that a client freed from inside a done
 * callback is released only once nothing of ours is on the stack any more. */
static void enter(http_client_t *c) { c->depth++; }
static void leave(http_client_t *c) {
  if (--c->depth == 0 && c->dead)
    free(c);
}

static void socket_action(http_client_t *c, curl_socket_t fd, int mask) {
  int running = 0;
  enter(c);
  CURLMcode mc = curl_multi_socket_action(c->multi, fd, mask, &running);
  if (mc != CURLM_OK)
    GW_WARN(MOD, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
  drain(c);
  leave(c);
}

/* ---- the loop side: sockets and the timer ---------------------------------------------------- */

static void sock_ready(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  int mask = 0;
  if (events & EPOLLIN)
    mask |= CURL_CSELECT_IN;
  if (events & EPOLLOUT)
    mask |= CURL_CSELECT_OUT;
  /* epoll reports ERR and HUP whether asked or not. Alone, CURL_CSELECT_ERR makes curl fail the
   * transfer with a vague "select/poll returned error"; with IN it reads and finds the cause. */
  if (events & (EPOLLERR | EPOLLHUP))
    mask |= CURL_CSELECT_ERR | CURL_CSELECT_IN;
  socket_action(arg, fd, mask);
}

static void timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static sock_watch_t **sock_find(http_client_t *c, curl_socket_t fd) {
  sock_watch_t **p = &c->socks;
  while (*p && (*p)->fd != fd)
    p = &(*p)->next;
  return p;
}

static void sock_remove(http_client_t *c, curl_socket_t fd) {
  sock_watch_t **p = sock_find(c, fd);
  if (!*p)
    return;
  sock_watch_t *s = *p;
  *p = s->next;
  gw_loop_del_fd(c->loop, fd);
  free(s);
}

/* Starts or changes the watch of fd; returns the watch or NULL. */
static sock_watch_t *sock_watch(http_client_t *c, curl_socket_t fd, uint32_t events) {
  sock_watch_t **p = sock_find(c, fd);
  if (*p) {
    if ((*p)->events == events)
      return *p;
    if (gw_loop_mod_fd(c->loop, fd, events) == GW_OK) {
      (*p)->events = events;
      return *p;
    }
    /* Not in epoll any more (closed behind our back): add it afresh. */
    gw_loop_del_fd(c->loop, fd);
  } else {
    *p = calloc(1, sizeof **p);
    if (!*p)
      return NULL;
    (*p)->fd = fd;
  }
  if (gw_loop_add_fd(c->loop, fd, events, sock_ready, c) != GW_OK) {
    sock_watch_t *s = *p;
    *p = s->next;
    free(s);
    return NULL;
  }
  (*p)->events = events;
  return *p;
}

/* CURLMOPT_SOCKETFUNCTION. CURL_POLL_REMOVE comes before curl closes the socket, which is the
 * order the loop needs (gw_loop_del_fd before close). socketp is what curl_multi_assign gave
 * curl for this socket: NULL the first time curl tells of it. A watch already there for the fd
 * number then belongs to a socket closed without a REMOVE; epoll dropped that one with its last
 * close, so the number is watched anew (a mod of the old watch would fail or, worse, see nothing
 * to change). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  http_client_t *c = userp;
  if (what == CURL_POLL_REMOVE) {
    sock_remove(c, fd);
    return 0;
  }
  if (!socketp && *sock_find(c, fd)) {
    GW_DEBUG(MOD, "socket %d was closed without a REMOVE: watched anew", (int)fd);
    sock_remove(c, fd);
  }
  uint32_t events = (what == CURL_POLL_IN ? EPOLLIN : what == CURL_POLL_OUT ? EPOLLOUT
                                                                             : EPOLLIN | EPOLLOUT);
  sock_watch_t *w = sock_watch(c, fd, events);
  if (w)
    curl_multi_assign(c->multi, fd, w);
  else
    /* Not fatal to the other transfers: the one on this socket runs into its timeout. */
    GW_WARN(MOD, "cannot watch socket %d", (int)fd);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible", which the loop
 * does on its next turn (curl must not be re-entered from here). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  http_client_t *c = userp;
  if (timeout_ms < 0) {
    gw_timer_stop(c->loop, &c->timer);
    return 0;
  }
  return gw_timer_start(c->loop, &c->timer, (uint64_t)timeout_ms) == GW_OK ? 0 : -1;
}

/* ---- building a request ---------------------------------------------------------------------- */

static struct curl_slist *headers_build(const http_client_request_t *req, bool *nomem) {
  /* "Name:" with no value removes a field curl would add by itself: its "Accept" of any type (the
   * contract: no Accept unless asked for), the form Content-Type it puts on a POST body, and
   * "Expect: 100-continue" on large bodies (one round trip more, which small HTTP servers on
   * devices often do not handle; RFC 9110 section 10.1.1 lets a client send without waiting). */
  const struct {
    const char *name, *value;
    bool remove_default; /* when value is NULL */
  } fields[] = {{"Content-Type", req->content_type, true},
                {"Accept", req->accept, true},
                {"Authorization", req->authorization, false},
                {"Expect", NULL, true}};
  struct curl_slist *list = NULL;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (!fields[i].value && !fields[i].remove_default)
      continue;
    const char *value = fields[i].value ? fields[i].value : "";
    size_t n = strlen(fields[i].name) + 2 + strlen(value) + 1;
    char *line = malloc(n);
    if (!line)
      goto nomem;
    /* curl sends "Name: value" as given, and "Name:" alone as "remove the field". */
    snprintf(line, n, fields[i].value ? "%s: %s" : "%s:%s", fields[i].name, value);
    struct curl_slist *l = curl_slist_append(list, line);
    free(line);
    if (!l)
      goto nomem;
    list = l;
  }
  return list;
nomem:
  curl_slist_free_all(list);
  *nomem = true;
  return NULL;
}

/* Sets the options of one transfer; returns CURLE_OK or the first failure. */
static CURLcode easy_setup(http_client_t *c, http_req_t *r, const http_client_request_t *req) {
  CURL *e = r->easy;
  CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
  do {                                                                                             \
    if (rc == CURLE_OK)                                                                            \
      rc = curl_easy_setopt(e, opt, val);                                                          \
  } while (0)
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_PRIVATE, r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_FOLLOWLOCATION, 0L); /* a 3xx goes to the owner as it came */
  /* Devices are reached directly: an http_proxy variable in the daemon's environment must not
   * divert LwM2M traffic (and its credentials) through a proxy. */
  SET(CURLOPT_PROXY, "");
  /* The contract is HTTP/1.1; curl would otherwise offer h2 in the TLS handshake (ALPN). */
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  /* Already curl's default since 7.50.2; said here because small requests must not wait for
   * Nagle (RFC 896) and a delayed ACK. */
  SET(CURLOPT_TCP_NODELAY, 1L);
  SET(CURLOPT_USERAGENT, "lwm2m-gw/" GW_VERSION);
  SET(CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
  /* Fails early when the answer announces its length (Content-Length); the write callback
   * catches the other ones. */
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_body);
  if (c->ca_file) {
    /* A trust anchor given is the only one: the system's certificate directory is not added. */
    SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_CAPATH, (char *)NULL);
  }
  if (c->cert_file)
    SET(CURLOPT_SSLCERT, c->cert_file);
  if (c->key_file)
    SET(CURLOPT_SSLKEY, c->key_file);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, r);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, r);
  SET(CURLOPT_HTTPHEADER, r->headers);

  /* A body goes as curl's "post fields" (copied by curl), under the method asked for: POST and
   * PUT always carry one (Content-Length: 0 when empty, RFC 9110 section 8.6), other methods
   * only when given one. HEAD is curl's "no body" mode: as a custom method curl would wait for
   * the body that the Content-Length of a HEAD answer announces (RFC 9110 section 9.3.2). */
  const char *m = req->method;
  bool is_post = strcmp(m, "POST") == 0, is_put = strcmp(m, "PUT") == 0;
  if (strcmp(m, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (req->body_len > 0 || is_post || is_put) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SET(CURLOPT_COPYPOSTFIELDS, req->body_len ? (const char *)req->body : "");
    if (!is_post)
      SET(CURLOPT_CUSTOMREQUEST, m);
  } else if (strcmp(m, "GET") != 0) {
    SET(CURLOPT_CUSTOMREQUEST, m);
  }
#undef SET
  return rc;
}

/* ---- API --------------------------------------------------------------------------------------- */

int http_client_new(gw_loop_t *loop, const http_client_conf_t *conf, http_client_t **out_client) {
  if (!out_client)
    return GW_ERR_INVAL;
  *out_client = NULL;
  if (!loop)
    return GW_ERR_INVAL;
  int rc = global_init();
  if (rc != GW_OK)
    return rc;
  http_client_conf_t none = {0};
  if (!conf)
    conf = &none;

  http_client_t *c = calloc(1, sizeof *c);
  if (!c)
    return GW_ERR_NOMEM;
  c->loop = loop;
  gw_timer_init(&c->timer, timer_fired, c);
  c->connect_timeout_ms = conf->connect_timeout_ms ? conf->connect_timeout_ms
                                                   : DEFAULT_CONNECT_TIMEOUT_MS;
  c->max_response_body = conf->max_response_body ? conf->max_response_body
                                                 : DEFAULT_MAX_RESPONSE_BODY;
  c->max_in_flight = conf->max_in_flight ? conf->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
  bool failed = false;
  c->ca_file = gw_strdup_opt(conf->ca_file, &failed);
  c->cert_file = gw_strdup_opt(conf->cert_file, &failed);
  c->key_file = gw_strdup_opt(conf->key_file, &failed);
  c->multi = curl_multi_init();
  if (failed || !c->multi) {
    http_client_free(&c);
    return GW_ERR_NOMEM;
  }
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, MAX_HOST_CONNECTIONS);
  *out_client = c;
  return GW_OK;
}

int http_client_send(http_client_t *c, const http_client_request_t *req, http_client_done_cb_t done,
                     void *arg, uint64_t *out_id) {
  if (!c || !req || c->closing || !method_ok(req->method) || (req->body_len && !req->body) ||
      !field_value_ok(req->content_type) || !field_value_ok(req->accept) ||
      !field_value_ok(req->authorization))
    return GW_ERR_INVAL;
  int rc = url_check(req->url);
  if (rc != GW_OK)
    return rc;
  if (c->status.in_flight >= c->max_in_flight)
    return GW_ERR_FULL;

  http_req_t *r = calloc(1, sizeof *r);
  if (!r)
    return GW_ERR_NOMEM;
  r->c = c;
  r->done = done;
  r->arg = arg;
  snprintf(r->method, sizeof r->method, "%s", req->method);
  bool nomem = false;
  r->headers = headers_build(req, &nomem);
  r->easy = curl_easy_init();
  if (nomem || !r->easy) {
    req_free(r);
    return GW_ERR_NOMEM;
  }
  CURLcode cc = easy_setup(c, r, req);
  if (cc != CURLE_OK) {
    GW_WARN(MOD, "%s %s: %s", req->method, req->url, curl_easy_strerror(cc));
    req_free(r);
    return cc == CURLE_OUT_OF_MEMORY ? GW_ERR_NOMEM : GW_ERR_INVAL;
  }
  /* Adding only arms curl's timer (for 0 ms): the transfer starts from the loop, and done can
   * never run inside this call. */
  CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
  if (mc != CURLM_OK) {
    GW_WARN(MOD, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    req_free(r);
    return mc == CURLM_OUT_OF_MEMORY ? GW_ERR_NOMEM : GW_ERR_IO;
  }
  r->id = ++c->last_id;
  req_link(c, r);
  c->status.started++;
  c->status.in_flight++;
  GW_DEBUG(MOD, "request %llu: %s %s", (unsigned long long)r->id, req->method, req->url);
  if (out_id)
    *out_id = r->id;
  return GW_OK;
}

void http_client_cancel(http_client_t *c, uint64_t id) {
  if (!c)
    return;
  http_req_t *r = req_find(c, id);
  if (!r)
    return;
  req_detach(c, r, false);
  GW_DEBUG(MOD, "request %llu (%s) cancelled", (unsigned long long)id, r->method);
  req_free(r);
}

void http_client_free(http_client_t **pc) {
  if (!pc || !*pc)
    return;
  http_client_t *c = *pc;
  *pc = NULL;
  if (c->closing)
    return; /* already being freed further up the stack */
  c->closing = true;

  /* Every accepted request gets its done callback exactly once, these with "cancelled". */
  while (c->reqs) {
    http_req_t *r = c->reqs;
    req_detach(c, r, false);
    if (r->done) {
      http_client_response_t resp = {.error = ERR_CANCELLED};
      r->done(r->arg, r->id, &resp);
    }
    req_free(r);
  }
  /* The socket callback stays live during cleanup: curl reports the REMOVE of each cached
   * connection before closing it. Whatever it left is unwatched here. */
  if (c->multi)
    curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks)
    sock_remove(c, c->socks->fd);
  gw_timer_stop(c->loop, &c->timer);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  if (c->depth > 0)
    c->dead = true; /* leave() frees it */
  else
    free(c);
}

const http_client_status_t *http_client_status(const http_client_t *c) {
  static const http_client_status_t none;
  return c ? &c->status : &none;
}
