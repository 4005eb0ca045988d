/* Tests of the HTTP client (http/http_client.c) against a real HTTP/1.1 peer: a small responder
 * in threads of this test, on a free loopback port. It answers by target (see respond()),
 * keeps connections alive, and records what it received, so a test can check the bytes curl
 * put on the wire. The loop is driven with gw_loop_run_once() in bounded waits; a wait that runs
 * out fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_log.h"
#include "http_client.h"
#include "loop.h"

#define DEADLINE_MS 10000 /* a wait longer than this has failed */
#define HUGE_BODY (1024 * 1024)

/* ---- the HTTP peer ----------------------------------------------------------------------------- */

#define MAX_RECORDS 256
#define MAX_CONNS 64

typedef struct {
  char method[16];
  char target[256];
  char headers[4096]; /* the field lines, CRLF-separated, as received */
  uint8_t body[16384];
  size_t body_len;
  int conn; /* which accepted connection, from 1 */
} record_t;

static struct {
  int lfd, port;
  int stop[2]; /* a pipe: readable once the peer is to stop */
  pthread_t acceptor;
  pthread_t conns[MAX_CONNS];
  int nconns; /* accepted connections */
  pthread_mutex_t lock;
  record_t rec[MAX_RECORDS];
  int nrec;
} srv = {.lfd = -1};

typedef struct {
  int fd, index;
} conn_arg_t;

/* Waits until fd is readable; false when the peer is stopping. */
static bool wait_readable(int fd) {
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = srv.stop[0], .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0)
      continue;
    if (p[1].revents)
      return false;
    if (p[0].revents)
      return true;
  }
}

static void send_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n <= 0)
      return; /* the client went away (an aborted transfer): fine */
    p += n;
    len -= (size_t)n;
  }
}

static void send_head(int fd, const char *status, const char *fields, size_t content_length) {
  char head[1024];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n", status,
                   fields, content_length);
  send_all(fd, head, (size_t)n);
}

/* The value of field name in a record, or NULL; *count gets how many times it came. */
static const char *rec_field(const record_t *r, const char *name, int *count, char *out,
                             size_t size) {
  const char *found = NULL;
  int n = 0;
  size_t nlen = strlen(name);
  for (const char *line = r->headers; *line;) {
    const char *eol = strstr(line, "\r\n");
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      n++;
      const char *v = line + nlen + 1;
      while (*v == ' ')
        v++;
      snprintf(out, size, "%.*s", (int)(len - (size_t)(v - line)), v);
      found = out;
    }
    line += len + (eol ? 2 : 0);
  }
  if (count)
    *count = n;
  return found;
}

/* The answers, by target:
 *   /hello         200, text/plain, "hello, world"
 *   /echo          200, the request's body and Content-Type
 *   /created       201 with a Location
 *   /missing       404 with a short body
 *   /huge          200 with HUGE_BODY bytes announced by Content-Length
 *   /huge-chunked  200 with HUGE_BODY bytes in chunks (no length known in advance)
 *   /never         no answer at all
 *   anything else  204 */
static bool respond(int fd, const record_t *r) {
  char ct[256];
  if (strcmp(r->target, "/hello") == 0) {
    send_head(fd, "200 OK", "Content-Type: text/plain;charset=utf-8\r\n", 12);
    send_all(fd, "hello, world", 12);
  } else if (strcmp(r->target, "/echo") == 0) {
    char fields[300] = "";
    if (rec_field(r, "Content-Type", NULL, ct, sizeof ct))
      snprintf(fields, sizeof fields, "Content-Type:  %s \r\n", ct); /* extra OWS: trimmed */
    send_head(fd, "200 OK", fields, r->body_len);
    send_all(fd, r->body, r->body_len);
  } else if (strcmp(r->target, "/created") == 0) {
    send_head(fd, "201 Created", "location: /rd/5a3f\r\n", 0);
  } else if (strcmp(r->target, "/missing") == 0) {
    send_head(fd, "404 Not Found", "Content-Type: text/plain\r\n", 13);
    send_all(fd, "no such thing", 13);
  } else if (strcmp(r->target, "/huge") == 0) {
    static char junk[HUGE_BODY];
    send_head(fd, "200 OK", "", sizeof junk);
    send_all(fd, junk, sizeof junk);
  } else if (strcmp(r->target, "/huge-chunked") == 0) {
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static char chunk[16384 + 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 16384);
    memset(chunk + n, 'x', 16384);
    memcpy(chunk + n + 16384, "\r\n", 2);
    send_all(fd, head, sizeof head - 1);
    for (int i = 0; i < HUGE_BODY / 16384; i++)
      send_all(fd, chunk, (size_t)n + 16384 + 2);
    send_all(fd, "0\r\n\r\n", 5);
  } else if (strcmp(r->target, "/never") == 0) {
    /* Hold the connection until the client closes it or the peer stops. */
    char b[256];
    while (wait_readable(fd) && recv(fd, b, sizeof b, 0) > 0) {
    }
    return false;
  } else {
    send_head(fd, "204 No Content", "", 0);
  }
  return true;
}

