#include "metrics.h"

#include "state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"

#define MOD "metrics"
#define REQUEST_MAX 2048

struct gw_metrics_server {
  int fd;
  gw_gateway_t *gw;
};

gw_http_route_t gw_metrics_route(const char *buf, size_t len) {
  const char *eol = memchr(buf, '\n', len);
  if (!eol)
    return len >= REQUEST_MAX ? GW_HTTP_BAD_REQUEST : GW_HTTP_INCOMPLETE;
  size_t line = (size_t)(eol - buf);
  const char *sp1 = memchr(buf, ' ', line);
  if (!sp1)
    return GW_HTTP_BAD_REQUEST;
  const char *target = sp1 + 1;
  const char *sp2 = memchr(target, ' ', line - (size_t)(target - buf));
  if (!sp2 || (size_t)(eol - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
    return GW_HTTP_BAD_REQUEST;
  size_t method_len = (size_t)(sp1 - buf);
  bool get = (method_len == 3 && memcmp(buf, "GET", 3) == 0) ||
             (method_len == 4 && memcmp(buf, "HEAD", 4) == 0);
  if (!get)
    return GW_HTTP_BAD_METHOD;
  size_t target_len = (size_t)(sp2 - target);
  bool metrics = target_len == 8 && memcmp(target, "/metrics", 8) == 0;
  return metrics ? GW_HTTP_METRICS : GW_HTTP_NOT_FOUND;
}

static void count_devices(gw_device_t *dev, void *arg) {
  size_t *counts = arg;
  counts[0] += dev->registered;
  counts[1] += gw_observation_count(dev);
  counts[2] += gw_downlink_count(dev, GW_DOWN_QUEUED);
}

size_t gw_metrics_format(const gw_gateway_t *gw, char *out, size_t out_size) {
  size_t used = 0;
#define APPEND(...) gw_appendf(out, out_size, &used, __VA_ARGS__)
#define GW_METRIC_TEXT(name, help)                                                             \
  APPEND("# HELP lwm2m_gw_" #name "_total " help "\n# TYPE lwm2m_gw_" #name                   \
         "_total counter\nlwm2m_gw_" #name "_total %llu\n",                                     \
         (unsigned long long)gw->metrics.name);
  GW_METRICS(GW_METRIC_TEXT)
#undef GW_METRIC_TEXT
  size_t counts[3] = {0, 0, 0};
  gw_device_foreach(&gw->devices, count_devices, counts);
  APPEND("# TYPE lwm2m_gw_devices gauge\nlwm2m_gw_devices %zu\n", gw->devices.count);
  APPEND("# TYPE lwm2m_gw_devices_registered gauge\nlwm2m_gw_devices_registered %zu\n",
         counts[0]);
  APPEND("# TYPE lwm2m_gw_observations gauge\nlwm2m_gw_observations %zu\n", counts[1]);
  APPEND("# TYPE lwm2m_gw_queued_requests gauge\nlwm2m_gw_queued_requests %zu\n", counts[2]);
  if (gw->state) {
    APPEND("# HELP lwm2m_gw_state_persistent 1 when state survives a restart (gateway.state_dir)"
           "\n# TYPE lwm2m_gw_state_persistent gauge\nlwm2m_gw_state_persistent %d\n",
           gw_state_persistent(gw->state));
    APPEND("# TYPE lwm2m_gw_state_commits_total counter\nlwm2m_gw_state_commits_total %llu\n",
           (unsigned long long)gw_state_commits(gw->state));
    APPEND("# TYPE lwm2m_gw_state_write_errors_total counter\n"
           "lwm2m_gw_state_write_errors_total %llu\n",
           (unsigned long long)gw_state_write_errors(gw->state));
  }
  for (size_t i = 0; i < gw->binding_count; i++)
    used += gw_binding_format_metrics(gw->bindings[i], out + used, out_size - used);
#undef APPEND
  return used;
}

static void respond(int fd, const char *status, const char *body, size_t body_len) {
  char head[256];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, body_len);
  if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n && body_len)
    send(fd, body, body_len, MSG_NOSIGNAL);
}

/* One short request per connection, read with a brief blocking timeout: the endpoint is local
 * and scraped rarely, so a tiny synchronous exchange keeps it simple. */
static void serve_connection(gw_metrics_server_t *ms, int fd) {
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char req[REQUEST_MAX];
  size_t len = 0;
  gw_http_route_t route = GW_HTTP_INCOMPLETE;
  while (route == GW_HTTP_INCOMPLETE && len < sizeof(req)) {
    ssize_t n = recv(fd, req + len, sizeof(req) - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    route = gw_metrics_route(req, len);
  }
  static char body[16384];
  switch (route) {
  case GW_HTTP_METRICS: {
    size_t blen = gw_metrics_format(ms->gw, body, sizeof(body));
    respond(fd, "200 OK", body, blen);
    break;
  }
  case GW_HTTP_NOT_FOUND:
    respond(fd, "404 Not Found", "not found\n", 10);
    break;
  case GW_HTTP_BAD_METHOD:
    respond(fd, "405 Method Not Allowed", "GET only\n", 9);
    break;
  default:
    respond(fd, "400 Bad Request", "bad request\n", 12);
    break;
  }
}

static void on_accept(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)events;
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return;
  serve_connection(arg, c);
  close(c);
}

int gw_metrics_server_start(gw_gateway_t *gw, const char *listen_at) {
  struct sockaddr_storage sa;
  unsigned sa_len = 0;
  if (gw_parse_host_port(listen_at, &sa, &sa_len) != 0)
    return GW_ERR_CONFIG;
  gw_metrics_server_t *ms = calloc(1, sizeof(*ms));
  if (!ms)
    return GW_ERR_NOMEM;
  ms->gw = gw;
  ms->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (ms->fd >= 0)
    setsockopt(ms->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ms->fd < 0 || bind(ms->fd, (struct sockaddr *)&sa, sa_len) != 0 || listen(ms->fd, 8) != 0 ||
      gw_loop_add_fd(gw->loop, ms->fd, EPOLLIN, on_accept, ms) != GW_OK) {
    GW_ERR(MOD, "cannot serve metrics on %s: %s", listen_at, strerror(errno));
    if (ms->fd >= 0)
      close(ms->fd);
    free(ms);
    return GW_ERR_IO;
  }
  gw->metrics_server = ms;
  GW_INFO(MOD, "metrics on http://%s/metrics", listen_at);
  return GW_OK;
}

void gw_metrics_server_stop(gw_gateway_t *gw) {
  gw_metrics_server_t *ms = gw->metrics_server;
  if (!ms)
    return;
  gw_loop_del_fd(gw->loop, ms->fd);
  close(ms->fd);
  free(ms);
  gw->metrics_server = NULL;
}
