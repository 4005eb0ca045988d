/* lwm2m-gw-bench: throughput, added latency, downlink and memory per device of lwm2m-gw.
 *
 * A benchmark, not a test: it prints figures and never judges them. It fails only when the
 * setup is broken (the gateway does not start, or nothing gets through it). See bench/README.md.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

#ifndef BENCH_DEFAULT_GATEWAY
#define BENCH_DEFAULT_GATEWAY "lwm2m-gw"
#endif

typedef struct {
  size_t devices;
  double seconds;
  size_t memory_devices;
  const char *gateway;
} bench_options_t;

typedef struct {
  bench_run_t up_gw, up_direct, down_gw, down_direct;
  size_t registered_gw, registered_direct, registered_memory;
  long long rss_before, rss_after;
  double rss_per_device;
} bench_results_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: lwm2m-gw-bench [--devices N] [--seconds S] [--memory-devices M]\n"
          "                      [--gateway PATH] [--quick]\n"
          "\n"
          "Starts its own upstream CoAP server and the gateway on free loopback ports, then\n"
          "measures: uplink exchanges/s and the latency the gateway adds (against the same\n"
          "exchange device -> server directly), downlink exchanges/s, and RSS per device.\n"
          "\n"
          "  --devices N          simulated devices in the throughput runs (default 50)\n"
          "  --seconds S          measured seconds per run (default 10)\n"
          "  --memory-devices M   devices registered for the memory figure (default 1000)\n"
          "  --gateway PATH       the lwm2m-gw binary (default %s)\n"
          "  --quick              short smoke run: 2 s, 10 devices, 200 memory devices\n",
          BENCH_DEFAULT_GATEWAY);
}

static int parse_options(int argc, char **argv, bench_options_t *out) {
  *out = (bench_options_t){.devices = 50, .seconds = 10, .memory_devices = 1000,
                           .gateway = BENCH_DEFAULT_GATEWAY};
  static const struct option longopts[] = {
      {"devices", required_argument, NULL, 'd'},
      {"seconds", required_argument, NULL, 's'},
      {"memory-devices", required_argument, NULL, 'm'},
      {"gateway", required_argument, NULL, 'g'},
      {"quick", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  bool devices_set = false, seconds_set = false, memory_set = false, quick = false;
  int c;
  while ((c = getopt_long(argc, argv, "d:s:m:g:qh", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'd':
      out->devices = strtoul(optarg, &end, 10);
      devices_set = true;
      break;
    case 's':
      out->seconds = strtod(optarg, &end);
      seconds_set = true;
      break;
    case 'm':
      out->memory_devices = strtoul(optarg, &end, 10);
      memory_set = true;
      break;
    case 'g':
      out->gateway = optarg;
      break;
    case 'q':
      quick = true;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
    if (end && *end) {
      fprintf(stderr, "lwm2m-gw-bench: bad number '%s'\n", optarg);
      return -1;
    }
  }
  if (quick) {
    /* explicit options still win */
    if (!devices_set)
      out->devices = 10;
    if (!seconds_set)
      out->seconds = 2;
    if (!memory_set)
      out->memory_devices = 200;
  }
  if (optind < argc || out->devices < 1 || out->devices > 20000 || out->seconds <= 0 ||
      out->memory_devices > 20000) {
    usage(stderr);
    return -1;
  }
  return 0;
}

/* Every device is a socket here, and the gateway child raises its own limit. */
static void raise_fd_limit(bench_options_t *o) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  size_t big = o->devices > o->memory_devices ? o->devices : o->memory_devices;
  rlim_t want = (rlim_t)big + 128;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
    want = rl.rlim_max;
  if (want > rl.rlim_cur) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  size_t usable = rl.rlim_cur > 128 ? (size_t)rl.rlim_cur - 128 : 0;
  if (o->memory_devices > usable) {
    fprintf(stderr, "lwm2m-gw-bench: fd limit %llu: memory devices lowered to %zu\n",
            (unsigned long long)rl.rlim_cur, usable);
    o->memory_devices = usable;
  }
  if (o->devices > usable) {
    fprintf(stderr, "lwm2m-gw-bench: fd limit %llu: devices lowered to %zu\n",
            (unsigned long long)rl.rlim_cur, usable);
    o->devices = usable;
  }
}

static double elapsed_s(uint64_t since_ns) { return (double)(bench_now_ns() - since_ns) / 1e9; }