/* Parses one request head in buf[0..head_len) into r; returns its Content-Length. */
static size_t parse_head(const char *buf, size_t head_len, record_t *r) {
  const char *line_end = strstr(buf, "\r\n");
  sscanf(buf, "%15s %255s", r->method, r->target);
  const char *fields = line_end + 2;
  size_t flen = head_len - (size_t)(fields - buf) - 2; /* without the empty line's CRLF */
  if (flen >= sizeof r->headers)
    flen = sizeof r->headers - 1;
  memcpy(r->headers, fields, flen);
  r->headers[flen] = '\0';
  char v[64];
  return rec_field(r, "Content-Length", NULL, v, sizeof v) ? strtoul(v, NULL, 10) : 0;
}

static void *conn_main(void *arg) {
  conn_arg_t a = *(conn_arg_t *)arg;
  free(arg);
  static __thread char buf[65536];
  size_t have = 0;
  for (;;) {
    char *end;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
      if (have == sizeof buf - 1 || !wait_readable(a.fd))
        goto out;
      ssize_t n = recv(a.fd, buf + have, sizeof buf - 1 - have, 0);
      if (n <= 0)
        goto out;
      have += (size_t)n;
      buf[have] = '\0';
    }
    size_t head_len = (size_t)(end - buf) + 4;
    record_t *r = calloc(1, sizeof *r);
    if (!r)
      goto out;
    size_t clen = parse_head(buf, head_len, r);
    while (have < head_len + clen && have < sizeof buf - 1) {
      if (!wait_readable(a.fd)) {
        free(r);
        goto out;
      }
      ssize_t n = recv(a.fd, buf + have, sizeof buf - 1 - have, 0);
      if (n <= 0) {
        free(r);
        goto out;
      }
      have += (size_t)n;
    }
    r->body_len = clen < sizeof r->body ? clen : sizeof r->body;
    memcpy(r->body, buf + head_len, r->body_len);
    r->conn = a.index;
    pthread_mutex_lock(&srv.lock);
    if (srv.nrec < MAX_RECORDS)
      srv.rec[srv.nrec++] = *r;
    pthread_mutex_unlock(&srv.lock);
    bool keep = respond(a.fd, r);
    free(r);
    if (!keep)
      goto out;
    have -= head_len + clen;
    memmove(buf, buf + head_len + clen, have);
    buf[have] = '\0';
  }
out:
  close(a.fd);
  return NULL;
}

static void *acceptor_main(void *arg) {
  (void)arg;
  while (wait_readable(srv.lfd)) {
    int fd = accept(srv.lfd, NULL, NULL);
    if (fd < 0)
      continue;
    /* A client that stops reading (an aborted transfer) must not hold a writer forever. */
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* Head and body go in two writes: without this, Nagle holds the body for the client's
     * delayed ACK (40 ms) on a reused connection. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_arg_t *a = malloc(sizeof *a);
    pthread_mutex_lock(&srv.lock);
    bool room = a && srv.nconns < MAX_CONNS;
    if (room) {
      *a = (conn_arg_t){.fd = fd, .index = srv.nconns + 1};
      if (pthread_create(&srv.conns[srv.nconns], NULL, conn_main, a) == 0)
        srv.nconns++;
      else
        room = false;
    }
    pthread_mutex_unlock(&srv.lock);
    if (!room) {
      free(a);
      close(fd);
    }
  }
  return NULL;
}

