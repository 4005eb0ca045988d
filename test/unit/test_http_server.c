/* Tests of the HTTP server (http/http_server.c): the gateway loop runs in the main thread, a
 * client (libcurl's blocking easy interface) in a second thread against 127.0.0.1 on the port
 * the server got for ":0". TLS certificates (a CA, the server, clients of this CA and of
 * another one) are made with the openssl command in a temporary directory at start. The loop
 * is driven in bounded waits; a wait that runs out fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "gw_error.h"
#include "gw_log.h"
#include "http_server.h"
#include "loop.h"

#define DEADLINE_MS 10000 /* a wait longer than this has failed */

/* ---- certificates ---------------------------------------------------------------------------- */

static char tmpdir[64];

static char *path_of(const char *name) {
  static char buf[8][160];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
  return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0)
    fprintf(stderr, "failed (%d): %s\n", rc, cmd);
  return rc;
}

/* A CA "name" (name-ca.pem/.key) and a certificate "leaf" signed by it with CN cn. */
static int make_ca(const char *name) {
  return sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
            "-keyout %s-ca.key -out %s-ca.pem -days 2 -subj /CN=%s-ca 2>/dev/null",
            tmpdir, name, name, name);
}

static int make_leaf(const char *ca, const char *leaf, const char *cn, const char *ext) {
  return sh("cd %s && printf '%%s\\n' '%s' > %s.ext && "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
            "-out %s.csr -subj /CN=%s 2>/dev/null && "
            "openssl x509 -req -in %s.csr -CA %s-ca.pem -CAkey %s-ca.key -CAcreateserial "
            "-out %s.pem -days 2 -extfile %s.ext 2>/dev/null",
            tmpdir, ext, leaf, leaf, leaf, cn, leaf, ca, ca, leaf, leaf);
}

/* ---- the owner's side ------------------------------------------------------------------------ */

typedef enum { ANSWER_NOW, ANSWER_LATER, ANSWER_NEVER, ANSWER_BAD } answer_mode_t;

static struct {
  gw_loop_t *loop;
  http_server_t *server;
  answer_mode_t mode;
  int requests, abandoned;
  char method[16], target[256], content_type[128], peer_ip[64], cn[128], cert_error[128];
  bool has_content_type, has_cn, has_cert_error, has_authorization;
  uint8_t body[65536];
  size_t body_len;
  http_exchange_t *pending;
  http_exchange_t *held[4]; /* every exchange not answered at once, in order */
  int nheld;
  gw_timer_t later;
} rec;

static void copy_opt(char *dst, size_t size, const char *src, bool *has) {
  *has = src != NULL;
  snprintf(dst, size, "%s", src ? src : "");
}

static void answer_later(gw_loop_t *loop, void *arg) {
  (void)loop;
  (void)arg;
  if (!rec.pending)
    return;
  http_server_headers_t h = {.content_type = "application/link-format"};
  const char body[] = "</1/0>,</3/0>";
  assert_int_equal(http_server_respond(rec.pending, 205, &h, (const uint8_t *)body,
                                       strlen(body)),
                   GW_OK);
  rec.pending = NULL;
}

static void on_request(void *arg, http_exchange_t *x, const http_server_request_t *req) {
  (void)arg;
  rec.requests++;
  snprintf(rec.method, sizeof rec.method, "%s", req->method);
  snprintf(rec.target, sizeof rec.target, "%s", req->target);
  snprintf(rec.peer_ip, sizeof rec.peer_ip, "%s", req->peer_ip);
  copy_opt(rec.content_type, sizeof rec.content_type, req->content_type, &rec.has_content_type);
  copy_opt(rec.cn, sizeof rec.cn, req->client_cert_cn, &rec.has_cn);
  copy_opt(rec.cert_error, sizeof rec.cert_error, req->client_cert_error, &rec.has_cert_error);
  rec.has_authorization = req->authorization != NULL;
  assert_true(req->body_len <= sizeof rec.body);
  assert_true((req->body == NULL) == (req->body_len == 0));
  if (req->body_len)
    memcpy(rec.body, req->body, req->body_len);
  rec.body_len = req->body_len;
  if (rec.mode == ANSWER_NOW) {
    http_server_headers_t h = {.location = "/rd/5a3f"};
    assert_int_equal(http_server_respond(x, 201, &h, NULL, 0), GW_OK);
    return;
  }
  if (rec.mode == ANSWER_BAD) { /* a header field that would split the answer: 500 instead */
    http_server_headers_t h = {.location = "/rd/1\r\nX-Evil: 1"};
    assert_int_equal(http_server_respond(x, 201, &h, NULL, 0), GW_ERR_INVAL);
    assert_int_equal(http_server_respond(x, 201, NULL, NULL, 0), GW_ERR_INVAL); /* twice */
    return;
  }
  rec.pending = x;
  if (rec.nheld < 4)
    rec.held[rec.nheld++] = x;
  if (rec.mode == ANSWER_LATER)
    gw_timer_start(rec.loop, &rec.later, 50);
}

