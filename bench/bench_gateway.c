/* lwm2m-gw-bench: the gateway under test, as a child process on free loopback ports. */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 5000
#define GATEWAY_MIN_FDS 4096

static void sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A port the kernel just handed out on 127.0.0.1; free again when this returns. */
static int free_port(int type, uint16_t *out_port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  int rc = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                   getsockname(fd, (struct sockaddr *)&a, &len) == 0
               ? 0 : -1;
  close(fd);
  *out_port = ntohs(a.sin_port);
  return rc;
}

static void path_in(const bench_gateway_t *g, const char *name, char *out, size_t out_size) {
  snprintf(out, out_size, "%s/%s", g->dir, name);
}

/* The end of the gateway's log, for a report of what went wrong. */
static void print_log_tail(const bench_gateway_t *g, size_t max_bytes) {
  char path[128];
  path_in(g, "gw.log", path, sizeof(path));
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  if (size > 0) {
    long from = size > (long)max_bytes ? size - (long)max_bytes : 0;
    fseek(f, from, SEEK_SET);
    fprintf(stderr, "---- gateway log (%s%s) ----\n", from ? "last bytes of " : "", path);
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
      fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of gateway log ----\n");
  }
  fclose(f);
}

static int write_config(const bench_gateway_t *g, const struct sockaddr_in *server,
                        unsigned max_devices) {
  char path[128];
  path_in(g, "gw.conf", path, sizeof(path));
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fprintf(f,
          "# written by lwm2m-gw-bench\n"
          "gateway = { state_dir = \"%s\"; log_level = \"warning\"; piggyback_window_ms = 1500;\n"
          "            device_timeout_ms = 10000; max_devices = %u;\n"
          "            metrics = \"127.0.0.1:%u\"; };\n"
          "upstream = ( { name = \"default\"; uri = \"coap://127.0.0.1:%u\"; } );\n"
          "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:%u\"; }; }; };\n",
          g->dir, max_devices, g->metrics_port, ntohs(server->sin_port), ntohs(g->sgi.sin_port));
  return fclose(f) == 0 ? 0 : -1;
}

static void remove_dir(bench_gateway_t *g) {
  if (!g->dir[0])
    return;
  char path[128];
  path_in(g, "gw.conf", path, sizeof(path));
  unlink(path);
  path_in(g, "gw.log", path, sizeof(path));
  unlink(path);
  rmdir(g->dir);
  g->dir[0] = '\0';
}

static int metrics_connect(const bench_gateway_t *g) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons(g->metrics_port)};
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void child_exec(const bench_gateway_t *g, const char *path, unsigned max_devices) {
  /* A bench that dies must not leave a gateway behind on its ports. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  /* One upstream socket per device, plus the gateway's own. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t want = (rlim_t)max_devices + 256;
  if (want < GATEWAY_MIN_FDS)
    want = GATEWAY_MIN_FDS;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
    want = rl.rlim_max;
  rl.rlim_cur = want;
  setrlimit(RLIMIT_NOFILE, &rl);
  char conf[128], log[128];
  path_in(g, "gw.conf", conf, sizeof(conf));
  path_in(g, "gw.log", log, sizeof(log));
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int null = open("/dev/null", O_RDONLY);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
  }
  if (null >= 0)
    dup2(null, STDIN_FILENO);
  execl(path, path, "-c", conf, (char *)NULL);
  fprintf(stderr, "lwm2m-gw-bench: exec %s: %s\n", path, strerror(errno));
  _exit(127);
}

int bench_gateway_start(bench_gateway_t *g, const char *path, const struct sockaddr_in *server,
                        unsigned max_devices) {
  memset(g, 0, sizeof(*g));
  g->pid = -1;
  if (access(path, X_OK) != 0) {
    fprintf(stderr, "lwm2m-gw-bench: gateway %s: %s (build it, or pass --gateway PATH)\n", path,
            strerror(errno));
    return -1;
  }
  snprintf(g->dir, sizeof(g->dir), "/tmp/lwm2m-gw-bench.XXXXXX");
  if (!mkdtemp(g->dir)) {
    perror("lwm2m-gw-bench: mkdtemp");
    g->dir[0] = '\0';
    return -1;
  }
  uint16_t sgi_port = 0;
  int rc = free_port(SOCK_DGRAM, &sgi_port);
  g->sgi = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(sgi_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (rc != 0 || free_port(SOCK_STREAM, &g->metrics_port) != 0 ||
      write_config(g, server, max_devices) != 0) {
    perror("lwm2m-gw-bench: preparing the gateway");
    remove_dir(g);
    return -1;
  }
  fflush(NULL);
  g->pid = fork();
  if (g->pid < 0) {
    perror("lwm2m-gw-bench: fork");
    remove_dir(g);
    return -1;
  }
  if (g->pid == 0)
    child_exec(g, path, max_devices);

  for (unsigned waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
    int status;
    if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
      fprintf(stderr, "lwm2m-gw-bench: the gateway exited at start (%s %d)\n",
              WIFEXITED(status) ? "status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      print_log_tail(g, 4096);
      g->pid = -1;
      remove_dir(g);
      return -1;
    }
    int fd = metrics_connect(g);
    if (fd >= 0) {
      close(fd);
      return 0; /* the metrics endpoint opens after the bindings (gw_gateway_start) */
    }
    sleep_ms(20);
  }
  fprintf(stderr, "lwm2m-gw-bench: the gateway did not open its metrics port within %u ms\n",
          START_TIMEOUT_MS);
  print_log_tail(g, 4096);
  bench_gateway_stop(g);
  return -1;
}