static int srv_start(void) {
  memset(srv.rec, 0, sizeof srv.rec);
  srv.nrec = 0;
  srv.nconns = 0;
  pthread_mutex_init(&srv.lock, NULL);
  if (pipe(srv.stop) != 0)
    return -1;
  srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(srv.lfd, 64) != 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  srv.port = ntohs(a.sin_port);
  return pthread_create(&srv.acceptor, NULL, acceptor_main, NULL) == 0 ? 0 : -1;
}

static void srv_stop(void) {
  if (write(srv.stop[1], "x", 1) != 1)
    abort();
  pthread_join(srv.acceptor, NULL);
  for (int i = 0; i < srv.nconns; i++)
    pthread_join(srv.conns[i], NULL);
  close(srv.lfd);
  close(srv.stop[0]);
  close(srv.stop[1]);
  srv.lfd = -1;
  pthread_mutex_destroy(&srv.lock);
}

/* A copy of the last record for target (NULL: the last of all); fails the test if none. */
static record_t srv_record(const char *target) {
  record_t r;
  bool found = false;
  pthread_mutex_lock(&srv.lock);
  for (int i = srv.nrec - 1; i >= 0 && !found; i--)
    if (!target || strcmp(srv.rec[i].target, target) == 0) {
      r = srv.rec[i];
      found = true;
    }
  pthread_mutex_unlock(&srv.lock);
  assert_true(found);
  return r;
}

static bool srv_has(const char *target) {
  bool found = false;
  pthread_mutex_lock(&srv.lock);
  for (int i = 0; i < srv.nrec && !found; i++)
    found = strcmp(srv.rec[i].target, target) == 0;
  pthread_mutex_unlock(&srv.lock);
  return found;
}

static int srv_connections(void) {
  pthread_mutex_lock(&srv.lock);
  int n = srv.nconns;
  pthread_mutex_unlock(&srv.lock);
  return n;
}

/* ---- fixture and helpers ----------------------------------------------------------------------- */

typedef struct {
  gw_loop_t *loop;
  http_client_t *client;
  int fds; /* open before the test: none may be left over after it */
} fixture_t;

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) != -1)
      n++;
  return n;
}

typedef struct {
  int calls;
  uint64_t id;
  unsigned status;
  bool has_ct, has_loc, has_error;
  char ct[256], loc[256], error[512];
  uint8_t *body;
  size_t body_len;
  /* re-entrancy: what to do from inside the callback */
  fixture_t *fx;
  int chain;      /* requests still to send from the callback */
  uint64_t cancel; /* request to cancel from the callback (0: none) */
  bool free_client;
} result_t;