static void on_abandoned(void *arg, http_exchange_t *x) {
  (void)arg;
  rec.abandoned++;
  if (x == rec.pending)
    rec.pending = NULL;
}

/* ---- the client thread ----------------------------------------------------------------------- */

typedef struct {
  /* in */
  char url[256];
  const char *body;
  size_t body_len;
  const char *content_type;
  long timeout_ms;
  const char *cainfo, *cert, *key;
  bool chunked;
  int repeat; /* requests on the same handle (keep-alive); 0 means 1 */
  /* out, per request */
  CURLcode rc[2];
  long status[2], num_connects[2];
  char resp_body[2][256];
  size_t resp_len[2];
  char resp_type[2][128];
  char location[2][128];
  int cur;
  atomic_bool done;
} job_t;

static size_t write_cb(char *data, size_t size, size_t n, void *arg) {
  job_t *j = arg;
  size_t len = size * n, room = sizeof j->resp_body[0] - 1 - j->resp_len[j->cur];
  size_t take = len < room ? len : room;
  memcpy(j->resp_body[j->cur] + j->resp_len[j->cur], data, take);
  j->resp_len[j->cur] += take;
  return len;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg) {
  job_t *j = arg;
  size_t len = size * n;
  if (len > 10 && strncasecmp(data, "Location: ", 10) == 0) {
    size_t v = len - 10;
    while (v > 0 && (data[10 + v - 1] == '\r' || data[10 + v - 1] == '\n'))
      v--;
    if (v >= sizeof j->location[0])
      v = sizeof j->location[0] - 1;
    memcpy(j->location[j->cur], data + 10, v);
    j->location[j->cur][v] = '\0';
  }
  return len;
}

static void *client_main(void *arg) {
  job_t *j = arg;
  CURL *c = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  if (j->content_type) {
    char line[160];
    snprintf(line, sizeof line, "Content-Type: %s", j->content_type);
    hdrs = curl_slist_append(hdrs, line);
  }
  if (j->chunked)
    hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
  hdrs = curl_slist_append(hdrs, "Authorization: Bearer t0k3n");
  curl_easy_setopt(c, CURLOPT_URL, j->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, j->timeout_ms ? j->timeout_ms : (long)DEADLINE_MS);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  if (j->body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
    if (!j->chunked)
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)j->body_len);
  }
  if (j->cainfo)
    curl_easy_setopt(c, CURLOPT_CAINFO, j->cainfo);
  if (j->cert) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, j->cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, j->key);
  }
  int n = j->repeat ? j->repeat : 1;
  for (j->cur = 0; j->cur < n; j->cur++) {
    j->rc[j->cur] = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status[j->cur]);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &j->num_connects[j->cur]);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(j->resp_type[j->cur], sizeof j->resp_type[0], "%s", ct ? ct : "");
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  atomic_store(&j->done, true);
  return NULL;
}

static void job_url(job_t *j, const char *scheme, const char *target) {
  snprintf(j->url, sizeof j->url, "%s://127.0.0.1:%u%s", scheme,
           (unsigned)http_server_port(rec.server), target);
}

/* Runs the loop until cond() or the deadline. */
static bool run_until(bool (*cond)(void *), void *arg) {
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (!cond(arg)) {
    if (gw_now_ms() >= end)
      return false;
    assert_int_equal(gw_loop_run_once(rec.loop, 20), GW_OK);
  }
  return true;
}

static bool job_done(void *arg) { return atomic_load(&((job_t *)arg)->done); }

