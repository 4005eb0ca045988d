/* lwm2m-gw-http-echo: the benchmark's direct HTTP round trip (bench/README.md, "HTTP benchmark").
 *
 * The gateway's own HTTP server (http/http_server.c: libmicrohttpd in the gateway's event loop)
 * answering every request at once with 204, the answer a device gets to a Send. Measured next
 * to the gateway in the same run, the difference is what relaying to CoAP and back adds.
 * Prints {"event":"listening","port":N} and runs until SIGTERM / SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "gw_error.h"
#include "gw_log.h"
#include "http_server.h"
#include "loop.h"

static void on_request(void *arg, http_exchange_t *x, const http_server_request_t *req) {
  (void)arg;
  (void)req;
  http_server_respond(x, 204, NULL, NULL, 0);
}

static void on_signal(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)fd;
  (void)events;
  (void)arg;
  gw_loop_stop(loop);
}

int main(int argc, char **argv) {
  const char *listen = argc > 1 ? argv[1] : "127.0.0.1:0";
  gw_log_set_level(GW_LOG_WARNING);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  gw_loop_t *loop;
  http_server_t *server;
  http_server_conf_t conf = {.listen = listen, .max_connections = 1024};
  http_server_callbacks_t cb = {.on_request = on_request};
  if (sfd < 0 || gw_loop_new(&loop) != GW_OK ||
      gw_loop_add_fd(loop, sfd, EPOLLIN, on_signal, NULL) != GW_OK ||
      http_server_new(loop, &conf, &cb, &server) != GW_OK) {
    fprintf(stderr, "lwm2m-gw-http-echo: cannot start on %s\n", listen);
    return 1;
  }
  printf("{\"event\":\"listening\",\"port\":%u}\n", http_server_port(server));
  fflush(stdout);
  int rc = gw_loop_run(loop);
  http_server_free(&server);
  gw_loop_del_fd(loop, sfd);
  close(sfd);
  gw_loop_free(&loop);
  return rc == GW_OK ? 0 : 1;
}
