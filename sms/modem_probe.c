/* lwm2m-gw: `modem list` and `modem probe PORT`. See modem_probe.h. */
#include "modem_probe.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include <libserialport.h>

#include "at.h"
#include "gw_error.h"
#include "gw_log.h"
#include "loop.h"
#include "serial.h"

#define DEFAULT_BY_ID_DIR "/dev/serial/by-id"
#define PROBE_TIMEOUT_MS 30000
#define PROBE_COMMAND_TIMEOUT_MS 5000
#define PROBE_AT_ATTEMPTS 3

/* ---- by-id links ---- */

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls found(link) for every link in dir resolving to the same device as port, in name
 * order. Returns how many. */
static int for_each_by_id_link(const char *dir, const char *port,
                               void (*found)(void *arg, const char *link), void *arg) {
  char want[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
  if (!realpath(port, want))
    return 0;
  DIR *d = opendir(dir ? dir : DEFAULT_BY_ID_DIR);
  if (!d)
    return 0;
  char **names = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char **n = realloc(names, ncap * sizeof(*n));
      if (!n)
        break;
      names = n;
      cap = ncap;
    }
    if ((names[count] = strdup(e->d_name)) != NULL)
      count++;
  }
  closedir(d);
  if (count)
    qsort(names, count, sizeof(*names), compare_names);
  int matches = 0;
  for (size_t i = 0; i < count; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : DEFAULT_BY_ID_DIR, names[i]);
    if (realpath(path, target) && strcmp(target, want) == 0) {
      matches++;
      if (found)
        found(arg, path);
    }
    free(names[i]);
  }
  free(names);
  return matches;
}

typedef struct {
  char *out;
  size_t size;
  bool done;
} first_link_t;

static void keep_first(void *arg, const char *link) {
  first_link_t *f = arg;
  if (!f->done)
    snprintf(f->out, f->size, "%s", link);
  f->done = true;
}

bool sms_modem_probe_by_id_link(const char *dir, const char *port, char *out, size_t out_size) {
  first_link_t f = {.out = out, .size = out_size};
  if (out_size)
    out[0] = '\0';
  return for_each_by_id_link(dir, port, keep_first, &f) > 0;
}

/* ---- list ---- */

typedef struct {
  int vid;
  const char *maker;
  int at_interface; /* the usual AT interface number, -1 when it varies */
  const char *hint;
} modem_hint_t;

static const modem_hint_t hints[] = {
    {0x2c7c, "Quectel", 2,
     "AT port is interface 02 (...-if02-port0, usually ttyUSB2); if03 is the PPP modem port"},
    {0x1e0e, "SIMCom", 2,
     "AT port is usually interface 02 (ttyUSB2 on SIM7600); interface 03 also takes AT"},
    {0x12d1, "Huawei", -1,
     "AT port is the \"PC UI\" interface (often ttyUSB2 or the last ttyUSB); a stick in storage "
     "mode needs usb_modeswitch first"},
    {0x1199, "Sierra Wireless", 3,
     "AT port is usually interface 03 (ttyUSB2); MBIM-only firmware may hide it"},
    {0x1bc7, "Telit", -1,
     "AT port depends on the USB composition (AT#USBCFG); try each with `lwm2m-gw modem probe`"},
    {0x1546, "u-blox", -1, "CDC-ACM ports: usually ttyACM0 takes AT commands"},
};

static const modem_hint_t *hint_for(int vid) {
  for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
    if (hints[i].vid == vid)
      return &hints[i];
  return NULL;
}

typedef struct {
  FILE *out;
  int at_interface;
} list_ctx_t;

static void print_link(void *arg, const char *link) {
  list_ctx_t *c = arg;
  const char *ifp = strstr(link, "-if");
  int iface = -1;
  if (ifp)
    iface = (int)strtol(ifp + 3, NULL, 10);
  fprintf(c->out, "    by-id:        %s%s\n", link,
          c->at_interface >= 0 && iface == c->at_interface ? "   <- likely the AT port" : "");
}