/* Runs one client job to its end with the loop turning. */
static void run_job(job_t *j) {
  pthread_t t;
  atomic_store(&j->done, false);
  assert_int_equal(pthread_create(&t, NULL, client_main, j), 0);
  bool ok = run_until(job_done, j);
  pthread_join(t, NULL);
  assert_true(ok);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  gw_log_setup(GW_LOG_TO_STDERR, GW_LOG_WARNING);
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
    return -1;
  strcpy(tmpdir, "/tmp/test_http_server.XXXXXX");
  if (!mkdtemp(tmpdir))
    return -1;
  if (make_ca("main") || make_ca("other") ||
      make_leaf("main", "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost") ||
      make_leaf("main", "client", "device-1", "extendedKeyUsage=clientAuth") ||
      make_leaf("other", "intruder", "device-2", "extendedKeyUsage=clientAuth"))
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (tmpdir[0])
    sh("rm -rf %s", tmpdir);
  curl_global_cleanup();
  return 0;
}

static http_server_callbacks_t callbacks = {.on_request = on_request, .on_abandoned = on_abandoned};

static int start_server(const http_server_conf_t *conf) {
  memset(&rec, 0, sizeof rec);
  if (gw_loop_new(&rec.loop) != GW_OK)
    return -1;
  gw_timer_init(&rec.later, answer_later, NULL);
  return http_server_new(rec.loop, conf, &callbacks, &rec.server);
}

static int setup_plain(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .max_body = 65536};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int setup_small_body(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .max_body = 16};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int setup_idle(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .idle_timeout_s = 1};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

/* Small limits; deadlines far enough not to interfere. */
static int setup_limits(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .max_connections = 3,
                             .max_connections_per_client = 2, .idle_timeout_s = 30,
                             .header_timeout_s = 30};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int setup_deadlines(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .idle_timeout_s = 30,
                             .header_timeout_s = 1, .body_timeout_s = 1};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int setup_short_keep_alive(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0", .idle_timeout_s = 1,
                             .header_timeout_s = 1};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int setup_tls(void **state) {
  (void)state;
  http_server_conf_t conf = {.listen = "127.0.0.1:0",
                             .cert_file = path_of("server.pem"),
                             .key_file = path_of("server.key"),
                             .client_ca_file = path_of("main-ca.pem")};
  return start_server(&conf) == GW_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  gw_timer_stop(rec.loop, &rec.later);
  http_server_free(&rec.server);
  gw_loop_free(&rec.loop);
  return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_post_answered_at_once(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  assert_true(http_server_port(rec.server) != 0);
  job_t j = {.body = "</1/0>", .body_len = 6, .content_type = "application/link-format"};
  job_url(&j, "http", "/rd?ep=a%20b&lt=60");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 201);
  assert_string_equal(j.location[0], "/rd/5a3f");
  assert_int_equal(rec.requests, 1);
  assert_string_equal(rec.method, "POST");
  assert_string_equal(rec.target, "/rd?ep=a%20b&lt=60");
  assert_true(rec.has_content_type);
  assert_string_equal(rec.content_type, "application/link-format");
  assert_true(rec.has_authorization);
  assert_int_equal(rec.body_len, 6);
  assert_memory_equal(rec.body, "</1/0>", 6);
  assert_string_equal(rec.peer_ip, "127.0.0.1");
  assert_false(rec.has_cn);
  assert_false(rec.has_cert_error);
  const http_server_status_t *st = http_server_status(rec.server);
  assert_int_equal(st->requests, 1);
  assert_int_equal(st->answered, 1);
  assert_int_equal(st->abandoned, 0);
  assert_int_equal(st->refused, 0);
}

static void test_answered_later(void **state) {
  (void)state;
  rec.mode = ANSWER_LATER;
  job_t j = {0};
  job_url(&j, "http", "/3/0/1?x=%2F");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 205);
  assert_string_equal(j.resp_type[0], "application/link-format");
  assert_int_equal(j.resp_len[0], strlen("</1/0>,</3/0>"));
  assert_string_equal(j.resp_body[0], "</1/0>,</3/0>");
  assert_string_equal(rec.method, "GET");
  assert_string_equal(rec.target, "/3/0/1?x=%2F");
  assert_int_equal(rec.body_len, 0);
  assert_false(rec.has_content_type);
  assert_int_equal(http_server_status(rec.server)->answered, 1);
  assert_int_equal(rec.abandoned, 0);
}