static void result_reset(result_t *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

static void record_result(result_t *res, uint64_t id, const http_client_response_t *resp) {
  res->calls++;
  res->id = id;
  res->status = resp->status;
  res->has_ct = resp->content_type != NULL;
  res->has_loc = resp->location != NULL;
  res->has_error = resp->error != NULL;
  snprintf(res->ct, sizeof res->ct, "%s", resp->content_type ? resp->content_type : "");
  snprintf(res->loc, sizeof res->loc, "%s", resp->location ? resp->location : "");
  snprintf(res->error, sizeof res->error, "%s", resp->error ? resp->error : "");
  free(res->body);
  res->body = NULL;
  res->body_len = resp->body_len;
  if (resp->body_len) {
    res->body = malloc(resp->body_len);
    assert_non_null(res->body);
    memcpy(res->body, resp->body, resp->body_len);
  } else {
    assert_null(resp->body);
  }
}

static void on_done(void *arg, uint64_t id, const http_client_response_t *resp) {
  record_result(arg, id, resp);
}

static int setup_conf(void **state, const http_client_conf_t *conf) {
  fixture_t *fx = calloc(1, sizeof *fx);
  if (!fx)
    return -1;
  fx->fds = count_fds();
  if (srv_start() != 0 || gw_loop_new(&fx->loop) != GW_OK ||
      http_client_new(fx->loop, conf, &fx->client) != GW_OK)
    return -1;
  *state = fx;
  return 0;
}

static int setup(void **state) { return setup_conf(state, NULL); }

static int teardown(void **state) {
  fixture_t *fx = *state;
  http_client_free(&fx->client);
  gw_loop_free(&fx->loop);
  srv_stop();
  int fds = fx->fds;
  free(fx);
  if (count_fds() != fds) {
    print_error("%d fds before the test, %d after\n", fds, count_fds());
    return -1;
  }
  return 0;
}

/* Replaces the fixture's client by one with conf. */
static void reconfigure(fixture_t *fx, const http_client_conf_t *conf) {
  http_client_free(&fx->client);
  assert_int_equal(http_client_new(fx->loop, conf, &fx->client), GW_OK);
}

#define RUN_UNTIL(fx, cond)                                                                        \
  do {                                                                                             \
    uint64_t end_ = gw_now_ms() + DEADLINE_MS;                                                     \
    while (!(cond)) {                                                                              \
      assert_true(gw_now_ms() < end_);                                                             \
      assert_int_equal(gw_loop_run_once((fx)->loop, 50), GW_OK);                                   \
    }                                                                                              \
  } while (0)

static void run_for(fixture_t *fx, uint64_t ms) {
  uint64_t end = gw_now_ms() + ms;
  for (uint64_t now = gw_now_ms(); now < end; now = gw_now_ms())
    assert_int_equal(gw_loop_run_once(fx->loop, (int)(end - now)), GW_OK);
}

static char *url(const char *target) {
  static char buf[8][128];
  static int next;
  char *u = buf[next++ % 8];
  snprintf(u, 128, "http://127.0.0.1:%d%s", srv.port, target);
  return u;
}

/* Sends req and runs the loop until its answer; returns the result (caller resets it). */
static void exchange(fixture_t *fx, const http_client_request_t *req, result_t *res) {
  uint64_t id = 0;
  assert_int_equal(http_client_send(fx->client, req, on_done, res, &id), GW_OK);
  assert_true(id != 0);
  assert_int_equal(res->calls, 0); /* never from inside send */
  RUN_UNTIL(fx, res->calls > 0);
  assert_int_equal(res->calls, 1);
  assert_true(res->id == id);
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_get_with_accept(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  http_client_request_t req = {.method = "GET", .url = url("/hello"), .accept = "text/plain"};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 200);
  assert_false(res.has_error);
  assert_string_equal(res.ct, "text/plain;charset=utf-8");
  assert_false(res.has_loc);
  assert_int_equal(res.body_len, 12);
  assert_memory_equal(res.body, "hello, world", 12);

  record_t r = srv_record("/hello");
  assert_string_equal(r.method, "GET");
  char v[256];
  int n = 0;
  assert_non_null(rec_field(&r, "Accept", &n, v, sizeof v));
  assert_int_equal(n, 1); /* not curl's "* / *" as well */
  assert_string_equal(v, "text/plain");
  assert_null(rec_field(&r, "Expect", NULL, v, sizeof v));
  assert_null(rec_field(&r, "Content-Type", NULL, v, sizeof v));
  assert_null(rec_field(&r, "Content-Length", NULL, v, sizeof v));
  assert_int_equal(r.body_len, 0);

  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->started, 1);
  assert_int_equal(st->completed, 1);
  assert_int_equal(st->failed, 0);
  assert_int_equal(st->in_flight, 0);
  result_reset(&res);
}

/* No Accept given: none at all on the wire; a second request reuses the connection. */
static void test_get_without_accept_keepalive(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  http_client_request_t req = {.method = "GET", .url = url("/hello"),
                               .authorization = "Bearer abc.def"};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 200);
  record_t r = srv_record("/hello");
  char v[256];
  assert_null(rec_field(&r, "Accept", NULL, v, sizeof v));
  assert_non_null(rec_field(&r, "Authorization", NULL, v, sizeof v));
  assert_string_equal(v, "Bearer abc.def");
  assert_non_null(rec_field(&r, "Host", NULL, v, sizeof v));

  result_reset(&res);
  req.authorization = NULL;
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 200);
  r = srv_record("/hello");
  assert_null(rec_field(&r, "Authorization", NULL, v, sizeof v));
  assert_int_equal(r.conn, 1);
  assert_int_equal(srv_connections(), 1);
  result_reset(&res);
}