int sms_modem_probe_list(FILE *out, const char *by_id_dir) {
  struct sp_port **ports = NULL;
  if (sp_list_ports(&ports) != SP_OK) {
    fprintf(out, "cannot list serial ports (libserialport)\n");
    return GW_ERR_IO;
  }
  int n = 0;
  for (; ports[n]; n++) {
    struct sp_port *p = ports[n];
    const char *name = sp_get_port_name(p);
    const char *desc = sp_get_port_description(p);
    fprintf(out, "%s\n", name ? name : "?");
    if (desc && *desc)
      fprintf(out, "    description:  %s\n", desc);
    list_ctx_t ctx = {.out = out, .at_interface = -1};
    if (sp_get_port_transport(p) == SP_TRANSPORT_USB) {
      int vid = 0, pid = 0;
      if (sp_get_port_usb_vid_pid(p, &vid, &pid) == SP_OK)
        fprintf(out, "    usb:          %04x:%04x\n", vid, pid);
      const char *s;
      if ((s = sp_get_port_usb_manufacturer(p)) && *s)
        fprintf(out, "    manufacturer: %s\n", s);
      if ((s = sp_get_port_usb_product(p)) && *s)
        fprintf(out, "    product:      %s\n", s);
      if ((s = sp_get_port_usb_serial(p)) && *s)
        fprintf(out, "    serial:       %s\n", s);
      const modem_hint_t *h = hint_for(vid);
      if (h) {
        fprintf(out, "    modem:        %s: %s\n", h->maker, h->hint);
        ctx.at_interface = h->at_interface;
      }
    } else if (sp_get_port_transport(p) == SP_TRANSPORT_BLUETOOTH) {
      fprintf(out, "    transport:    bluetooth\n");
    }
    if (name)
      for_each_by_id_link(by_id_dir, name, print_link, &ctx);
    char holders[256];
    if (name && sms_serial_holders(name, holders, sizeof(holders)) > 0)
      fprintf(out, "    open by:      %s\n", holders);
  }
  sp_free_port_list(ports);
  if (n == 0)
    fprintf(out, "no serial ports found (is the modem plugged in and its driver loaded?)\n");
  else
    fprintf(out, "\nTry `lwm2m-gw modem probe PORT` on the likely AT port.\n");
  return n;
}

/* ---- probe ---- */

typedef enum {
  Q_AT,
  Q_ATE0,
  Q_CMEE,
  Q_CGMI,
  Q_CGMM,
  Q_CGMR,
  Q_CGSN,
  Q_CPIN,
  Q_CIMI,
  Q_CCID,
  Q_QCCID,
  Q_HUAWEI_ICCID,
  Q_CNUM,
  Q_CSQ,
  Q_CREG,
  Q_CEREG,
  Q_COPS,
  Q_CSCA,
  Q_CPMS,
  Q_CMGF,
  Q_CNMI,
  Q_COUNT
} query_t;

static const struct {
  const char *text, *expect;
} queries[Q_COUNT] = {
    [Q_AT] = {"AT", NULL},
    [Q_ATE0] = {"ATE0", NULL},
    [Q_CMEE] = {"AT+CMEE=1", NULL},
    [Q_CGMI] = {"AT+CGMI", NULL},
    [Q_CGMM] = {"AT+CGMM", NULL},
    [Q_CGMR] = {"AT+CGMR", NULL},
    [Q_CGSN] = {"AT+CGSN", NULL},
    [Q_CPIN] = {"AT+CPIN?", "+CPIN:"},
    [Q_CIMI] = {"AT+CIMI", NULL},
    [Q_CCID] = {"AT+CCID", NULL},
    [Q_QCCID] = {"AT+QCCID", NULL},
    [Q_HUAWEI_ICCID] = {"AT^ICCID?", NULL},
    [Q_CNUM] = {"AT+CNUM", "+CNUM:"},
    [Q_CSQ] = {"AT+CSQ", "+CSQ:"},
    [Q_CREG] = {"AT+CREG?", "+CREG:"},
    [Q_CEREG] = {"AT+CEREG?", "+CEREG:"},
    [Q_COPS] = {"AT+COPS?", "+COPS:"},
    [Q_CSCA] = {"AT+CSCA?", "+CSCA:"},
    [Q_CPMS] = {"AT+CPMS?", "+CPMS:"},
    [Q_CMGF] = {"AT+CMGF=?", "+CMGF:"},
    [Q_CNMI] = {"AT+CNMI=?", "+CNMI:"},
};