bool bench_gateway_alive(bench_gateway_t *g) {
  if (g->pid <= 0)
    return false;
  siginfo_t si = {0};
  /* WNOWAIT: leave the exit status for bench_gateway_stop() to report. */
  return waitid(P_PID, (id_t)g->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

int bench_gateway_stop(bench_gateway_t *g) {
  int result = -1;
  if (g->pid > 0) {
    int status = 0;
    pid_t r = waitpid(g->pid, &status, WNOHANG);
    if (r == g->pid) {
      fprintf(stderr, "lwm2m-gw-bench: the gateway had exited before the end (%s %d)\n",
              WIFEXITED(status) ? "status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      print_log_tail(g, 4096);
    } else {
      kill(g->pid, SIGTERM);
      unsigned waited = 0;
      while ((r = waitpid(g->pid, &status, WNOHANG)) == 0 && waited < STOP_TIMEOUT_MS) {
        sleep_ms(10);
        waited += 10;
      }
      if (r == 0) {
        fprintf(stderr, "lwm2m-gw-bench: the gateway ignored SIGTERM for %u ms; killed\n",
                STOP_TIMEOUT_MS);
        kill(g->pid, SIGKILL);
        waitpid(g->pid, &status, 0);
      } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "lwm2m-gw-bench: the gateway stopped with %s %d\n",
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        print_log_tail(g, 4096);
      }
    }
    result = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (result == 0)
      print_log_tail(g, 1024); /* log_level is "warning": anything there is worth a look */
    g->pid = -1;
  }
  remove_dir(g);
  return result;
}

double bench_gateway_cpu_s(const bench_gateway_t *g) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)g->pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  char line[1024];
  bool ok = fgets(line, sizeof(line), f) != NULL;
  fclose(f);
  /* proc(5): fields 14 and 15, utime and stime, follow the ")" that ends the command name */
  char *p = ok ? strrchr(line, ')') : NULL;
  unsigned long long utime, stime;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                   &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

long long bench_gateway_rss(const bench_gateway_t *g) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)g->pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  char line[256];
  long long kb = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
      break;
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

long long bench_gateway_metric(const bench_gateway_t *g, const char *name) {
  int fd = metrics_connect(g);
  if (fd < 0)
    return -1;
  static const char request[] = "GET /metrics HTTP/1.0\r\n\r\n";
  if (write(fd, request, sizeof(request) - 1) != (ssize_t)(sizeof(request) - 1)) {
    close(fd);
    return -1;
  }
  static char body[65536];
  size_t used = 0;
  ssize_t n;
  while (used < sizeof(body) - 1 && (n = read(fd, body + used, sizeof(body) - 1 - used)) > 0)
    used += (size_t)n;
  close(fd);
  body[used] = '\0';
  size_t name_len = strlen(name);
  for (char *line = body; *line;) {
    if (strncmp(line, name, name_len) == 0 && line[name_len] == ' ')
      return strtoll(line + name_len + 1, NULL, 10);
    char *eol = strchr(line, '\n');
    if (!eol)
      break;
    line = eol + 1;
  }
  return -1;
}