static void test_put_and_post_bodies(void **state) {
  fixture_t *fx = *state;
  uint8_t body[3000]; /* over 1024: older curl sent "Expect: 100-continue" from there */
  for (size_t i = 0; i < sizeof body; i++)
    body[i] = (uint8_t)(i * 7); /* NUL bytes included */
  const char *methods[] = {"PUT", "POST"};
  for (int m = 0; m < 2; m++) {
    result_t res = {0};
    http_client_request_t req = {.method = methods[m], .url = url("/echo"),
                                 .content_type = "application/vnd.oma.lwm2m+cbor",
                                 .body = body, .body_len = sizeof body};
    exchange(fx, &req, &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.ct, "application/vnd.oma.lwm2m+cbor");
    assert_int_equal(res.body_len, sizeof body);
    assert_memory_equal(res.body, body, sizeof body);
    record_t r = srv_record("/echo");
    assert_string_equal(r.method, methods[m]);
    assert_int_equal(r.body_len, sizeof body);
    assert_memory_equal(r.body, body, sizeof body);
    char v[256];
    int n = 0;
    assert_non_null(rec_field(&r, "Content-Type", &n, v, sizeof v));
    assert_int_equal(n, 1);
    assert_string_equal(v, "application/vnd.oma.lwm2m+cbor");
    assert_non_null(rec_field(&r, "Content-Length", NULL, v, sizeof v));
    assert_string_equal(v, "3000");
    assert_null(rec_field(&r, "Expect", NULL, v, sizeof v));
    assert_null(rec_field(&r, "Accept", NULL, v, sizeof v));
    result_reset(&res);
  }

  /* An empty POST: Content-Length 0, and not curl's form Content-Type. */
  result_t res = {0};
  http_client_request_t req = {.method = "POST", .url = url("/empty")};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 204);
  assert_false(res.has_ct);
  assert_int_equal(res.body_len, 0);
  record_t r = srv_record("/empty");
  char v[64];
  assert_string_equal(r.method, "POST");
  assert_non_null(rec_field(&r, "Content-Length", NULL, v, sizeof v));
  assert_string_equal(v, "0");
  assert_null(rec_field(&r, "Content-Type", NULL, v, sizeof v));
  result_reset(&res);
}

static void test_delete(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  http_client_request_t req = {.method = "DELETE", .url = url("/rd/5a3f")};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 204);
  assert_false(res.has_error);
  record_t r = srv_record("/rd/5a3f");
  assert_string_equal(r.method, "DELETE");
  assert_int_equal(r.body_len, 0);
  char v[64];
  assert_null(rec_field(&r, "Content-Type", NULL, v, sizeof v));
  result_reset(&res);
}

static void test_created_location(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  const uint8_t link[] = "</1/0>,</3/0>";
  http_client_request_t req = {.method = "POST", .url = url("/created"),
                               .content_type = "application/link-format",
                               .body = link, .body_len = sizeof link - 1};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 201);
  assert_true(res.has_loc);
  assert_string_equal(res.loc, "/rd/5a3f");
  assert_false(res.has_ct);
  assert_int_equal(res.body_len, 0);
  result_reset(&res);
}

static void test_not_found_is_an_answer(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  http_client_request_t req = {.method = "GET", .url = url("/missing")};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 404);
  assert_false(res.has_error);
  assert_int_equal(res.body_len, 13);
  assert_memory_equal(res.body, "no such thing", 13);
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->completed, 1);
  assert_int_equal(st->failed, 0);
  result_reset(&res);
}