typedef struct {
  gw_loop_t *loop;
  sms_serial_t *serial;
  sms_at_engine_t *at;
  query_t q;
  int at_attempts;
  bool done, answered, port_lost;
  bool ok[Q_COUNT];
  char value[Q_COUNT][160];
  char error[Q_COUNT][64];
} probe_t;

static ssize_t probe_write(void *arg, const uint8_t *data, size_t len) {
  probe_t *p = arg;
  ssize_t n = sms_serial_write(p->serial, data, len);
  if (n < 0)
    p->port_lost = true;
  return n;
}

static void probe_want_write(void *arg, bool want) {
  probe_t *p = arg;
  gw_loop_mod_fd(p->loop, sms_serial_fd(p->serial), EPOLLIN | (want ? EPOLLOUT : 0));
}

static void probe_port_event(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)fd;
  probe_t *p = arg;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    uint8_t buf[1024];
    for (int i = 0; i < 64 && !p->port_lost; i++) {
      ssize_t n = sms_serial_read(p->serial, buf, sizeof(buf));
      if (n > 0)
        sms_at_engine_feed(p->at, buf, (size_t)n);
      else if (n < 0)
        p->port_lost = true;
      else
        break;
    }
    if (events & (EPOLLHUP | EPOLLERR))
      p->port_lost = true;
    if (p->port_lost) {
      sms_at_engine_close(p->at);
      p->done = true;
    }
  }
  if ((events & EPOLLOUT) && !p->port_lost)
    sms_at_engine_writable(p->at);
}

static void probe_next(probe_t *p);

/* Joins the reply lines (a bare identity, or the parameters after the expected prefix). */
static void keep_value(probe_t *p, const sms_at_result_t *r) {
  char *v = p->value[p->q];
  size_t used = 0;
  v[0] = '\0';
  for (size_t i = 0; i < r->line_count && used + 1 < sizeof(p->value[0]); i++) {
    const char *line = r->lines[i];
    const char *params = queries[p->q].expect ? sms_at_after_prefix(line, queries[p->q].expect)
                                              : NULL;
    if (!params && line[0] == '+' && strchr(line, ':') && strchr(line, ':') - line < 10)
      params = strchr(line, ':') + 1; /* "+CGMI: Quectel" */
    if (!params && line[0] == '^' && strchr(line, ':'))
      params = strchr(line, ':') + 1;
    if (!params)
      params = line;
    while (*params == ' ')
      params++;
    int w = snprintf(v + used, sizeof(p->value[0]) - used, "%s%s", used ? " | " : "", params);
    if (w < 0)
      break;
    used += (size_t)w < sizeof(p->value[0]) - used ? (size_t)w : sizeof(p->value[0]) - used - 1;
  }
}

static void probe_done(void *arg, const sms_at_result_t *r) {
  probe_t *p = arg;
  if (r->status == SMS_AT_RESULT_CLOSED) {
    p->done = true;
    return;
  }
  if (p->q == Q_AT && r->status == SMS_AT_RESULT_TIMEOUT) {
    if (++p->at_attempts < PROBE_AT_ATTEMPTS) {
      probe_next(p);
      return;
    }
    p->done = true;
    return;
  }
  if (p->q == Q_AT)
    p->answered = true;
  p->ok[p->q] = r->status == SMS_AT_RESULT_OK;
  if (p->ok[p->q]) {
    keep_value(p, r);
  } else if (r->status == SMS_AT_RESULT_CME_ERROR || r->status == SMS_AT_RESULT_CMS_ERROR) {
    const char *t = r->status == SMS_AT_RESULT_CME_ERROR ? sms_at_cme_text(r->code)
                                                         : sms_at_cms_text(r->code);
    snprintf(p->error[p->q], sizeof(p->error[0]), "%s %d%s%s", sms_at_status_name(r->status),
             r->code, t ? ": " : "", t ? t : "");
  } else {
    snprintf(p->error[p->q], sizeof(p->error[0]), "%s", sms_at_status_name(r->status));
  }
  /* The first ICCID command that answers wins. */
  if ((p->q == Q_CCID || p->q == Q_QCCID) && p->ok[p->q] && p->value[p->q][0])
    p->q = Q_HUAWEI_ICCID;
  p->q++;
  if (p->q == Q_COUNT) {
    p->done = true;
    return;
  }
  probe_next(p);
}

