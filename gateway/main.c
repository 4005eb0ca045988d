/* lwm2m-gw: the daemon. `lwm2m-gw -c FILE` runs; `--check-config FILE` validates and exits. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "binding.h"
#include "gateway.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "loop.h"

#define MOD "main"

typedef struct {
  gw_gateway_t *gw;
  gw_loop_t *loop;
  const char *config_path;
  int signal_fd;
  int forced_log_level; /* -v / --log-level, -1 = from the configuration */
} daemon_t;

#ifdef WITH_SMS
#include "modem_probe.h"
#include "sms_pdu.h"

/* `lwm2m-gw sms decode HEX`: a PDU as +CMGL/+CMGR show it, decoded for a person. */
static int cmd_sms_decode(const char *hex) {
  sms_deliver_t *pdu = malloc(sizeof(*pdu));
  if (!pdu)
    return 1;
  sms_err_t err = sms_pdu_decode_hex(hex, strlen(hex), pdu);
  if (err != SMS_OK) {
    fprintf(stderr, "lwm2m-gw: not a valid SMS PDU: %s\n", sms_strerror(err));
    free(pdu);
    return 1;
  }
  char text[8192];
  sms_pdu_describe(pdu, text, sizeof(text));
  fputs(text, stdout);
  free(pdu);
  return 0;
}

/* Subcommands for pairing a modem; returns -1 when argv is not one of them. */
static int run_subcommand(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "sms") == 0 && strcmp(argv[2], "decode") == 0)
    return cmd_sms_decode(argv[3]);
  if (argc == 3 && strcmp(argv[1], "modem") == 0 && strcmp(argv[2], "list") == 0)
    return sms_modem_probe_list(stdout, NULL) >= 0 ? 0 : 1;
  if (argc == 4 && strcmp(argv[1], "modem") == 0 && strcmp(argv[2], "probe") == 0) {
    gw_log_setup(GW_LOG_TO_STDERR, GW_LOG_WARNING);
    return sms_modem_probe_port(stdout, argv[3], NULL) == 0 ? 0 : 1;
  }
  return -1;
}
#else
static int run_subcommand(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return -1;
}
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: lwm2m-gw -c FILE [-l LEVEL]\n"
          "       lwm2m-gw --check-config FILE\n"
#ifdef WITH_SMS
          "       lwm2m-gw modem list            serial ports, with USB identity and hints\n"
          "       lwm2m-gw modem probe PORT      what the modem on PORT is and can do\n"
          "       lwm2m-gw sms decode HEX        an SMS PDU (as in +CMGL) decoded\n"
#endif
          "\n"
          "LwM2M gateway: relays devices on non-UDP bindings (NIDD, ...) to LwM2M servers over\n"
          "CoAP/UDP or DTLS, one upstream session per device.\n"
          "\n"
          "  -c, --config FILE        run with this configuration (libconfig syntax)\n"
          "      --check-config FILE  validate FILE, print the first error, exit 0 if valid\n"
          "  -l, --log-level LEVEL    override gateway.log_level (error..debug)\n"
          "  -V, --version            print the version\n"
          "  -h, --help               this help\n"
          "\n"
          "Signals: SIGTERM/SIGINT stop, SIGHUP reloads devices and credentials.\n"
          "Settings: see conf/README.md.\n");
}

static int load_config(const char *path, gw_config_t *out) {
  char err[512];
  if (gw_config_load(path, out, err, sizeof(err)) != GW_OK) {
    fprintf(stderr, "lwm2m-gw: %s\n", err);
    return GW_ERR_CONFIG;
  }
  return GW_OK;
}

static void reload(daemon_t *d) {
  gw_config_t next;
  char err[512];
  if (gw_config_load(d->config_path, &next, err, sizeof(err)) != GW_OK) {
    GW_ERR(MOD, "reload refused, still running the previous configuration: %s", err);
    return;
  }
  if (d->forced_log_level >= 0)
    next.gateway.log_level = d->forced_log_level;
  gw_gateway_reload(d->gw, &next);
}

static void on_signal(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)events;
  daemon_t *d = arg;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (si.ssi_signo == SIGHUP) {
      GW_NOTICE(MOD, "SIGHUP: reloading %s", d->config_path);
      reload(d);
    } else {
      GW_NOTICE(MOD, "signal %u: stopping", si.ssi_signo);
      gw_loop_stop(loop);
    }
  }
}

static int watch_signals(daemon_t *d) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  d->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (d->signal_fd < 0)
    return GW_ERR_IO;
  return gw_loop_add_fd(d->loop, d->signal_fd, EPOLLIN, on_signal, d);
}

static int run(daemon_t *d) {
  gw_config_t config;
  if (load_config(d->config_path, &config) != GW_OK)
    return 1;
  if (d->forced_log_level >= 0)
    config.gateway.log_level = d->forced_log_level;
  gw_log_setup(config.gateway.log_syslog ? GW_LOG_TO_SYSLOG : GW_LOG_TO_STDERR,
               (gw_log_level_t)config.gateway.log_level);
  int rc = gw_loop_new(&d->loop);
  if (rc == GW_OK)
    rc = watch_signals(d);
  size_t binding_count = 0;
  const gw_binding_ops_t *const *registry = gw_binding_registry(&binding_count);
  if (rc == GW_OK)
    rc = gw_gateway_new(d->loop, &config, registry, binding_count, &d->gw);
  else
    gw_config_free(&config);
  if (rc == GW_OK)
    rc = gw_gateway_start(d->gw);
  if (rc == GW_OK) {
    GW_NOTICE(MOD, "lwm2m-gw %s running", GW_VERSION);
    rc = gw_loop_run(d->loop);
  }
  if (rc != GW_OK)
    GW_ERR(MOD, "stopping: %s", gw_strerror(rc));
  gw_gateway_free(&d->gw);
  if (d->signal_fd >= 0) {
    gw_loop_del_fd(d->loop, d->signal_fd);
    close(d->signal_fd);
  }
  gw_loop_free(&d->loop);
  GW_NOTICE(MOD, "stopped");
  return rc == GW_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"config", required_argument, NULL, 'c'}, {"check-config", required_argument, NULL, 'C'},
      {"log-level", required_argument, NULL, 'l'}, {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int sub = run_subcommand(argc, argv);
  if (sub >= 0)
    return sub;
  daemon_t d = {.signal_fd = -1, .forced_log_level = -1};
  int opt;
  while ((opt = getopt_long(argc, argv, "c:l:Vh", options, NULL)) != -1) {
    switch (opt) {
    case 'c':
      d.config_path = optarg;
      break;
    case 'C': {
      gw_config_t config;
      if (load_config(optarg, &config) != GW_OK)
        return 1;
      gw_config_free(&config);
      printf("%s: configuration is valid\n", optarg);
      return 0;
    }
    case 'l':
      d.forced_log_level = gw_log_level_from_name(optarg);
      if (d.forced_log_level < 0) {
        fprintf(stderr, "lwm2m-gw: unknown log level '%s' (error, warning, notice, info, debug)\n",
                optarg);
        return 2;
      }
      break;
    case 'V':
      printf("lwm2m-gw %s\n", GW_VERSION);
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (!d.config_path || optind != argc) {
    usage(stderr);
    return 2;
  }
  return run(&d);
}