static void test_connection_refused(void **state) {
  fixture_t *fx = *state;
  /* A port bound but not listening: the connect gets a RST, and nobody else can take it. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
  result_t res = {0};
  http_client_request_t req = {.method = "GET", .url = u};
  exchange(fx, &req, &res);
  close(s);
  print_message("refused: %s\n", res.error);
  assert_int_equal(res.status, 0);
  assert_true(res.has_error);
  assert_non_null(strstr(res.error, "Connection refused"));
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->completed, 0);
  assert_int_equal(st->failed, 1);
  result_reset(&res);
}

static void test_timeout(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  http_client_request_t req = {.method = "GET", .url = url("/never"), .timeout_ms = 300};
  uint64_t t0 = gw_now_ms();
  exchange(fx, &req, &res);
  uint64_t took = gw_now_ms() - t0;
  print_message("timeout after %llu ms: %s\n", (unsigned long long)took, res.error);
  assert_int_equal(res.status, 0);
  assert_true(took >= 250 && took < 3000);
  assert_true(strstr(res.error, "Timeout") || strstr(res.error, "timed out"));
  assert_int_equal(http_client_status(fx->client)->failed, 1);
  result_reset(&res);
}

static void test_response_too_large(void **state) {
  fixture_t *fx = *state;
  reconfigure(fx, &(http_client_conf_t){.max_response_body = 1000});
  /* Announced by Content-Length, and found out while receiving chunks. */
  const char *targets[] = {"/huge", "/huge-chunked"};
  for (int i = 0; i < 2; i++) {
    result_t res = {0};
    http_client_request_t req = {.method = "GET", .url = url(targets[i])};
    exchange(fx, &req, &res);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, "response too large");
    assert_int_equal(res.body_len, 0);
    result_reset(&res);
  }
  /* Exactly the limit passes, one byte more does not. */
  uint8_t body[1001];
  memset(body, 'b', sizeof body);
  for (size_t n = 1000; n <= 1001; n++) {
    result_t res = {0};
    http_client_request_t req = {.method = "PUT", .url = url("/echo"), .body = body,
                                 .body_len = n};
    exchange(fx, &req, &res);
    if (n == 1000) {
      assert_int_equal(res.status, 200);
      assert_int_equal(res.body_len, 1000);
    } else {
      assert_int_equal(res.status, 0);
      assert_string_equal(res.error, "response too large");
    }
    result_reset(&res);
  }
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->started, 4);
  assert_int_equal(st->completed, 1);
  assert_int_equal(st->failed, 3);
}

static void test_cancel(void **state) {
  fixture_t *fx = *state;
  result_t a = {0}, b = {0}, c = {0};
  uint64_t ida = 0, idb = 0, idc = 0;
  http_client_request_t never = {.method = "GET", .url = url("/never")};
  http_client_request_t hello = {.method = "GET", .url = url("/hello")};
  /* One cancelled before it started, one while the server holds it, one left to finish. */
  assert_int_equal(http_client_send(fx->client, &hello, on_done, &a, &ida), GW_OK);
  assert_int_equal(http_client_send(fx->client, &never, on_done, &b, &idb), GW_OK);
  assert_int_equal(http_client_send(fx->client, &hello, on_done, &c, &idc), GW_OK);
  assert_true(ida != idb && idb != idc && ida != idc);
  http_client_cancel(fx->client, ida);
  RUN_UNTIL(fx, c.calls > 0 && srv_has("/never"));
  http_client_cancel(fx->client, idb);
  http_client_cancel(fx->client, idb);      /* again: ignored */
  http_client_cancel(fx->client, 12345678); /* unknown: ignored */
  run_for(fx, 300);
  assert_int_equal(a.calls, 0);
  assert_int_equal(b.calls, 0);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.status, 200);
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->started, 3);
  assert_int_equal(st->completed, 1);
  assert_int_equal(st->failed, 2);
  assert_int_equal(st->in_flight, 0);
  /* The client still works after cancelling a transfer in the middle. */
  exchange(fx, &hello, &a);
  assert_int_equal(a.status, 200);
  result_reset(&a);
  result_reset(&b);
  result_reset(&c);
}

static void test_free_with_pending(void **state) {
  fixture_t *fx = *state;
  result_t a = {0}, b = {0};
  http_client_request_t never = {.method = "GET", .url = url("/never")};
  assert_int_equal(http_client_send(fx->client, &never, on_done, &a, NULL), GW_OK);
  RUN_UNTIL(fx, srv_connections() > 0);
  run_for(fx, 50);
  assert_int_equal(http_client_send(fx->client, &never, on_done, &b, NULL), GW_OK);
  http_client_free(&fx->client);
  assert_null(fx->client);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_string_equal(a.error, "cancelled");
  assert_int_equal(b.calls, 1);
  assert_string_equal(b.error, "cancelled");
  run_for(fx, 50); /* nothing of the client is left in the loop */
  result_reset(&a);
  result_reset(&b);
}

static int total_calls(const result_t *res, int n) {
  int calls = 0;
  for (int i = 0; i < n; i++)
    calls += res[i].calls;
  return calls;
}