static void probe_next(probe_t *p) {
  sms_at_command_t c = {.text = queries[p->q].text,
                        .expect = queries[p->q].expect,
                        .timeout_ms = p->q == Q_AT ? 1000 : PROBE_COMMAND_TIMEOUT_MS,
                        .done = probe_done,
                        .arg = p};
  if (sms_at_engine_submit(p->at, &c) != GW_OK)
    p->done = true;
}

static const char *reg_name(int stat) {
  static const char *const names[] = {"not registered", "registered, home network",
                                      "searching", "registration denied", "unknown",
                                      "registered, roaming"};
  return stat >= 0 && stat <= 5 ? names[stat] : "other";
}

static void print_row(FILE *out, const probe_t *p, const char *label, query_t q) {
  if (p->ok[q] && p->value[q][0])
    fprintf(out, "%-14s%s\n", label, p->value[q]);
  else if (p->error[q][0])
    fprintf(out, "%-14s(%s)\n", label, p->error[q]);
  else
    fprintf(out, "%-14s?\n", label);
}

static void print_registration(FILE *out, const probe_t *p, const char *label, query_t q) {
  if (!p->ok[q]) {
    print_row(out, p, label, q);
    return;
  }
  int stat = sms_at_parse_reg_stat(p->value[q]);
  fprintf(out, "%-14s%s (%d)\n", label, stat < 0 ? "?" : reg_name(stat), stat);
}

/* The own number from "+CNUM: "<alpha>","<number>",<type>" (27.007 7.1). */
static void own_number(const probe_t *p, char *out, size_t out_size) {
  out[0] = '\0';
  if (!p->ok[Q_CNUM])
    return;
  char buf[192];
  const char *f[6];
  int n = sms_at_split_fields(p->value[Q_CNUM], buf, sizeof(buf), f, NULL, 6);
  if (n < 2)
    return;
  const char *num = f[1];
  if (*num == '+')
    num++;
  size_t k = 0;
  for (; num[k] && k + 1 < out_size; k++) {
    if (num[k] < '0' || num[k] > '9') {
      out[0] = '\0';
      return;
    }
    out[k] = num[k];
  }
  out[k] = '\0';
}

static void iccid_value(const probe_t *p, char *out, size_t out_size) {
  out[0] = '\0';
  static const query_t qs[] = {Q_CCID, Q_QCCID, Q_HUAWEI_ICCID};
  for (size_t i = 0; i < 3; i++) {
    if (!p->ok[qs[i]])
      continue;
    const char *v = p->value[qs[i]];
    while (*v == '"' || *v == ' ')
      v++;
    size_t k = 0;
    while (v[k] >= '0' && v[k] <= '9' && k + 1 < out_size) {
      out[k] = v[k];
      k++;
    }
    out[k] = '\0';
    if (k >= 10)
      return;
  }
  out[0] = '\0';
}

static void print_report(FILE *out, const char *port, const char *by_id, const probe_t *p) {
  print_row(out, p, "Manufacturer:", Q_CGMI);
  print_row(out, p, "Model:", Q_CGMM);
  print_row(out, p, "Revision:", Q_CGMR);
  print_row(out, p, "IMEI:", Q_CGSN);
  print_row(out, p, "SIM:", Q_CPIN);
  print_row(out, p, "IMSI:", Q_CIMI);
  char iccid[32];
  iccid_value(p, iccid, sizeof(iccid));
  fprintf(out, "%-14s%s\n", "ICCID:", iccid[0] ? iccid : "?");
  char msisdn[32];
  own_number(p, msisdn, sizeof(msisdn));
  fprintf(out, "%-14s%s\n", "Own number:",
          msisdn[0] ? msisdn : "? (the SIM does not store it: AT+CNUM is empty)");
  int rssi = -1;
  char buf[64];
  const char *f[3];
  if (p->ok[Q_CSQ] && sms_at_split_fields(p->value[Q_CSQ], buf, sizeof(buf), f, NULL, 3) >= 1 &&
      sms_at_parse_int(f[0], &rssi) && rssi <= 31)
    fprintf(out, "%-14s%d (%d dBm)\n", "Signal:", rssi, -113 + 2 * rssi);
  else
    print_row(out, p, "Signal:", Q_CSQ);
  print_registration(out, p, "CS network:", Q_CREG);
  print_registration(out, p, "EPS network:", Q_CEREG);
  print_row(out, p, "Operator:", Q_COPS);
  print_row(out, p, "SMS centre:", Q_CSCA);
  print_row(out, p, "Storage:", Q_CPMS);
  fprintf(out, "%-14s%s\n", "PDU mode:",
          p->ok[Q_CMGF] ? (strchr(p->value[Q_CMGF], '0') ? "supported" : "NOT supported")
                        : "? (AT+CMGF=? refused)");
  print_row(out, p, "AT+CNMI=?:", Q_CNMI);

  bool pin_needed = p->ok[Q_CPIN] && strcasecmp(p->value[Q_CPIN], "SIM PIN") == 0;
  bool puk_needed = p->ok[Q_CPIN] && strncasecmp(p->value[Q_CPIN], "SIM PUK", 7) == 0;
  fprintf(out, "\n");
  if (puk_needed)
    fprintf(out, "Warning: the SIM is blocked (PUK needed): unblock it in a phone first.\n");
  if (!by_id)
    fprintf(out, "Note: no link in /dev/serial/by-id points to %s; the ttyUSB number may change "
                 "when the modem re-enumerates.\n",
            port);
  fprintf(out, "Configuration:\n");
  fprintf(out, "bindings = { sms = { enabled = true; modem = \"%s\"; msisdn = \"%s\";%s }; };\n",
          by_id ? by_id : port, msisdn[0] ? msisdn : "...",
          pin_needed ? " pin = \"...\";" : "");
  if (!msisdn[0])
    fprintf(out, "(fill in msisdn: the modem's own number, international digits without '+')\n");
}

