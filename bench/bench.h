/* lwm2m-gw-bench: shared declarations of the benchmark's three parts.
 *
 *  - bench_peers.c: the simulated devices and the upstream server, raw UDP sockets in one epoll
 *    loop of this process, speaking CoAP through the gateway's own codec (coap_msg.h);
 *  - bench_gateway.c: the gateway under test as a child process (config, start, RSS, stop);
 *  - bench.c: the phases, options and the report.
 *
 * No retransmissions anywhere: a request without an answer within BENCH_TIMEOUT_NS is counted
 * as lost and the device moves on, so a lost datagram never stretches a latency figure.
 */
#ifndef BENCH_H
#define BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_TIMEOUT_NS 2000000000ull
#define BENCH_MAX_FLEETS 8

uint64_t bench_now_ns(void);

/* ---- latency samples ---- */

typedef struct {
  uint32_t *us; /* round trips in microseconds */
  size_t count;
  size_t capacity;
  bool sorted;
} bench_samples_t;

void bench_samples_add(bench_samples_t *s, uint64_t ns);
/* Sorts the samples (once) and returns the q-quantile (0..1) in microseconds; 0 when empty. */
double bench_samples_quantile(bench_samples_t *s, double q);
void bench_samples_free(bench_samples_t *s);

/* ---- peers ---- */

typedef struct bench bench_t;
typedef struct bench_fleet bench_fleet_t;

/* What one measured run produced. */
typedef struct {
  bench_samples_t samples; /* completed inside the measurement window */
  uint64_t completed;      /* ditto; the rate is completed / window */
  uint64_t lost;           /* no answer within BENCH_TIMEOUT_NS */
  uint64_t errors;         /* an answer with an unexpected code */
  double window_s;
} bench_run_t;

/* Creates the loop and the upstream server on 127.0.0.1 (a free port). */
int bench_new(bench_t **out_bench);
void bench_free(bench_t **bench);
void bench_server_addr(const bench_t *b, struct sockaddr_in *out_addr);
/* Counters of the server, for the report of a broken setup. */
uint64_t bench_server_requests(const bench_t *b);

/* count devices, each a UDP socket on 127.0.0.1:0 sending to target; their endpoint names are
 * ep_prefix followed by the index. */
int bench_fleet_new(bench_t *b, const char *ep_prefix, const struct sockaddr_in *target,
                    size_t count, bench_fleet_t **out_fleet);
void bench_fleet_free(bench_t *b, bench_fleet_t **fleet);
/* Registers every device (POST /rd, up to 3 attempts each); returns how many are registered. */
size_t bench_fleet_register(bench_t *b, bench_fleet_t *f);

/* Closed loop, one request in flight per registered device, for warmup_s + seconds; only the
 * last `seconds` are measured. Uplink: device -> target -> server, alternating Update
 * (POST /rd/<n>) and GET. Downlink: server -> the address the device registered from -> device,
 * GET answered with a piggybacked 2.05. */
void bench_fleet_uplink(bench_t *b, bench_fleet_t *f, double warmup_s, double seconds,
                        bench_run_t *out_run);
void bench_fleet_downlink(bench_t *b, bench_fleet_t *f, double warmup_s, double seconds,
                          bench_run_t *out_run);

/* ---- the gateway process ---- */

typedef struct {
  pid_t pid;
  char dir[64];   /* temp dir with gw.conf and gw.log */
  struct sockaddr_in sgi;
  uint16_t metrics_port;
} bench_gateway_t;

/* Writes the configuration, starts path with a raised fd limit and waits until its metrics
 * endpoint answers. On failure prints why (and the gateway's log) and returns -1. */
int bench_gateway_start(bench_gateway_t *g, const char *path, const struct sockaddr_in *server,
                        unsigned max_devices);
/* SIGTERM, then SIGKILL after 5 s; removes the temp dir. Returns the exit status or -1. */
int bench_gateway_stop(bench_gateway_t *g);
/* CPU time (user + system) the gateway used so far, in seconds, or -1. */
double bench_gateway_cpu_s(const bench_gateway_t *g);
/* VmRSS in bytes, or -1. */
long long bench_gateway_rss(const bench_gateway_t *g);
/* The value of one metric (e.g. "lwm2m_gw_devices_registered"), or -1. */
long long bench_gateway_metric(const bench_gateway_t *g, const char *name);
bool bench_gateway_alive(bench_gateway_t *g);

#endif