static double rate(const bench_run_t *r) {
  return r->window_s > 0 ? (double)r->completed / r->window_s : 0;
}

static double warmup_for(double seconds) { return seconds / 10 < 1 ? seconds / 10 : 1; }

/* Uplink and downlink through one fleet of devices that send to target. */
static void print_cpu(const bench_gateway_t *g, double cpu_before, uint64_t since_ns) {
  double cpu = g ? bench_gateway_cpu_s(g) : -1;
  if (cpu >= 0 && cpu_before >= 0)
    printf(" gateway CPU %.0f%%", 100 * (cpu - cpu_before) / elapsed_s(since_ns));
  printf("\n");
}

/* Uplink and downlink through one fleet of devices that send to target (g: the gateway when
 * it is in the path, for its CPU figure; else NULL). */
static int throughput_runs(bench_t *b, const bench_options_t *o, const char *ep_prefix,
                           const struct sockaddr_in *target, const bench_gateway_t *g,
                           const char *what, size_t *out_registered, bench_run_t *out_up,
                           bench_run_t *out_down) {
  bench_fleet_t *f = NULL;
  if (bench_fleet_new(b, ep_prefix, target, o->devices, &f) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  *out_registered = bench_fleet_register(b, f);
  printf("  %-8s %zu/%zu devices registered in %.2f s\n", what, *out_registered, o->devices,
         elapsed_s(t0));
  double warmup = warmup_for(o->seconds);
  if (*out_registered) {
    printf("  %-8s uplink %.1f s ...", what, warmup + o->seconds);
    fflush(stdout);
    uint64_t t = bench_now_ns();
    double cpu = g ? bench_gateway_cpu_s(g) : -1;
    bench_fleet_uplink(b, f, warmup, o->seconds, out_up);
    print_cpu(g, cpu, t);
    printf("  %-8s downlink %.1f s ...", what, warmup + o->seconds);
    fflush(stdout);
    t = bench_now_ns();
    cpu = g ? bench_gateway_cpu_s(g) : -1;
    bench_fleet_downlink(b, f, warmup, o->seconds, out_down);
    print_cpu(g, cpu, t);
  }
  bench_fleet_free(b, &f);
  return 0;
}

static int memory_run(bench_t *b, const bench_options_t *o, const struct sockaddr_in *server,
                      bench_results_t *r) {
  bench_gateway_t g;
  if (bench_gateway_start(&g, o->gateway, server, 20000) != 0)
    return -1;
  /* Let the fresh process settle before the baseline figure. */
  struct timespec settle = {.tv_nsec = 200000000L};
  nanosleep(&settle, NULL);
  r->rss_before = bench_gateway_rss(&g);
  bench_fleet_t *f = NULL;
  if (bench_fleet_new(b, "bench-mem-", &g.sgi, o->memory_devices, &f) != 0) {
    bench_gateway_stop(&g);
    return -1;
  }
  uint64_t t0 = bench_now_ns();
  r->registered_memory = bench_fleet_register(b, f);
  long long in_gateway = bench_gateway_metric(&g, "lwm2m_gw_devices_registered");
  printf("  memory   %zu/%zu devices registered in %.2f s (gateway counts %lld)\n",
         r->registered_memory, o->memory_devices, elapsed_s(t0), in_gateway);
  nanosleep(&settle, NULL);
  r->rss_after = bench_gateway_rss(&g);
  if (r->registered_memory && r->rss_before > 0 && r->rss_after > 0)
    r->rss_per_device = (double)(r->rss_after - r->rss_before) / (double)r->registered_memory;
  bench_fleet_free(b, &f);
  bench_gateway_stop(&g);
  return 0;
}

static void print_row(const char *name, bench_run_t *r) {
  printf("%-22s %12.1f %10.0f %10.0f %8llu %8llu\n", name, rate(r),
         bench_samples_quantile(&r->samples, 0.50), bench_samples_quantile(&r->samples, 0.99),
         (unsigned long long)r->lost, (unsigned long long)r->errors);
}

static void report(const bench_options_t *o, bench_results_t *r) {
  double gp50 = bench_samples_quantile(&r->up_gw.samples, 0.50);
  double gp99 = bench_samples_quantile(&r->up_gw.samples, 0.99);
  double dp50 = bench_samples_quantile(&r->up_direct.samples, 0.50);
  double dp99 = bench_samples_quantile(&r->up_direct.samples, 0.99);
  printf("\n%zu devices, %.1f s measured per run, one request in flight per device\n",
         o->devices, o->seconds);
  printf("%-22s %12s %10s %10s %8s %8s\n", "", "exchanges/s", "p50 us", "p99 us", "lost",
         "errors");
  print_row("uplink via gateway", &r->up_gw);
  print_row("uplink direct", &r->up_direct);
  print_row("downlink via gateway", &r->down_gw);
  print_row("downlink direct", &r->down_direct);
  printf("%-22s %12s %10.0f %10.0f\n", "added by the gateway", "", gp50 - dp50, gp99 - dp99);
  if (r->rss_before > 0 && r->rss_after > 0)
    printf("memory: %zu devices registered, VmRSS %lld kB -> %lld kB, %.0f bytes per device\n",
           r->registered_memory, r->rss_before / 1024, r->rss_after / 1024, r->rss_per_device);
  else
    printf("memory: not measured\n");
  printf("BENCH exchanges_per_s=%.1f added_latency_p50_us=%.0f added_latency_p99_us=%.0f "
         "downlink_per_s=%.1f rss_per_device_bytes=%.0f gateway_p50_us=%.0f gateway_p99_us=%.0f "
         "direct_p50_us=%.0f direct_p99_us=%.0f downlink_p50_us=%.0f downlink_p99_us=%.0f "
         "lost=%llu devices=%zu seconds=%.1f\n",
         rate(&r->up_gw), gp50 - dp50, gp99 - dp99, rate(&r->down_gw),
         r->registered_memory ? r->rss_per_device : -1, gp50,
         gp99, dp50, dp99, bench_samples_quantile(&r->down_gw.samples, 0.50),
         bench_samples_quantile(&r->down_gw.samples, 0.99),
         (unsigned long long)(r->up_gw.lost + r->down_gw.lost), o->devices, o->seconds);
}

static void free_results(bench_results_t *r) {
  bench_samples_free(&r->up_gw.samples);
  bench_samples_free(&r->up_direct.samples);
  bench_samples_free(&r->down_gw.samples);
  bench_samples_free(&r->down_direct.samples);
}

int main(int argc, char **argv) {
  bench_options_t o;
  if (parse_options(argc, argv, &o) != 0)
    return 2;
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(&o);
  bench_t *b = NULL;
  if (bench_new(&b) != 0)
    return 1;
  struct sockaddr_in server;
  bench_server_addr(b, &server);
  printf("lwm2m-gw-bench: gateway %s, server 127.0.0.1:%u\n", o.gateway, ntohs(server.sin_port));

  bench_results_t r;
  memset(&r, 0, sizeof(r));
  int status = 0;

  /* Phase 1 and 1b: through the gateway. */
  bench_gateway_t g;
  if (bench_gateway_start(&g, o.gateway, &server, 20000) != 0) {
    bench_free(&b);
    return 1;
  }
  printf("  gateway  pid %d, SGi 127.0.0.1:%u, metrics 127.0.0.1:%u\n", (int)g.pid,
         ntohs(g.sgi.sin_port), g.metrics_port);
  if (throughput_runs(b, &o, "bench-", &g.sgi, &g, "gateway", &r.registered_gw, &r.up_gw,
                      &r.down_gw) != 0)
    status = 1;
  if (!bench_gateway_alive(&g))
    status = 1;
  bench_gateway_stop(&g);
  if (r.registered_gw == 0 || r.up_gw.completed == 0) {
    fprintf(stderr, "lwm2m-gw-bench: nothing got through the gateway (%zu registered, "
            "%llu exchanges; the server saw %llu requests)\n", r.registered_gw,
            (unsigned long long)r.up_gw.completed, (unsigned long long)bench_server_requests(b));
    status = 1;
  }

  /* The baseline: the same exchanges, device -> server directly. */
  if (status == 0 && throughput_runs(b, &o, "bench-direct-", &server, NULL, "direct",
                                     &r.registered_direct, &r.up_direct, &r.down_direct) != 0)
    status = 1;

  /* Phase 2: memory, on a fresh gateway so phase 1 leaves no trace in the figure. */
  if (status == 0 && o.memory_devices > 0 && memory_run(b, &o, &server, &r) != 0)
    status = 1;

  if (status == 0)
    report(&o, &r);
  free_results(&r);
  bench_free(&b);
  return status;
}