int sms_modem_probe_port(FILE *out, const char *port, const sms_modem_probe_opts_t *opts) {
  sms_modem_probe_opts_t o = opts ? *opts : (sms_modem_probe_opts_t){0};
  if (!o.timeout_ms)
    o.timeout_ms = PROBE_TIMEOUT_MS;
  probe_t *p = calloc(1, sizeof(*p));
  if (!p)
    return GW_ERR_NOMEM;
  char err[512];
  int rc = sms_serial_open(port, o.baud, SMS_SERIAL_AUTO, &p->serial, err, sizeof(err));
  if (rc != GW_OK) {
    fprintf(out, "cannot open %s\n", err);
    free(p);
    return rc;
  }
  rc = gw_loop_new(&p->loop);
  if (rc == GW_OK) {
    sms_at_io_t io = {.arg = p, .write = probe_write, .want_write = probe_want_write};
    rc = sms_at_engine_new(p->loop, &io, PROBE_COMMAND_TIMEOUT_MS, &p->at);
  }
  if (rc == GW_OK)
    rc = gw_loop_add_fd(p->loop, sms_serial_fd(p->serial), EPOLLIN, probe_port_event, p);
  if (rc != GW_OK) {
    fprintf(out, "cannot probe %s: %s\n", port, gw_strerror(rc));
  } else {
    char by_id[PATH_MAX];
    bool have_by_id = sms_modem_probe_by_id_link(o.by_id_dir, port, by_id, sizeof(by_id));
    fprintf(out, "%-14s%s%s%s (%s)\n", "Port:", sms_serial_device(p->serial),
            have_by_id ? " = " : "", have_by_id ? by_id : "", sms_serial_backend_name(p->serial));
    sms_at_engine_open(p->at);
    static const uint8_t esc = 0x1b; /* leave a stale "> " prompt */
    sms_at_engine_send_raw(p->at, &esc, 1);
    probe_next(p);
    uint64_t end = gw_now_ms() + o.timeout_ms;
    while (!p->done && gw_now_ms() < end)
      gw_loop_run_once(p->loop, (int)(end - gw_now_ms()));
    if (!p->answered) {
      fprintf(out, "no answer to AT from %s: not an AT port, or the modem is still booting; "
                   "try the other interfaces (`lwm2m-gw modem list`)\n",
              port);
      rc = GW_ERR_IO;
    } else {
      if (!p->done)
        fprintf(out, "(probe timed out after %u ms; what came so far:)\n", o.timeout_ms);
      print_report(out, port, have_by_id ? by_id : NULL, p);
    }
    gw_loop_del_fd(p->loop, sms_serial_fd(p->serial));
  }
  sms_at_engine_free(&p->at);
  sms_serial_close(&p->serial);
  gw_loop_free(&p->loop);
  free(p);
  return rc;
}