static void test_concurrent(void **state) {
  fixture_t *fx = *state;
  enum { N = 20 };
  result_t res[N];
  char bodies[N][32];
  memset(res, 0, sizeof res);
  for (int i = 0; i < N; i++) {
    snprintf(bodies[i], sizeof bodies[i], "request number %d", i);
    http_client_request_t req = {.method = "PUT", .url = url("/echo"),
                                 .content_type = "text/plain",
                                 .body = (const uint8_t *)bodies[i], .body_len = strlen(bodies[i])};
    assert_int_equal(http_client_send(fx->client, &req, on_done, &res[i], NULL), GW_OK);
  }
  assert_int_equal(http_client_status(fx->client)->in_flight, N);
  RUN_UNTIL(fx, total_calls(res, N) == N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[i].status, 200);
    assert_int_equal(res[i].body_len, strlen(bodies[i]));
    assert_memory_equal(res[i].body, bodies[i], res[i].body_len);
    result_reset(&res[i]);
  }
  /* At most 4 connections to one host; kept alive and reused for the rest. */
  print_message("%d requests over %d connections\n", N, srv_connections());
  assert_true(srv_connections() >= 1 && srv_connections() <= 4);
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->completed, N);
  assert_int_equal(st->in_flight, 0);
}

static void test_max_in_flight(void **state) {
  fixture_t *fx = *state;
  reconfigure(fx, &(http_client_conf_t){.max_in_flight = 2});
  result_t a = {0}, b = {0}, c = {0};
  http_client_request_t hello = {.method = "GET", .url = url("/hello")};
  assert_int_equal(http_client_send(fx->client, &hello, on_done, &a, NULL), GW_OK);
  assert_int_equal(http_client_send(fx->client, &hello, on_done, &b, NULL), GW_OK);
  uint64_t id = 99;
  assert_int_equal(http_client_send(fx->client, &hello, on_done, &c, &id), GW_ERR_FULL);
  assert_int_equal(http_client_status(fx->client)->started, 2);
  RUN_UNTIL(fx, a.calls && b.calls);
  exchange(fx, &hello, &c); /* room again */
  assert_int_equal(c.status, 200);
  result_reset(&a);
  result_reset(&b);
  result_reset(&c);
}

/* From inside a done callback: send the next request of a chain, cancel another one, free. */
static void reentrant_done(void *arg, uint64_t id, const http_client_response_t *resp) {
  result_t *res = arg;
  record_result(res, id, resp);
  if (res->cancel) {
    http_client_cancel(res->fx->client, res->cancel);
    res->cancel = 0;
  }
  if (res->chain > 0) {
    res->chain--;
    http_client_request_t req = {.method = "GET", .url = url("/hello")};
    int calls = res->calls;
    assert_int_equal(http_client_send(res->fx->client, &req, reentrant_done, res, NULL), GW_OK);
    assert_int_equal(res->calls, calls); /* done is not called from inside send */
  }
  if (res->free_client)
    http_client_free(&res->fx->client);
}

static void test_reentrant(void **state) {
  fixture_t *fx = *state;
  result_t chain = {.fx = fx, .chain = 4}, victim = {0};
  uint64_t victim_id = 0;
  http_client_request_t never = {.method = "GET", .url = url("/never")};
  assert_int_equal(http_client_send(fx->client, &never, on_done, &victim, &victim_id), GW_OK);
  chain.cancel = victim_id;
  http_client_request_t hello = {.method = "GET", .url = url("/hello")};
  assert_int_equal(http_client_send(fx->client, &hello, reentrant_done, &chain, NULL), GW_OK);
  RUN_UNTIL(fx, chain.calls == 5);
  run_for(fx, 100);
  assert_int_equal(chain.calls, 5);
  assert_int_equal(chain.status, 200);
  assert_int_equal(victim.calls, 0);
  const http_client_status_t *st = http_client_status(fx->client);
  assert_int_equal(st->started, 6);
  assert_int_equal(st->completed, 5);
  assert_int_equal(st->failed, 1);
  assert_int_equal(st->in_flight, 0);

  /* Freeing the client from a done callback, with another request still running: that one is
   * cancelled at once, the loop keeps going without the client. */
  result_t last = {.fx = fx, .free_client = true}, other = {0};
  assert_int_equal(http_client_send(fx->client, &never, on_done, &other, NULL), GW_OK);
  assert_int_equal(http_client_send(fx->client, &hello, reentrant_done, &last, NULL), GW_OK);
  RUN_UNTIL(fx, last.calls == 1);
  assert_null(fx->client);
  assert_int_equal(other.calls, 1);
  assert_string_equal(other.error, "cancelled");
  run_for(fx, 100);
  result_reset(&chain);
  result_reset(&victim);
  result_reset(&last);
  result_reset(&other);
}