/* A body that comes in several pieces (and with "Expect: 100-continue" from curl). */
static void test_large_body(void **state) {
  (void)state;
  rec.mode = ANSWER_LATER;
  static char big[60000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  job_t j = {.body = big, .body_len = sizeof big, .content_type = "application/octet-stream"};
  job_url(&j, "http", "/dp");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 205);
  assert_int_equal(rec.body_len, sizeof big);
  assert_memory_equal(rec.body, big, sizeof big);
  /* over max_body (65536): 413 at once, before curl's "Expect: 100-continue" wait runs out */
  static char bigger[70000];
  memset(bigger, 'x', sizeof bigger);
  job_t k = {.body = bigger, .body_len = sizeof bigger, .content_type = "text/plain"};
  job_url(&k, "http", "/dp");
  uint64_t start = gw_now_ms();
  run_job(&k);
  assert_int_equal(k.status[0], 413);
  assert_true(gw_now_ms() - start < 900);
  assert_int_equal(rec.requests, 1);
}

static void test_bad_answer(void **state) {
  (void)state;
  rec.mode = ANSWER_BAD;
  job_t j = {0};
  job_url(&j, "http", "/rd/1");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 500);
  assert_string_equal(j.location[0], "");
  assert_int_equal(http_server_status(rec.server)->answered, 1);
}

static void test_body_too_large(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  job_t j = {.body = "0123456789abcdefXYZ", .body_len = 19, .content_type = "text/plain"};
  job_url(&j, "http", "/dp");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 413);
  assert_int_equal(rec.requests, 0);
  assert_int_equal(http_server_status(rec.server)->refused, 1);
  /* exactly max_body is fine */
  job_t k = {.body = "0123456789abcdef", .body_len = 16, .content_type = "text/plain"};
  job_url(&k, "http", "/dp");
  run_job(&k);
  assert_int_equal(k.status[0], 201);
  assert_int_equal(rec.requests, 1);
}

/* Chunked: the size is only known while reading, when libmicrohttpd lets nobody answer. */
static void test_chunked_too_large(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  job_t j = {.body = "0123456789abcdefXYZ0123456789", .chunked = true,
             .content_type = "text/plain"};
  job_url(&j, "http", "/dp");
  run_job(&j);
  assert_int_not_equal(j.rc[0], CURLE_OK); /* connection closed without an answer */
  assert_int_equal(rec.requests, 0);
  assert_int_equal(http_server_status(rec.server)->refused, 1);
  job_t k = {.body = "0123456789", .chunked = true, .content_type = "text/plain"};
  job_url(&k, "http", "/dp");
  run_job(&k);
  assert_int_equal(k.status[0], 201);
  assert_int_equal(rec.body_len, 10);
}

static bool abandoned_once(void *arg) {
  (void)arg;
  return rec.abandoned == 1;
}

static void test_client_gives_up(void **state) {
  (void)state;
  rec.mode = ANSWER_NEVER;
  job_t j = {.timeout_ms = 300};
  job_url(&j, "http", "/rd/1");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OPERATION_TIMEDOUT);
  assert_int_equal(rec.requests, 1);
  assert_true(run_until(abandoned_once, NULL));
  assert_null(rec.pending);
  const http_server_status_t *st = http_server_status(rec.server);
  assert_int_equal(st->abandoned, 1);
  assert_int_equal(st->answered, 0);
  /* the server goes on serving */
  rec.mode = ANSWER_NOW;
  job_t k = {0};
  job_url(&k, "http", "/rd/2");
  run_job(&k);
  assert_int_equal(k.status[0], 201);
}

static bool requests_seen(void *arg) { return rec.requests == *(int *)arg; }

/* Freed with one exchange waiting for the owner and one answered whose answer is not sent yet:
 * on_abandoned for the first only, both clients see the connection closed, nothing leaks. */
static void test_free_with_pending(void **state) {
  (void)state;
  rec.mode = ANSWER_NEVER;
  job_t j[2] = {{.timeout_ms = DEADLINE_MS}, {.timeout_ms = DEADLINE_MS}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    job_url(&j[i], "http", i ? "/rd/2" : "/rd/1");
    assert_int_equal(pthread_create(&t[i], NULL, client_main, &j[i]), 0);
    int want = i + 1;
    assert_true(run_until(requests_seen, &want));
  }
  assert_int_equal(rec.nheld, 2);
  assert_int_equal(http_server_respond(rec.held[1], 204, NULL, NULL, 0), GW_OK);
  rec.pending = rec.held[0];
  http_server_free(&rec.server); /* before the loop could send the answer */
  assert_null(rec.server);
  assert_int_equal(rec.abandoned, 1);
  assert_null(rec.pending);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    assert_int_not_equal(j[i].rc[0], CURLE_OK); /* closed without an answer */
  }
}

static bool no_connections(void *arg) {
  (void)arg;
  return http_server_status(rec.server)->connections == 0;
}