/* A name, not an address: curl's resolver (a thread, and a socketpair the loop watches until the
 * answer is in; its fd number is then often the connection's), and for "localhost" maybe ::1
 * first, where nobody listens. */
static void test_host_name(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  char u[128];
  snprintf(u, sizeof u, "http://localhost:%d/hello", srv.port);
  http_client_request_t req = {.method = "GET", .url = u};
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 200);
  record_t r = srv_record("/hello");
  char v[128];
  assert_non_null(rec_field(&r, "Host", NULL, v, sizeof v));
  assert_non_null(strstr(v, "localhost:"));
  result_reset(&res);
}

/* The TLS options reach curl: an unreadable trust anchor fails an https:// request (before any
 * byte is sent), and plain http:// is not affected by it. */
static void test_tls_options(void **state) {
  fixture_t *fx = *state;
  reconfigure(fx, &(http_client_conf_t){.ca_file = "/nonexistent/ca.pem"});
  result_t res = {0};
  char u[128];
  snprintf(u, sizeof u, "https://127.0.0.1:%d/hello", srv.port);
  http_client_request_t req = {.method = "GET", .url = u};
  exchange(fx, &req, &res);
  print_message("bad CA file: %s\n", res.error);
  assert_int_equal(res.status, 0);
  assert_true(res.has_error);
  result_reset(&res);
  req.url = url("/hello");
  exchange(fx, &req, &res);
  assert_int_equal(res.status, 200);
  result_reset(&res);
}

static void test_invalid_requests(void **state) {
  fixture_t *fx = *state;
  result_t res = {0};
  const http_client_request_t bad[] = {
      {.method = NULL, .url = url("/x")},
      {.method = "GET", .url = NULL},
      {.method = "", .url = url("/x")},
      {.method = "GE T", .url = url("/x")},
      {.method = "GET\r\nX-Evil: 1", .url = url("/x")},
      {.method = "GET", .url = "ftp://127.0.0.1/x"},
      {.method = "GET", .url = "not a url"},
      {.method = "GET", .url = "/relative/only"},
      {.method = "GET", .url = "http://"},
      {.method = "GET", .url = url("/x"), .accept = "text/plain\r\nX-Evil: 1"},
      {.method = "GET", .url = url("/x"), .authorization = "a\nb"},
      {.method = "PUT", .url = url("/x"), .content_type = "text/plain\r"},
      {.method = "PUT", .url = url("/x"), .body = NULL, .body_len = 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(http_client_send(fx->client, &bad[i], on_done, &res, NULL), GW_ERR_INVAL);
  assert_int_equal(http_client_send(NULL, &bad[0], on_done, &res, NULL), GW_ERR_INVAL);
  assert_int_equal(http_client_send(fx->client, NULL, on_done, &res, NULL), GW_ERR_INVAL);
  /* https:// and a scheme in capitals are taken. */
  http_client_request_t ok = {.method = "GET", .url = url("/hello")};
  char upper[128];
  snprintf(upper, sizeof upper, "HTTP://127.0.0.1:%d/hello", srv.port);
  ok.url = upper;
  exchange(fx, &ok, &res);
  assert_int_equal(res.status, 200);
  run_for(fx, 20);
  assert_int_equal(res.calls, 1);
  assert_int_equal(http_client_status(fx->client)->started, 1);
  http_client_t *other = (http_client_t *)&res;
  assert_int_equal(http_client_new(NULL, NULL, &other), GW_ERR_INVAL);
  assert_null(other);
  assert_int_equal(http_client_new(fx->loop, NULL, NULL), GW_ERR_INVAL);
  result_reset(&res);
}

int main(void) {
  gw_log_setup(GW_LOG_TO_STDERR, getenv("GW_TEST_DEBUG") ? GW_LOG_DEBUG : GW_LOG_WARNING);
  /* The peer is on loopback: a proxy from the environment must not get in between. */
  unsetenv("http_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("https_proxy");
  unsetenv("ALL_PROXY");
  unsetenv("all_proxy");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_get_with_accept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_get_without_accept_keepalive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_and_post_bodies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_created_location, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_found_is_an_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_response_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrant, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