static void test_keep_alive(void **state) {
  (void)state;
  rec.mode = ANSWER_LATER;
  job_t j = {.repeat = 2};
  job_url(&j, "http", "/rd/1");
  run_job(&j);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(j.rc[i], CURLE_OK);
    assert_int_equal(j.status[i], 205);
  }
  assert_int_equal(j.num_connects[0], 1);
  assert_int_equal(j.num_connects[1], 0); /* the second request reused the connection */
  assert_int_equal(rec.requests, 2);
  assert_int_equal(http_server_status(rec.server)->answered, 2);
  assert_true(run_until(no_connections, NULL)); /* curl closed it at cleanup */
}

/* A connection that never sends a request is closed after idle_timeout_s. */
static void test_idle_timeout(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(http_server_port(rec.server)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  for (int i = 0; i < 10 && http_server_status(rec.server)->connections == 0; i++)
    gw_loop_run_once(rec.loop, 20);
  assert_int_equal(http_server_status(rec.server)->connections, 1);
  uint64_t start = gw_now_ms();
  assert_true(run_until(no_connections, NULL));
  assert_true(gw_now_ms() - start >= 500);
  char c;
  assert_int_equal(recv(fd, &c, 1, 0), 0); /* closed by the server */
  close(fd);
}

/* A TCP connection to the server from source, one of the loopback addresses (Linux routes
 * all of 127.0.0.0/8 on lo). */
static int connect_from(const char *source) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in src = {.sin_family = AF_INET};
  assert_int_equal(inet_pton(AF_INET, source, &src.sin_addr), 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(http_server_port(rec.server)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void send_text(int fd, const char *text) {
  assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Runs the loop until the answer's header or the end of the stream arrived on fd; returns
 * what came (NUL-terminated). */
static void read_answer(int fd, char *buf, size_t size) {
  memset(buf, 0, size);
  size_t got = 0;
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (gw_now_ms() < end) {
    gw_loop_run_once(rec.loop, 10);
    ssize_t n = recv(fd, buf + got, size - 1 - got, MSG_DONTWAIT);
    if (n > 0)
      got += (size_t)n;
    if (n == 0 || strstr(buf, "\r\n\r\n"))
      break;
  }
}

/* The server closed fd: end of stream or reset, with no answer on the way. */
static bool closed_by_server(void *arg) {
  char c;
  ssize_t n = recv(*(int *)arg, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Sends raw bytes, returns what came back before the close or the end of the header. */
static void raw_exchange(const char *req, char *buf, size_t size) {
  int fd = connect_from("127.0.0.1");
  send_text(fd, req);
  read_answer(fd, buf, size);
  close(fd);
  for (int i = 0; i < 20; i++)
    gw_loop_run_once(rec.loop, 5);
}

/* Requests libmicrohttpd answers itself: counted as refused, never handed over. */
static void test_refused_by_mhd(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  char buf[512];
  gw_log_set_level(GW_LOG_ERR); /* libmicrohttpd warns about the bad Content-Length */
  raw_exchange("GET /x HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);
  raw_exchange("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);
  raw_exchange("GET /x HTTP/9.1\r\nHost: a\r\n\r\n", buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 505", 12) == 0);
  gw_log_set_level(GW_LOG_WARNING);
  assert_int_equal(rec.requests, 0);
  assert_int_equal(http_server_status(rec.server)->refused, 3);
  /* a request without Host is accepted (libmicrohttpd wants Host only when pedantic) */
  raw_exchange("GET /x?a=%41 HTTP/1.1\r\n\r\n", buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 201", 12) == 0);
  assert_string_equal(rec.target, "/x?a=%41");
}

/* ---- limits and deadlines -------------------------------------------------------------------- */

static bool connections_are(void *arg) {
  return http_server_status(rec.server)->connections == *(unsigned *)arg;
}

static void wait_connections(unsigned n) { assert_true(run_until(connections_are, &n)); }

static void close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    close(fds[i]);
}

static void send_request(int fd, const char *target) {
  char req[128];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", target);
  send_text(fd, req);
}

static void assert_served(int fd, const char *target) {
  char buf[512];
  send_request(fd, target);
  read_answer(fd, buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 201", 12) == 0);
  assert_string_equal(rec.target, target);
}

/* Sends piece every 200 ms (the connection is never idle) until the server closes fd; returns
 * how long that took. */
static uint64_t trickle_until_closed(int fd, const char *piece) {
  uint64_t start = gw_now_ms(), next = start;
  while (!closed_by_server(&fd)) {
    assert_true(gw_now_ms() - start < DEADLINE_MS);
    if (gw_now_ms() >= next) {
      send(fd, piece, strlen(piece), MSG_NOSIGNAL);
      next += 200;
    }
    gw_loop_run_once(rec.loop, 20);
  }
  return gw_now_ms() - start;
}

/* max_connections_per_client 2: a third connection from one address is closed at once and
 * counted; other addresses are served, and a slot that frees is a slot again. */
static void test_per_client_limit(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  const http_server_status_t *st = http_server_status(rec.server);
  int a = connect_from("127.0.0.1"), b = connect_from("127.0.0.1");
  wait_connections(2);
  int c = connect_from("127.0.0.1");
  assert_true(run_until(closed_by_server, &c));
  assert_int_equal(st->refused_per_client, 1);
  assert_int_equal(st->connections, 2);
  int d = connect_from("127.0.0.2");
  assert_served(d, "/rd/7");
  close(a);
  wait_connections(2);
  int e = connect_from("127.0.0.1");
  assert_served(e, "/rd/8");
  assert_int_equal(st->refused_per_client, 1);
  close_all((int[]){b, c, d, e}, 4);
}

/* max_connections 3: a new client takes the place of the connection that has waited longest
 * for its request header; when all are busy with requests, it is closed at once. */
static void test_connection_limit(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  const http_server_status_t *st = http_server_status(rec.server);
  int a = connect_from("127.0.0.1");
  wait_connections(1);
  int b = connect_from("127.0.0.2"), c = connect_from("127.0.0.3");
  wait_connections(3);
  int d = connect_from("127.0.0.4");
  assert_served(d, "/rd/9");
  assert_true(run_until(closed_by_server, &a));
  assert_int_equal(st->evicted, 1);
  assert_int_equal(st->refused_busy, 0);
  rec.mode = ANSWER_NEVER; /* b, c, d busy with requests: nobody to evict */
  send_request(b, "/rd/10");
  send_request(c, "/rd/11");
  send_request(d, "/rd/12");
  int four = 4;
  assert_true(run_until(requests_seen, &four));
  int e = connect_from("127.0.0.5");
  assert_true(run_until(closed_by_server, &e));
  assert_int_equal(st->refused_busy, 1);
  assert_int_equal(st->evicted, 1);
  assert_int_equal(st->refused_per_client, 0);
  close_all((int[]){a, b, c, d, e}, 5);
}

/* A client that trickles its header (slowloris) is closed after header_timeout_s, though it is
 * never idle; nothing is handed over, others are served meanwhile. */
static void test_header_timeout(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  int fd = connect_from("127.0.0.1");
  send_text(fd, "POST /rd?ep=slow HTTP/1.1\r\nHost: gw\r\n");
  int other = connect_from("127.0.0.2");
  assert_served(other, "/rd/1");
  assert_true(trickle_until_closed(fd, "X-Slow: 1\r\n") >= 900);
  const http_server_status_t *st = http_server_status(rec.server);
  assert_int_equal(st->header_timeouts, 1);
  assert_int_equal(st->body_timeouts, 0);
  assert_int_equal(rec.requests, 1);
  close(fd);
  close(other);
  assert_true(run_until(no_connections, NULL));
}

/* The same for a body that trickles: closed body_timeout_s after its header. */
static void test_body_timeout(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  int fd = connect_from("127.0.0.1");
  send_text(fd, "POST /dp HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n");
  assert_true(trickle_until_closed(fd, "0123456789") >= 900);
  const http_server_status_t *st = http_server_status(rec.server);
  assert_int_equal(st->body_timeouts, 1);
  assert_int_equal(st->header_timeouts, 0);
  assert_int_equal(rec.requests, 0);
  close(fd);
  int next = connect_from("127.0.0.1");
  assert_served(next, "/rd/2");
  close(next);
}

/* On a kept-alive connection the next request's header must be complete within
 * idle_timeout_s + header_timeout_s (1 + 1 here) of the previous answer. */
static void test_keep_alive_deadline(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  int fd = connect_from("127.0.0.1");
  assert_served(fd, "/rd/3");
  assert_true(trickle_until_closed(fd, "G") >= 1900);
  assert_int_equal(http_server_status(rec.server)->header_timeouts, 1);
  assert_int_equal(rec.requests, 1);
  close(fd);
}

/* Clients that send a few bytes and close or half-close are let go at once, not after
 * idle_timeout_s (30 here): libmicrohttpd alone would keep them in CLOSE-WAIT. A whole request
 * followed by a half-close is still answered. */
static void test_half_closed(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  int a = connect_from("127.0.0.1");
  send_text(a, "GET /rd HT");
  close(a);
  int b = connect_from("127.0.0.2");
  send_text(b, "GET /rd HT");
  shutdown(b, SHUT_WR);
  assert_true(run_until(closed_by_server, &b));
  close(b);
  assert_true(run_until(no_connections, NULL));
  int c = connect_from("127.0.0.3");
  send_text(c, "GET /rd/5 HTTP/1.1\r\n\r\n");
  shutdown(c, SHUT_WR);
  char buf[512];
  read_answer(c, buf, sizeof buf);
  assert_true(strncmp(buf, "HTTP/1.1 201", 12) == 0);
  assert_true(run_until(closed_by_server, &c));
  close(c);
  assert_true(run_until(no_connections, NULL));
  assert_int_equal(rec.requests, 1);
  assert_int_equal(http_server_status(rec.server)->header_timeouts, 0);
}

static void test_config_errors(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  http_server_t *s = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  http_server_conf_t bad = {.listen = "no-port"};
  assert_int_equal(http_server_new(loop, &bad, &callbacks, &s), GW_ERR_INVAL);
  bad.listen = NULL;
  assert_int_equal(http_server_new(loop, &bad, &callbacks, &s), GW_ERR_INVAL);
  http_server_conf_t tls = {.listen = "127.0.0.1:0", .cert_file = "/nonexistent/cert.pem",
                            .key_file = "/nonexistent/key.pem"};
  assert_int_equal(http_server_new(loop, &tls, &callbacks, &s), GW_ERR_CONFIG);
  tls.cert_file = path_of("server.pem");
  tls.key_file = path_of("client.key"); /* not the server certificate's key */
  assert_int_equal(http_server_new(loop, &tls, &callbacks, &s), GW_ERR_CONFIG);
  tls.key_file = NULL;
  assert_int_equal(http_server_new(loop, &tls, &callbacks, &s), GW_ERR_CONFIG);
  tls.key_file = path_of("server.key");
  tls.client_ca_file = path_of("server.ext"); /* no certificate in it */
  assert_int_equal(http_server_new(loop, &tls, &callbacks, &s), GW_ERR_CONFIG);
  assert_null(s);
  /* a port already taken */
  http_server_conf_t first = {.listen = "127.0.0.1:0"};
  assert_int_equal(http_server_new(loop, &first, &callbacks, &s), GW_OK);
  char taken[32];
  snprintf(taken, sizeof taken, "127.0.0.1:%u", (unsigned)http_server_port(s));
  http_server_t *s2 = NULL;
  http_server_conf_t second = {.listen = taken};
  gw_log_set_level(GW_LOG_ERR); /* quiet libmicrohttpd's warning about the bind */
  assert_int_equal(http_server_new(loop, &second, &callbacks, &s2), GW_ERR_IO);
  gw_log_set_level(GW_LOG_WARNING);
  assert_null(s2);
  http_server_free(&s);
  assert_null(s);
  gw_loop_free(&loop);
}

static void test_ipv6(void **state) {
  (void)state;
  memset(&rec, 0, sizeof rec);
  assert_int_equal(gw_loop_new(&rec.loop), GW_OK);
  gw_timer_init(&rec.later, answer_later, NULL);
  http_server_conf_t conf = {.listen = "[::1]:0"};
  int rc = http_server_new(rec.loop, &conf, &callbacks, &rec.server);
  if (rc != GW_OK) {
    gw_loop_free(&rec.loop);
    skip(); /* no IPv6 loopback here */
  }
  rec.mode = ANSWER_NOW;
  job_t j = {0};
  snprintf(j.url, sizeof j.url, "http://[::1]:%u/rd/7", (unsigned)http_server_port(rec.server));
  run_job(&j);
  assert_int_equal(j.status[0], 201);
  assert_string_equal(rec.peer_ip, "::1");
  teardown(state);
}

/* ---- TLS ------------------------------------------------------------------------------------- */

static void test_tls_client_cert(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  job_t j = {.cainfo = path_of("main-ca.pem"), .cert = path_of("client.pem"),
             .key = path_of("client.key"), .body = "x", .body_len = 1};
  job_url(&j, "https", "/rd?ep=dev1");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 201);
  assert_true(rec.has_cn);
  assert_string_equal(rec.cn, "device-1");
  assert_false(rec.has_cert_error);
  assert_string_equal(rec.target, "/rd?ep=dev1");
}

static void test_tls_no_client_cert(void **state) {
  (void)state;
  rec.mode = ANSWER_LATER;
  job_t j = {.cainfo = path_of("main-ca.pem")};
  job_url(&j, "https", "/rd/1");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OK);
  assert_int_equal(j.status[0], 205);
  assert_string_equal(j.resp_body[0], "</1/0>,</3/0>");
  assert_int_equal(rec.requests, 1);
  assert_false(rec.has_cn);
  assert_false(rec.has_cert_error);
}

static void test_tls_client_gives_up(void **state) {
  (void)state;
  rec.mode = ANSWER_NEVER;
  job_t j = {.cainfo = path_of("main-ca.pem"), .timeout_ms = 500};
  job_url(&j, "https", "/rd/1");
  run_job(&j);
  assert_int_equal(j.rc[0], CURLE_OPERATION_TIMEDOUT);
  assert_int_equal(rec.requests, 1);
  assert_true(run_until(abandoned_once, NULL));
  assert_true(run_until(no_connections, NULL));
}

/* A certificate from another CA: the handshake succeeds (GnuTLS only requests a certificate)
 * and the request comes with an error and no CN. */
static void test_tls_foreign_client_cert(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  job_t j = {.cainfo = path_of("main-ca.pem"), .cert = path_of("intruder.pem"),
             .key = path_of("intruder.key")};
  job_url(&j, "https", "/rd/1");
  run_job(&j);
  if (j.rc[0] != CURLE_OK) { /* the other possible outcome: a refused handshake */
    fprintf(stderr, "foreign certificate: handshake failed (%s)\n", curl_easy_strerror(j.rc[0]));
    assert_int_equal(rec.requests, 0);
    return;
  }
  assert_int_equal(rec.requests, 1);
  assert_false(rec.has_cn);
  assert_true(rec.has_cert_error);
  assert_string_equal(rec.cert_error, "certificate not trusted");
}

/* Plain HTTP to the TLS port, and a client that does not trust the server: failed handshakes. */
static void test_tls_handshake_failures(void **state) {
  (void)state;
  rec.mode = ANSWER_NOW;
  job_t j = {.timeout_ms = 2000};
  job_url(&j, "http", "/rd/1");
  run_job(&j);
  assert_int_not_equal(j.status[0], 201);
  job_t k = {.cainfo = path_of("other-ca.pem")};
  job_url(&k, "https", "/rd/1");
  run_job(&k);
  assert_int_not_equal(k.rc[0], CURLE_OK);
  for (int i = 0; i < 20; i++)
    gw_loop_run_once(rec.loop, 5);
  assert_int_equal(rec.requests, 0);
  fprintf(stderr, "tls_failures after a plain request and an untrusting client: %llu\n",
          (unsigned long long)http_server_status(rec.server)->tls_failures);
  assert_true(http_server_status(rec.server)->tls_failures >= 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_post_answered_at_once, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_answered_later, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_large_body, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_bad_answer, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_body_too_large, setup_small_body, teardown),
      cmocka_unit_test_setup_teardown(test_chunked_too_large, setup_small_body, teardown),
      cmocka_unit_test_setup_teardown(test_client_gives_up, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_free_with_pending, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_keep_alive, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, setup_idle, teardown),
      cmocka_unit_test_setup_teardown(test_refused_by_mhd, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_per_client_limit, setup_limits, teardown),
      cmocka_unit_test_setup_teardown(test_connection_limit, setup_limits, teardown),
      cmocka_unit_test_setup_teardown(test_header_timeout, setup_deadlines, teardown),
      cmocka_unit_test_setup_teardown(test_body_timeout, setup_deadlines, teardown),
      cmocka_unit_test_setup_teardown(test_keep_alive_deadline, setup_short_keep_alive, teardown),
      cmocka_unit_test_setup_teardown(test_half_closed, setup_limits, teardown),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test_setup_teardown(test_tls_client_cert, setup_tls, teardown),
      cmocka_unit_test_setup_teardown(test_tls_no_client_cert, setup_tls, teardown),
      cmocka_unit_test_setup_teardown(test_tls_client_gives_up, setup_tls, teardown),
      cmocka_unit_test_setup_teardown(test_tls_foreign_client_cert, setup_tls, teardown),
      cmocka_unit_test_setup_teardown(test_tls_handshake_failures, setup_tls, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
