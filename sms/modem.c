/* lwm2m-gw: the cellular modem driver (3GPP TS 27.007 / 27.005, PDU mode). See modem.h.
 *
 * Three layers: serial.c opens the port, at.c runs one AT command at a time, and this file
 * decides what to ask. After the initialisation sequence (a small state machine over init_step_t)
 * the work is a series of jobs, one at a time, each a short sequence of AT commands that must
 * not interleave with another's (switch storage, read, delete, switch back):
 *
 *   CNMA   acknowledge a +CMT direct delivery (first: the network waits for it)
 *   READ   a +CMTI notification: AT+CMGR, on_pdu, AT+CMGD
 *   SEND   one queued SMS-SUBMIT: AT+CMGS, prompt, PDU, Ctrl-Z (paced by send_interval_ms)
 *   SWEEP  AT+CMGL=4, on_pdu for each, AT+CMGD for each (periodic, and at READY)
 *   HEALTH AT+CSQ, AT+CREG?, AT+CEREG?, AT+CPMS? (periodic)
 *
 * An SMS is deleted only after on_pdu returned: a crash or unplug in between leaves it on the
 * modem and the next sweep brings it again (the owner deduplicates).
 */
#include "modem.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "at.h"
#include "gw_text.h"
#include "gw_error.h"
#include "gw_log.h"
#include "serial.h"

#define MOD "modem"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define AT_PROBE_ATTEMPTS 10     /* "AT" while the modem boots */
#define AT_PROBE_TIMEOUT_MS 1000
#define AT_PROBE_DELAY_MS 500
#define SIM_BUSY_DELAY_MS 1000   /* +CME ERROR: 14 (SIM busy): ask again after */
#define SIM_BUSY_BUDGET_MS 20000 /* ... for at most this long */
#define PIN_UNCONFIRMED_MAX 2    /* PIN sends without a seen verdict before we stop sending:
                                    a SIM allows 3 wrong ones */
#define CMGS_TIMEOUT_MS 60000
#define CMGL_TIMEOUT_MS 30000
#define SEND_ATTEMPTS 3          /* the first and two retries for transient errors */
#define READS_MAX 64
#define TIMEOUTS_BEFORE_REOPEN 3 /* consecutive AT timeouts while READY */
#define HEX_PDU_MAX (2 * SMS_MODEM_PDU_MAX)

typedef enum {
  STEP_AT,
  STEP_ATE0,
  STEP_CMEE,
  STEP_CPIN_QUERY,
  STEP_CPIN_ENTER,
  STEP_CMGF,
  STEP_CSCA_QUERY,
  STEP_CSCA_SET,
  STEP_CPMS,
  STEP_CPMS_SM,
  STEP_CNMI,
  STEP_CGMI,
  STEP_VENDOR,
  STEP_CGMM,
  STEP_CGMR,
  STEP_CGSN,
  STEP_CIMI,
  STEP_ICCID,
} init_step_t;

typedef enum { JOB_NONE, JOB_CNMA, JOB_READ, JOB_SEND, JOB_SWEEP, JOB_HEALTH } job_kind_t;

typedef struct {
  uint32_t id;
  char *hex; /* the whole PDU in hex, SMSC part first */
  size_t tpdu_len;
  int attempts;
} send_item_t;

typedef struct {
  char mem[8];
  int index;
} read_req_t;

typedef struct {
  job_kind_t kind;
  int step;
  read_req_t read;
  bool switched; /* READ, SWEEP: storage switched for this job, switch back at the end */
  int *deletes;  /* SWEEP: indices handed to on_pdu, to delete */
  int delete_count, delete_next;
  send_item_t send;
} job_t;

typedef enum { VENDOR_OTHER, VENDOR_QUECTEL, VENDOR_HUAWEI, VENDOR_SIMCOM } vendor_t;

static const char *const cnmi_chain[] = {"2,1,0,0,0", "1,1,0,0,0", "2,1,0,0", "1,1"};
static const char *const iccid_chain[] = {"AT+CCID", "AT+QCCID", "AT^ICCID?"};

struct sms_modem {
  gw_loop_t *loop;
  sms_modem_conf_t conf; /* strings point to the copies below */
  char *port, *pin, *smsc, *storage;
  sms_modem_callbacks_t cb;
  sms_modem_status_t status;

  sms_serial_t *serial;
  int fd;
  sms_at_engine_t *at;
  bool started, freeing, ever_opened;
  uint32_t backoff_ms;
  char last_open_error[512];

  gw_timer_t reopen_timer, step_timer, sweep_timer, health_timer, send_timer, close_timer;
  char close_reason[160];
  sms_modem_state_t close_state; /* CLOSED (reopen) or FAILED */
  bool close_pending;

  /* initialisation */
  init_step_t step;
  int attempts;
  uint64_t busy_since;
  bool pin_sent;            /* in this run */
  int pin_unconfirmed;      /* sends since the SIM last said READY, across reopens */
  int cnmi_choice, iccid_choice;
  vendor_t vendor;
  char read_mem[8];         /* <mem1> of AT+CPMS: where +CMTI indices point */
  bool foreign_mem_logged;
  bool reinit_pending;

  /* work */
  job_t job;
  bool sweep_wanted, health_wanted;
  bool sim_sweep_wanted; /* also sweep "SM": SMS may land there while the modem has its
                          * defaults (boot, replug), before AT+CPMS selects our storage */
  int cnma_wanted;
  read_req_t reads[READS_MAX];
  int read_count;
  send_item_t *sends; /* ring */
  size_t send_head, send_count;
  uint32_t next_send_id;
  uint64_t next_send_ms;
  int timeouts_in_a_row;
};

static void init_start(sms_modem_t *m);
static void init_run_step(sms_modem_t *m);
static void pump(sms_modem_t *m);

/* ---- small helpers ---- */

const char *sms_modem_state_name(sms_modem_state_t state) {
  switch (state) {
  case SMS_MODEM_CLOSED: return "closed";
  case SMS_MODEM_INITIALISING: return "initialising";
  case SMS_MODEM_READY: return "ready";
  case SMS_MODEM_FAILED: return "failed";
  }
  return "?";
}

static void set_state(sms_modem_t *m, sms_modem_state_t state) {
  if (m->status.state == state)
    return;
  m->status.state = state;
  GW_DEBUG(MOD, "state %s", sms_modem_state_name(state));
  if (m->cb.on_state && !m->freeing)
    m->cb.on_state(m->cb.arg, state);
}

static void set_error(sms_modem_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(sms_modem_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->status.last_error, sizeof(m->status.last_error), fmt, ap);
  va_end(ap);
}

static const char *first_line(const sms_at_result_t *r) {
  return r->line_count > 0 ? r->lines[0] : NULL;
}

/* The first reply line starting with prefix, parameters after it; NULL when none. */
static const char *reply_params(const sms_at_result_t *r, const char *prefix) {
  for (size_t i = 0; i < r->line_count; i++) {
    const char *p = sms_at_after_prefix(r->lines[i], prefix);
    if (p)
      return p;
  }
  return NULL;
}

/* Identity replies come bare ("Quectel") or prefixed ("+CGMI: Quectel", "+CCID: "8949...""):
 * drop a "+NAME:"/"^NAME:" prefix, quotes and blanks. */
static void identity_value(const sms_at_result_t *r, char *out, size_t out_size) {
  const char *line = first_line(r);
  out[0] = '\0';
  if (!line)
    return;
  if (line[0] == '+' || line[0] == '^') {
    const char *colon = strchr(line, ':');
    if (colon && colon - line < 12)
      line = colon + 1;
  }
  while (*line == ' ' || *line == '"')
    line++;
  snprintf(out, out_size, "%s", line);
  size_t n = strlen(out);
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '"'))
    out[--n] = '\0';
}

static bool is_sim_busy(const sms_at_result_t *r) {
  return (r->status == SMS_AT_RESULT_CME_ERROR && r->code == 14) ||
         (r->status == SMS_AT_RESULT_CMS_ERROR && r->code == 314);
}

static const char *result_text(const sms_at_result_t *r, char *buf, size_t size) {
  if (r->status == SMS_AT_RESULT_CME_ERROR || r->status == SMS_AT_RESULT_CMS_ERROR) {
    const char *t = r->status == SMS_AT_RESULT_CME_ERROR ? sms_at_cme_text(r->code)
                                                         : sms_at_cms_text(r->code);
    snprintf(buf, size, "%s: %d%s%s%s", sms_at_status_name(r->status), r->code, t ? " (" : "",
             t ? t : "", t ? ")" : "");
  } else if (r->prompt_missing) {
    snprintf(buf, size, "no prompt");
  } else {
    snprintf(buf, size, "%s", sms_at_status_name(r->status));
  }
  return buf;
}

/* ---- port ---- */

static ssize_t port_write(void *arg, const uint8_t *data, size_t len);
static void port_want_write(void *arg, bool want);
static void on_urc(void *arg, const sms_at_urc_t *urc);

static void stop_work_timers(sms_modem_t *m) {
  gw_timer_stop(m->loop, &m->step_timer);
  gw_timer_stop(m->loop, &m->sweep_timer);
  gw_timer_stop(m->loop, &m->health_timer);
  gw_timer_stop(m->loop, &m->send_timer);
}

static void send_push_front(sms_modem_t *m, send_item_t item);
static void fail_all_sends(sms_modem_t *m);

static void job_clear(sms_modem_t *m) {
  free(m->job.deletes);
  memset(&m->job, 0, sizeof(m->job));
}

/* Closes the port now. final_state CLOSED reopens with backoff; FAILED stays down. */
static void port_close(sms_modem_t *m, const char *reason, sms_modem_state_t final_state) {
  char why[160];
  /* A pending FAILED (wrong PIN) must not turn into a reopen because the port hung up first. */
  if (m->close_pending && m->close_state == SMS_MODEM_FAILED)
    final_state = SMS_MODEM_FAILED;
  snprintf(why, sizeof(why), "%s", m->close_pending && m->close_state == SMS_MODEM_FAILED
                                       ? m->close_reason
                                       : reason);
  reason = why;
  gw_timer_stop(m->loop, &m->close_timer);
  m->close_pending = false;
  if (m->serial) {
    if (final_state == SMS_MODEM_FAILED)
      GW_ERR(MOD, "%s: %s; giving up until restarted", m->port, reason);
    else
      GW_WARN(MOD, "%s: %s; closing the port", m->port, reason);
    gw_loop_del_fd(m->loop, m->fd);
    sms_serial_close(&m->serial);
    m->fd = -1;
  }
  set_error(m, "%s", reason);
  stop_work_timers(m);
  /* Commands still in the engine complete with CLOSED; a send in flight goes back to the head of
   * the queue from its callback. Set the state first so no callback starts new work. */
  sms_modem_state_t previous = m->status.state;
  m->status.state = final_state;
  sms_at_engine_close(m->at);
  if (m->job.kind == JOB_SEND && m->job.send.hex) { /* taken from the queue, never submitted */
    send_push_front(m, m->job.send);
    m->job.send.hex = NULL;
  }
  job_clear(m);
  m->read_count = 0;
  m->cnma_wanted = 0;
  m->sweep_wanted = m->health_wanted = false;
  m->reinit_pending = false;
  if (previous != final_state && m->cb.on_state && !m->freeing)
    m->cb.on_state(m->cb.arg, final_state);
  if (final_state == SMS_MODEM_FAILED) {
    gw_timer_stop(m->loop, &m->reopen_timer);
    fail_all_sends(m);
    return;
  }
  gw_timer_start(m->loop, &m->reopen_timer, m->backoff_ms);
  GW_INFO(MOD, "%s: reopening in %u ms", m->port, m->backoff_ms);
  m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

/* From inside engine callbacks: close once the stack has unwound. */
static void schedule_close(sms_modem_t *m, sms_modem_state_t final_state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void schedule_close(sms_modem_t *m, sms_modem_state_t final_state, const char *fmt, ...) {
  if (m->close_pending && m->close_state == SMS_MODEM_FAILED)
    return; /* FAILED wins over a later reason */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->close_reason, sizeof(m->close_reason), fmt, ap);
  va_end(ap);
  m->close_state = final_state;
  m->close_pending = true;
  gw_timer_start(m->loop, &m->close_timer, 0);
}

static void close_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  sms_modem_t *m = arg;
  if (m->close_pending)
    port_close(m, m->close_reason, m->close_state);
}

static void on_port_event(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)fd;
  sms_modem_t *m = arg;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    uint8_t buf[1024];
    for (int rounds = 0; rounds < 64 && m->serial; rounds++) {
      ssize_t n = sms_serial_read(m->serial, buf, sizeof(buf));
      if (n > 0) {
        sms_at_engine_feed(m->at, buf, (size_t)n);
        continue;
      }
      if (n < 0) {
        char reason[128];
        if (errno)
          snprintf(reason, sizeof(reason), "read error: %s (device gone?)", strerror(errno));
        else
          snprintf(reason, sizeof(reason), "end of file (device gone?)");
        port_close(m, reason, SMS_MODEM_CLOSED);
        return;
      }
      break;
    }
    if (!m->serial)
      return;
    if (events & (EPOLLHUP | EPOLLERR)) {
      port_close(m, "hang-up (modem unplugged or reset?)", SMS_MODEM_CLOSED);
      return;
    }
  }
  if ((events & EPOLLOUT) && m->serial)
    sms_at_engine_writable(m->at);
}

static ssize_t port_write(void *arg, const uint8_t *data, size_t len) {
  sms_modem_t *m = arg;
  if (!m->serial)
    return -1;
  ssize_t n = sms_serial_write(m->serial, data, len);
  if (n < 0)
    schedule_close(m, SMS_MODEM_CLOSED, "write error: %s", strerror(errno));
  return n;
}

static void port_want_write(void *arg, bool want) {
  sms_modem_t *m = arg;
  if (m->serial)
    gw_loop_mod_fd(m->loop, m->fd, EPOLLIN | (want ? EPOLLOUT : 0));
}

static void port_open(sms_modem_t *m) {
  char err[512];
  int rc = sms_serial_open(m->port, m->conf.baud, SMS_SERIAL_AUTO, &m->serial, err, sizeof(err));
  if (rc != GW_OK) {
    /* Say it once; the same failure every backoff step goes to debug. */
    if (strcmp(err, m->last_open_error) != 0)
      GW_WARN(MOD, "%s; retrying in %u ms", err, m->backoff_ms);
    else
      GW_DEBUG(MOD, "%s; retrying in %u ms", err, m->backoff_ms);
    snprintf(m->last_open_error, sizeof(m->last_open_error), "%s", err);
    set_error(m, "%s", err);
    gw_timer_start(m->loop, &m->reopen_timer, m->backoff_ms);
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
    return;
  }
  m->last_open_error[0] = '\0';
  m->fd = sms_serial_fd(m->serial);
  if (gw_loop_add_fd(m->loop, m->fd, EPOLLIN, on_port_event, m) != GW_OK) {
    sms_serial_close(&m->serial);
    set_error(m, "%s: cannot watch the port", m->port);
    gw_timer_start(m->loop, &m->reopen_timer, m->backoff_ms);
    return;
  }
  snprintf(m->status.backend, sizeof(m->status.backend), "%s", sms_serial_backend_name(m->serial));
  snprintf(m->status.device, sizeof(m->status.device), "%s", sms_serial_device(m->serial));
  if (m->ever_opened)
    m->status.reopens++;
  m->ever_opened = true;
  GW_INFO(MOD, "%s: opened %s (%s)", m->port, m->status.device, m->status.backend);
  sms_at_engine_open(m->at);
  /* 27.005 3.5.1: ESC leaves a "> " prompt a previous run may have left the modem in. */
  static const uint8_t esc = 0x1b;
  sms_at_engine_send_raw(m->at, &esc, 1);
  set_state(m, SMS_MODEM_INITIALISING);
  init_start(m);
}

static void reopen_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  sms_modem_t *m = arg;
  if (!m->serial && m->status.state == SMS_MODEM_CLOSED)
    port_open(m);
}

/* ---- submitting ---- */

static void init_done(void *arg, const sms_at_result_t *r);
static void job_done(void *arg, const sms_at_result_t *r);

static void submit(sms_modem_t *m, sms_at_done_cb_t done, const char *text, const char *expect,
                   uint32_t timeout_ms, const char *payload, bool secret) {
  sms_at_command_t c = {.text = text,
                        .expect = expect,
                        .timeout_ms = timeout_ms,
                        .payload = (const uint8_t *)payload,
                        .payload_len = payload ? strlen(payload) : 0,
                        .secret = secret,
                        .done = done,
                        .arg = m};
  int rc = sms_at_engine_submit(m->at, &c);
  if (rc != GW_OK)
    schedule_close(m, SMS_MODEM_CLOSED, "cannot queue %s: %s", secret ? "AT+CPIN" : text,
                   gw_strerror(rc));
}

/* ---- initialisation ---- */

static void init_start(sms_modem_t *m) {
  m->reinit_pending = false;
  m->step = STEP_AT;
  m->attempts = 0;
  m->busy_since = 0;
  m->pin_sent = false;
  m->cnmi_choice = 0;
  m->iccid_choice = 0;
  m->vendor = VENDOR_OTHER;
  m->status.cnmi[0] = '\0';
  set_state(m, SMS_MODEM_INITIALISING);
  init_run_step(m);
}

static void step_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  sms_modem_t *m = arg;
  if (m->status.state == SMS_MODEM_INITIALISING && m->serial)
    init_run_step(m);
}

static void init_goto(sms_modem_t *m, init_step_t step) {
  m->step = step;
  m->attempts = 0;
  init_run_step(m);
}

static void init_retry_later(sms_modem_t *m, uint32_t delay_ms) {
  gw_timer_start(m->loop, &m->step_timer, delay_ms);
}

static void init_ready(sms_modem_t *m);

static void init_run_step(sms_modem_t *m) {
  char cmd[SMS_AT_TEXT_MAX];
  uint32_t t = m->conf.command_timeout_ms;
  switch (m->step) {
  case STEP_AT: submit(m, init_done, "AT", NULL, AT_PROBE_TIMEOUT_MS, NULL, false); return;
  case STEP_ATE0: submit(m, init_done, "ATE0", NULL, t, NULL, false); return;
  case STEP_CMEE: submit(m, init_done, "AT+CMEE=1", NULL, t, NULL, false); return;
  case STEP_CPIN_QUERY: submit(m, init_done, "AT+CPIN?", "+CPIN:", t, NULL, false); return;
  case STEP_CPIN_ENTER:
    snprintf(cmd, sizeof(cmd), "AT+CPIN=\"%s\"", m->pin);
    m->pin_unconfirmed++; /* until the answer is seen: the port may vanish meanwhile */
    submit(m, init_done, cmd, NULL, t > 20000 ? t : 20000, NULL, true);
    explicit_bzero(cmd, sizeof(cmd));
    return;
  case STEP_CMGF: submit(m, init_done, "AT+CMGF=0", NULL, t, NULL, false); return;
  case STEP_CSCA_QUERY: submit(m, init_done, "AT+CSCA?", "+CSCA:", t, NULL, false); return;
  case STEP_CSCA_SET:
    /* The configuration holds international numbers without '+' (23.003): type 145. */
    snprintf(cmd, sizeof(cmd), "AT+CSCA=\"%s%s\",145", m->smsc[0] == '+' ? "" : "+", m->smsc);
    submit(m, init_done, cmd, NULL, t, NULL, false);
    return;
  case STEP_CPMS:
    /* All three memories: with one, some modems change only <mem1> and +CMTI keeps pointing
     * into another storage. */
    snprintf(cmd, sizeof(cmd), "AT+CPMS=\"%s\",\"%s\",\"%s\"", m->storage, m->storage,
             m->storage);
    submit(m, init_done, cmd, "+CPMS:", t, NULL, false);
    return;
  case STEP_CPMS_SM:
    submit(m, init_done, "AT+CPMS=\"SM\",\"SM\",\"SM\"", "+CPMS:", t, NULL, false);
    return;
  case STEP_CNMI:
    snprintf(cmd, sizeof(cmd), "AT+CNMI=%s", cnmi_chain[m->cnmi_choice]);
    submit(m, init_done, cmd, NULL, t, NULL, false);
    return;
  case STEP_CGMI: submit(m, init_done, "AT+CGMI", NULL, t, NULL, false); return;
  case STEP_VENDOR:
    if (m->vendor == VENDOR_QUECTEL) /* URCs (+CMTI) on the AT port, not only on the modem port */
      submit(m, init_done, "AT+QURCCFG=\"urcport\",\"usbat\"", NULL, t, NULL, false);
    else /* Huawei: silence the ^RSSI/^MODE/^SRVST stream */
      submit(m, init_done, "AT^CURC=0", NULL, t, NULL, false);
    return;
  case STEP_CGMM: submit(m, init_done, "AT+CGMM", NULL, t, NULL, false); return;
  case STEP_CGMR: submit(m, init_done, "AT+CGMR", NULL, t, NULL, false); return;
  case STEP_CGSN: submit(m, init_done, "AT+CGSN", NULL, t, NULL, false); return;
  case STEP_CIMI: submit(m, init_done, "AT+CIMI", NULL, t, NULL, false); return;
  case STEP_ICCID: submit(m, init_done, iccid_chain[m->iccid_choice], NULL, t, NULL, false); return;
  }
}

static void parse_cpms_reply(sms_modem_t *m, const char *params) {
  char buf[160];
  const char *f[12];
  bool quoted[12];
  int n = sms_at_split_fields(params, buf, sizeof(buf), f, quoted, 12);
  int used, total;
  if (n >= 3 && quoted[0] && sms_at_parse_int(f[1], &used) && sms_at_parse_int(f[2], &total)) {
    /* AT+CPMS?: "<mem1>",<used1>,<total1>,... */
    snprintf(m->status.storage, sizeof(m->status.storage), "%s", f[0]);
  } else if (!(n >= 2 && sms_at_parse_int(f[0], &used) && sms_at_parse_int(f[1], &total))) {
    return; /* AT+CPMS=: <used1>,<total1>,... */
  }
  m->status.storage_used = used;
  m->status.storage_total = total;
  bool full = total > 0 && used >= total;
  if (full && !m->status.storage_full) {
    GW_WARN(MOD, "message storage %s full (%d of %d): draining it", m->status.storage, used,
            total);
    m->sweep_wanted = true;
  }
  m->status.storage_full = full;
}

/* A SIM state that needs the operator: stop, never retry (a wrong PIN retried locks the SIM). */
static void init_fail(sms_modem_t *m, const char *why) {
  schedule_close(m, SMS_MODEM_FAILED, "%s", why);
}

static void init_cpin_state(sms_modem_t *m, const char *code) {
  if (strcasecmp(code, "READY") == 0 || strcasecmp(code, "SIM PIN2") == 0 ||
      strcasecmp(code, "SIM PUK2") == 0) {
    m->pin_unconfirmed = 0;
    init_goto(m, STEP_CMGF);
  } else if (strcasecmp(code, "SIM PIN") == 0) {
    if (m->pin_sent) {
      init_fail(m, "the SIM still asks for its PIN after it was sent: not sending it again "
                   "(a third wrong PIN blocks the SIM); check bindings.sms.pin");
    } else if (!m->pin || !*m->pin) {
      init_fail(m, "the SIM needs its PIN and none is configured (bindings.sms.pin)");
    } else if (m->pin_unconfirmed >= PIN_UNCONFIRMED_MAX) {
      init_fail(m, "the SIM asks for its PIN again although it was sent before without a clear "
                   "answer: not risking a wrong attempt; check bindings.sms.pin");
    } else {
      GW_INFO(MOD, "entering the SIM PIN");
      init_goto(m, STEP_CPIN_ENTER);
    }
  } else if (strncasecmp(code, "SIM PUK", 7) == 0) {
    init_fail(m, "the SIM is blocked and needs its PUK (too many wrong PINs): unblock it in a "
                 "phone, then restart");
  } else {
    char why[128];
    snprintf(why, sizeof(why), "the SIM asks for \"%.40s\", which the gateway cannot give",
             code);
    init_fail(m, why);
  }
}

static void init_done(void *arg, const sms_at_result_t *r) {
  sms_modem_t *m = arg;
  if (r->status == SMS_AT_RESULT_CLOSED || m->freeing || m->close_pending)
    return;
  if (r->status == SMS_AT_RESULT_TIMEOUT)
    m->status.at_timeouts++;
  char rt[96];
  uint64_t now = gw_now_ms();

  /* After the PIN the SIM is busy for a few seconds: every step may answer +CME ERROR: 14. */
  if (is_sim_busy(r) && m->step >= STEP_CPIN_QUERY) {
    if (!m->busy_since)
      m->busy_since = now;
    if (m->step == STEP_CPIN_ENTER)
      m->pin_unconfirmed--; /* busy: the PIN was not looked at */
    if (now - m->busy_since < SIM_BUSY_BUDGET_MS) {
      GW_DEBUG(MOD, "SIM busy, asking again in %d ms", SIM_BUSY_DELAY_MS);
      init_retry_later(m, SIM_BUSY_DELAY_MS);
      return;
    }
    schedule_close(m, SMS_MODEM_CLOSED, "the SIM stays busy for more than %d s",
                   SIM_BUSY_BUDGET_MS / 1000);
    return;
  }

  switch (m->step) {
  case STEP_AT:
    if (r->status == SMS_AT_RESULT_TIMEOUT) {
      if (++m->attempts < AT_PROBE_ATTEMPTS) {
        init_retry_later(m, AT_PROBE_DELAY_MS);
        return;
      }
      schedule_close(m, SMS_MODEM_CLOSED, "no answer to AT (%d attempts): is this the AT port?",
                     AT_PROBE_ATTEMPTS);
      return;
    }
    init_goto(m, STEP_ATE0); /* any final result: the modem listens */
    return;
  case STEP_ATE0: init_goto(m, STEP_CMEE); return;
  case STEP_CMEE: init_goto(m, STEP_CPIN_QUERY); return;
  case STEP_CPIN_QUERY: {
    const char *code = reply_params(r, "+CPIN:");
    if (r->status == SMS_AT_RESULT_OK && code) {
      init_cpin_state(m, code);
      return;
    }
    if (r->status == SMS_AT_RESULT_CME_ERROR) {
      switch (r->code) {
      case 11: init_cpin_state(m, "SIM PIN"); return;
      case 12: init_cpin_state(m, "SIM PUK"); return;
      case 10:
        schedule_close(m, SMS_MODEM_CLOSED, "no SIM card (+CME ERROR: 10 SIM not inserted)");
        return;
      case 13:
      case 15:
        schedule_close(m, SMS_MODEM_CLOSED, "SIM failure (%s)", result_text(r, rt, sizeof(rt)));
        return;
      default: break;
      }
    }
    /* Anything else (a modem still booting): ask again within the SIM busy budget. */
    if (!m->busy_since)
      m->busy_since = now;
    if (now - m->busy_since < SIM_BUSY_BUDGET_MS) {
      init_retry_later(m, SIM_BUSY_DELAY_MS);
      return;
    }
    schedule_close(m, SMS_MODEM_CLOSED, "no SIM state from AT+CPIN? (%s)",
                   result_text(r, rt, sizeof(rt)));
    return;
  }
  case STEP_CPIN_ENTER:
    if (r->status == SMS_AT_RESULT_OK) {
      GW_INFO(MOD, "SIM PIN accepted");
      m->pin_sent = true;
      m->pin_unconfirmed = 0;
      m->busy_since = 0;
      init_goto(m, STEP_CPIN_QUERY);
      return;
    }
    if (r->status == SMS_AT_RESULT_CME_ERROR && r->code == 16) {
      init_fail(m, "the SIM rejected the PIN (+CME ERROR: 16 incorrect password): not retrying, "
                   "a third wrong PIN blocks the SIM; fix bindings.sms.pin and restart");
      return;
    }
    if (r->status == SMS_AT_RESULT_CME_ERROR && r->code == 12) {
      init_cpin_state(m, "SIM PUK");
      return;
    }
    /* No clear verdict (plain ERROR, timeout): the PIN may have been counted. Ask the SIM, and
     * never send it again in this run. */
    GW_WARN(MOD, "unclear answer to the PIN (%s): asking the SIM", result_text(r, rt, sizeof(rt)));
    m->pin_sent = true;
    init_goto(m, STEP_CPIN_QUERY);
    return;
  case STEP_CMGF:
    if (r->status != SMS_AT_RESULT_OK) {
      schedule_close(m, SMS_MODEM_CLOSED, "the modem refuses PDU mode (AT+CMGF=0: %s)",
                     result_text(r, rt, sizeof(rt)));
      return;
    }
    init_goto(m, STEP_CSCA_QUERY);
    return;
  case STEP_CSCA_QUERY: {
    const char *p = reply_params(r, "+CSCA:");
    if (r->status == SMS_AT_RESULT_OK && p) {
      char buf[96];
      const char *f[4];
      if (sms_at_split_fields(p, buf, sizeof(buf), f, NULL, 4) >= 1)
        snprintf(m->status.smsc, sizeof(m->status.smsc), "%s", f[0]);
    } else {
      GW_DEBUG(MOD, "AT+CSCA?: %s", result_text(r, rt, sizeof(rt)));
    }
    init_goto(m, m->smsc ? STEP_CSCA_SET : STEP_CPMS);
    return;
  }
  case STEP_CSCA_SET:
    if (r->status == SMS_AT_RESULT_OK)
      snprintf(m->status.smsc, sizeof(m->status.smsc), "%s%s", m->smsc[0] == '+' ? "" : "+",
               m->smsc);
    else
      GW_WARN(MOD, "cannot set the SMS centre to %s (%s): keeping %s", m->smsc,
              result_text(r, rt, sizeof(rt)), m->status.smsc[0] ? m->status.smsc : "the SIM's");
    init_goto(m, STEP_CPMS);
    return;
  case STEP_CPMS:
  case STEP_CPMS_SM: {
    const char *mem = m->step == STEP_CPMS ? m->storage : "SM";
    if (r->status == SMS_AT_RESULT_OK) {
      snprintf(m->status.storage, sizeof(m->status.storage), "%s", mem);
      snprintf(m->read_mem, sizeof(m->read_mem), "%s", mem);
      const char *p = reply_params(r, "+CPMS:");
      if (p)
        parse_cpms_reply(m, p);
      init_goto(m, STEP_CNMI);
      return;
    }
    if (m->step == STEP_CPMS && strcasecmp(m->storage, "SM") != 0) {
      GW_WARN(MOD, "message storage \"%s\" refused (%s): using \"SM\"", m->storage,
              result_text(r, rt, sizeof(rt)));
      init_goto(m, STEP_CPMS_SM);
      return;
    }
    GW_WARN(MOD, "cannot choose the message storage (%s): keeping the modem's",
            result_text(r, rt, sizeof(rt)));
    m->read_mem[0] = '\0';
    init_goto(m, STEP_CNMI);
    return;
  }
  case STEP_CNMI:
    if (r->status == SMS_AT_RESULT_OK) {
      snprintf(m->status.cnmi, sizeof(m->status.cnmi), "%s", cnmi_chain[m->cnmi_choice]);
      GW_DEBUG(MOD, "new-message indications: AT+CNMI=%s", m->status.cnmi);
      init_goto(m, STEP_CGMI);
      return;
    }
    if (++m->cnmi_choice < (int)(sizeof(cnmi_chain) / sizeof(cnmi_chain[0]))) {
      init_goto(m, STEP_CNMI);
      return;
    }
    GW_WARN(MOD, "the modem takes no AT+CNMI setting (%s): no +CMTI notifications, new SMS are "
                 "picked up by the sweep every %u ms",
            result_text(r, rt, sizeof(rt)), m->conf.sweep_interval_ms);
    init_goto(m, STEP_CGMI);
    return;
  case STEP_CGMI:
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, m->status.manufacturer, sizeof(m->status.manufacturer));
    if (strcasestr(m->status.manufacturer, "quectel"))
      m->vendor = VENDOR_QUECTEL;
    else if (strcasestr(m->status.manufacturer, "huawei"))
      m->vendor = VENDOR_HUAWEI;
    else if (strcasestr(m->status.manufacturer, "simcom"))
      m->vendor = VENDOR_SIMCOM;
    init_goto(m, m->vendor == VENDOR_QUECTEL || m->vendor == VENDOR_HUAWEI ? STEP_VENDOR
                                                                            : STEP_CGMM);
    return;
  case STEP_VENDOR:
    if (r->status != SMS_AT_RESULT_OK) /* older firmware: harmless */
      GW_DEBUG(MOD, "vendor setting refused: %s", result_text(r, rt, sizeof(rt)));
    init_goto(m, STEP_CGMM);
    return;
  case STEP_CGMM:
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, m->status.model, sizeof(m->status.model));
    init_goto(m, STEP_CGMR);
    return;
  case STEP_CGMR:
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, m->status.revision, sizeof(m->status.revision));
    init_goto(m, STEP_CGSN);
    return;
  case STEP_CGSN:
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, m->status.imei, sizeof(m->status.imei));
    init_goto(m, STEP_CIMI);
    return;
  case STEP_CIMI:
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, m->status.imsi, sizeof(m->status.imsi));
    init_goto(m, STEP_ICCID);
    return;
  case STEP_ICCID: {
    char v[64] = "";
    if (r->status == SMS_AT_RESULT_OK)
      identity_value(r, v, sizeof(v));
    /* ICCIDs are digits; some modems pad with 'F'. */
    size_t n = 0;
    while (v[n] && isdigit((unsigned char)v[n]) && n + 1 < sizeof(m->status.iccid))
      n++;
    if (n >= 10) {
      memcpy(m->status.iccid, v, n);
      m->status.iccid[n] = '\0';
    } else if (++m->iccid_choice < (int)(sizeof(iccid_chain) / sizeof(iccid_chain[0]))) {
      init_goto(m, STEP_ICCID);
      return;
    }
    init_ready(m);
    return;
  }
  }
}

static void init_ready(sms_modem_t *m) {
  m->backoff_ms = BACKOFF_MIN_MS;
  m->status.last_error[0] = '\0';
  GW_NOTICE(MOD, "%s ready: %s %s, IMEI %s, storage %s, SMSC %s%s", m->port,
            m->status.manufacturer[0] ? m->status.manufacturer : "?",
            m->status.model[0] ? m->status.model : "?", m->status.imei[0] ? m->status.imei : "?",
            m->status.storage[0] ? m->status.storage : "?",
            m->status.smsc[0] ? m->status.smsc : "?",
            m->status.cnmi[0] ? "" : ", no +CMTI (sweep only)");
  set_state(m, SMS_MODEM_READY);
  if (m->status.state != SMS_MODEM_READY)
    return; /* the owner's on_state did something drastic */
  m->sweep_wanted = true;
  m->health_wanted = true;
  gw_timer_start(m->loop, &m->sweep_timer, m->conf.sweep_interval_ms);
  gw_timer_start(m->loop, &m->health_timer, m->conf.health_interval_ms);
  pump(m);
}

/* ---- the send queue ---- */

static send_item_t *send_at(sms_modem_t *m, size_t i) {
  return &m->sends[(m->send_head + i) % SMS_MODEM_SEND_QUEUE_MAX];
}

static void send_push_front(sms_modem_t *m, send_item_t item) {
  if (m->send_count == SMS_MODEM_SEND_QUEUE_MAX) { /* cannot happen: the item came from it */
    free(item.hex);
    return;
  }
  m->send_head = (m->send_head + SMS_MODEM_SEND_QUEUE_MAX - 1) % SMS_MODEM_SEND_QUEUE_MAX;
  m->sends[m->send_head] = item;
  m->send_count++;
}

static send_item_t send_pop_front(sms_modem_t *m) {
  send_item_t item = m->sends[m->send_head];
  m->send_head = (m->send_head + 1) % SMS_MODEM_SEND_QUEUE_MAX;
  m->send_count--;
  return item;
}

static void fail_all_sends(sms_modem_t *m) {
  while (m->send_count > 0) {
    send_item_t item = send_pop_front(m);
    free(item.hex);
    m->status.send_failures++;
    if (m->cb.on_sent && !m->freeing)
      m->cb.on_sent(m->cb.arg, item.id, false, -1);
  }
}

/* 27.005 3.2.5 and 24.011 E.2: errors worth another attempt. */
static bool send_error_transient(const sms_at_result_t *r) {
  switch (r->status) {
  case SMS_AT_RESULT_ERROR:
  case SMS_AT_RESULT_TIMEOUT: return true;
  case SMS_AT_RESULT_CME_ERROR:
    return r->code == 14 || r->code == 30 || r->code == 31 || r->code == 100 || r->code < 0;
  case SMS_AT_RESULT_CMS_ERROR:
    switch (r->code) {
    case 27: /* destination out of service */
    case 38: /* network out of order */
    case 41: /* temporary failure */
    case 42: /* congestion */
    case 47: /* resources unavailable */
    case 111: /* protocol error */
    case 300: /* ME failure */
    case 314: /* SIM busy */
    case 331: /* no network service */
    case 332: /* network timeout */
    case 500: /* unknown error */
      return true;
    default: return r->code >= 512 || r->code < 0; /* manufacturer specific, often the network */
    }
  default: return false;
  }
}

/* ---- jobs ---- */

static void job_finish(sms_modem_t *m) {
  job_clear(m);
  if (m->reinit_pending && m->serial) {
    init_start(m);
    return;
  }
  pump(m);
}

static void job_submit(sms_modem_t *m, const char *text, const char *expect, uint32_t timeout_ms,
                       const char *payload) {
  submit(m, job_done, text, expect, timeout_ms, payload, false);
}

static void read_step(sms_modem_t *m) {
  job_t *j = &m->job;
  char cmd[64];
  switch (j->step) {
  case 0:
    if (j->switched) {
      snprintf(cmd, sizeof(cmd), "AT+CPMS=\"%s\"", j->read.mem);
      job_submit(m, cmd, "+CPMS:", 0, NULL);
      return;
    }
    j->step = 1;
    /* fall through */
  case 1:
    snprintf(cmd, sizeof(cmd), "AT+CMGR=%d", j->read.index);
    job_submit(m, cmd, "+CMGR:", 0, NULL);
    return;
  case 2:
    snprintf(cmd, sizeof(cmd), "AT+CMGD=%d", j->read.index);
    job_submit(m, cmd, NULL, 0, NULL);
    return;
  case 3:
    if (j->switched) {
      snprintf(cmd, sizeof(cmd), "AT+CPMS=\"%s\"", m->read_mem);
      job_submit(m, cmd, "+CPMS:", 0, NULL);
      return;
    }
    job_finish(m);
    return;
  default: job_finish(m); return;
  }
}

/* Hands one stored PDU line to the owner. Returns false when the line is not a PDU. */
static bool deliver_pdu_line(sms_modem_t *m, int index, const char *hex) {
  uint8_t pdu[SMS_MODEM_PDU_MAX + 16];
  size_t len = 0;
  size_t hex_len = hex ? strlen(hex) : 0;
  if (!hex || gw_hex_decode(hex, hex_len, pdu, sizeof(pdu), &len) != GW_OK || len < 2) {
    m->status.rejected++;
    GW_WARN(MOD, "message %d is not a hex PDU (\"%.40s\"): deleting it unread", index,
            hex ? hex : "");
    return false;
  }
  m->status.received++;
  if (m->cb.on_pdu)
    m->cb.on_pdu(m->cb.arg, pdu, len);
  return true;
}

/* "+CMGL: <index>,<stat>,[<alpha>],<length>" or "+CMGR: <stat>,[<alpha>],<length>" */
static bool parse_msg_header(const char *params, bool with_index, int *out_index, int *out_stat) {
  char buf[256];
  const char *f[8];
  bool quoted[8];
  int n = sms_at_split_fields(params, buf, sizeof(buf), f, quoted, 8);
  int i = 0;
  if (with_index) {
    if (n < 1 || !sms_at_parse_int(f[0], out_index))
      return false;
    i = 1;
  }
  if (n <= i)
    return false;
  if (!sms_at_parse_int(f[i], out_stat)) { /* text-mode words, should a modem slip back */
    if (strcasecmp(f[i], "REC UNREAD") == 0)
      *out_stat = 0;
    else if (strcasecmp(f[i], "REC READ") == 0)
      *out_stat = 1;
    else
      *out_stat = 2;
  }
  return true;
}

static void read_done(sms_modem_t *m, const sms_at_result_t *r) {
  job_t *j = &m->job;
  char rt[96];
  switch (j->step) {
  case 0: /* storage switched? */
    if (r->status != SMS_AT_RESULT_OK) {
      GW_WARN(MOD, "cannot switch to storage \"%s\" to read message %d (%s)", j->read.mem,
              j->read.index, result_text(r, rt, sizeof(rt)));
      j->switched = false;
      j->step = 3;
    } else {
      j->step = 1;
    }
    break;
  case 1: { /* AT+CMGR */
    j->step = 3;
    if (r->status != SMS_AT_RESULT_OK) {
      if (r->status == SMS_AT_RESULT_CMS_ERROR && r->code == 321)
        GW_DEBUG(MOD, "message %d is gone already", j->read.index);
      else
        GW_WARN(MOD, "AT+CMGR=%d: %s; the sweep tries again", j->read.index,
                result_text(r, rt, sizeof(rt)));
      break;
    }
    for (size_t i = 0; i < r->line_count; i++) {
      const char *p = sms_at_after_prefix(r->lines[i], "+CMGR:");
      int stat = 0, unused = 0;
      if (!p || !parse_msg_header(p, false, &unused, &stat))
        continue;
      if (stat >= 2) { /* a stored outgoing message: not ours to read or delete */
        GW_DEBUG(MOD, "message %d is an outgoing one (stat %d): left alone", j->read.index, stat);
        break;
      }
      const char *pdu = i + 1 < r->line_count ? r->lines[i + 1] : NULL;
      deliver_pdu_line(m, j->read.index, pdu);
      j->step = 2; /* delete, whether it was handled or unreadable */
      break;
    }
    break;
  }
  case 2: /* AT+CMGD */
    if (r->status == SMS_AT_RESULT_OK)
      m->status.deleted++;
    else
      GW_WARN(MOD, "AT+CMGD=%d: %s", j->read.index, result_text(r, rt, sizeof(rt)));
    j->step = 3;
    break;
  case 3: /* switched back */
    if (r->status != SMS_AT_RESULT_OK)
      GW_WARN(MOD, "cannot switch back to storage \"%s\" (%s)", m->read_mem,
              result_text(r, rt, sizeof(rt)));
    j->switched = false;
    break;
  }
  read_step(m);
}

/* A sweep lists one memory and deletes what it handed over. The SIM sweep first points <mem1>
 * at "SM" and points it back at the end (steps -1 and 2). */
static void sweep_step(sms_modem_t *m) {
  job_t *j = &m->job;
  char cmd[32];
  if (j->step == -1) {
    job_submit(m, "AT+CPMS=\"SM\"", "+CPMS:", 0, NULL);
    return;
  }
  if (j->step == 0) {
    uint32_t t = m->conf.command_timeout_ms > CMGL_TIMEOUT_MS ? m->conf.command_timeout_ms
                                                              : CMGL_TIMEOUT_MS;
    job_submit(m, "AT+CMGL=4", "+CMGL:", t, NULL);
    return;
  }
  if (j->delete_next < j->delete_count) {
    snprintf(cmd, sizeof(cmd), "AT+CMGD=%d", j->deletes[j->delete_next]);
    job_submit(m, cmd, NULL, 0, NULL);
    return;
  }
  if (j->delete_count > 0 && m->status.storage_full) {
    m->status.storage_full = false;
    m->health_wanted = true; /* learn the new fill level */
  }
  if (j->switched && j->step != 2) {
    j->step = 2;
    snprintf(cmd, sizeof(cmd), "AT+CPMS=\"%s\"", m->read_mem);
    job_submit(m, cmd, "+CPMS:", 0, NULL);
    return;
  }
  job_finish(m);
}

static void sweep_done(sms_modem_t *m, const sms_at_result_t *r) {
  job_t *j = &m->job;
  char rt[96];
  if (j->step == -1) {
    if (r->status != SMS_AT_RESULT_OK) {
      GW_DEBUG(MOD, "no SIM storage to sweep: %s", result_text(r, rt, sizeof(rt)));
      job_finish(m);
      return;
    }
    j->step = 0;
    sweep_step(m);
    return;
  }
  if (j->step == 2) {
    if (r->status != SMS_AT_RESULT_OK)
      GW_WARN(MOD, "AT+CPMS=\"%s\" after the SIM sweep: %s", m->read_mem,
              result_text(r, rt, sizeof(rt)));
    job_finish(m);
    return;
  }
  if (j->step == 0) {
    j->step = 1;
    if (r->status != SMS_AT_RESULT_OK) {
      if (!(r->status == SMS_AT_RESULT_CMS_ERROR && r->code == 321))
        GW_WARN(MOD, "AT+CMGL=4: %s", result_text(r, rt, sizeof(rt)));
      sweep_step(m); /* nothing to delete; a SIM sweep still points <mem1> back */
      return;
    }
    j->deletes = calloc(r->line_count ? r->line_count : 1, sizeof(int));
    if (!j->deletes) {
      sweep_step(m);
      return;
    }
    int outgoing = 0;
    for (size_t i = 0; i < r->line_count; i++) {
      const char *p = sms_at_after_prefix(r->lines[i], "+CMGL:");
      int index = 0, stat = 0;
      if (!p || !parse_msg_header(p, true, &index, &stat))
        continue;
      if (stat >= 2) {
        outgoing++;
        continue;
      }
      const char *pdu = i + 1 < r->line_count && !sms_at_after_prefix(r->lines[i + 1], "+CMGL:")
                            ? r->lines[i + 1]
                            : NULL;
      deliver_pdu_line(m, index, pdu);
      j->deletes[j->delete_count++] = index;
      if (m->freeing || m->status.state != SMS_MODEM_READY)
        break;
    }
    if (outgoing)
      GW_DEBUG(MOD, "sweep: %d stored outgoing messages left alone", outgoing);
    if (j->delete_count)
      GW_DEBUG(MOD, "sweep: %d messages handed over", j->delete_count);
  } else {
    int index = j->deletes[j->delete_next++];
    if (r->status == SMS_AT_RESULT_OK)
      m->status.deleted++;
    else
      GW_WARN(MOD, "AT+CMGD=%d: %s", index, result_text(r, rt, sizeof(rt)));
  }
  sweep_step(m);
}

static void send_done(sms_modem_t *m, const sms_at_result_t *r) {
  send_item_t item = m->job.send;
  m->job.send.hex = NULL;
  m->next_send_ms = gw_now_ms() + m->conf.send_interval_ms;
  char rt[96];
  if (r->status == SMS_AT_RESULT_OK) {
    int mr = -1;
    const char *p = reply_params(r, "+CMGS:");
    char buf[32];
    const char *f[2];
    if (p && sms_at_split_fields(p, buf, sizeof(buf), f, NULL, 2) >= 1)
      sms_at_parse_int(f[0], &mr);
    m->status.sent++;
    GW_DEBUG(MOD, "SMS %u sent, message reference %d", item.id, mr);
    free(item.hex);
    if (m->cb.on_sent)
      m->cb.on_sent(m->cb.arg, item.id, true, mr);
    job_finish(m);
    return;
  }
  if (r->status == SMS_AT_RESULT_CMS_ERROR && r->code == 322)
    m->status.storage_full = true;
  item.attempts++;
  if (send_error_transient(r) && item.attempts < SEND_ATTEMPTS) {
    GW_WARN(MOD, "SMS %u: %s, trying again (attempt %d of %d)", item.id,
            result_text(r, rt, sizeof(rt)), item.attempts + 1, SEND_ATTEMPTS);
    send_push_front(m, item);
    job_finish(m);
    return;
  }
  m->status.send_failures++;
  set_error(m, "sending SMS %u: %s", item.id, result_text(r, rt, sizeof(rt)));
  GW_WARN(MOD, "%s", m->status.last_error);
  free(item.hex);
  if (m->cb.on_sent)
    m->cb.on_sent(m->cb.arg, item.id, false, -1);
  job_finish(m);
}

static void health_step(sms_modem_t *m) {
  static const char *const cmds[][2] = {
      {"AT+CSQ", "+CSQ:"}, {"AT+CREG?", "+CREG:"}, {"AT+CEREG?", "+CEREG:"}, {"AT+CPMS?", "+CPMS:"}};
  if (m->job.step < 4) {
    job_submit(m, cmds[m->job.step][0], cmds[m->job.step][1], 0, NULL);
    return;
  }
  job_finish(m);
}

static void update_reg(int *slot, const char *what, int stat) {
  if (stat < 0 || *slot == stat)
    return;
  static const char *const names[] = {"not registered", "registered, home", "searching",
                                      "registration denied", "unknown", "registered, roaming"};
  GW_INFO(MOD, "%s: %s (%d)", what, stat >= 0 && stat <= 5 ? names[stat] : "other", stat);
  *slot = stat;
}

static void health_done(sms_modem_t *m, const sms_at_result_t *r) {
  const char *p;
  char buf[64];
  const char *f[4];
  if (r->status == SMS_AT_RESULT_OK) {
    switch (m->job.step) {
    case 0:
      if ((p = reply_params(r, "+CSQ:")) &&
          sms_at_split_fields(p, buf, sizeof(buf), f, NULL, 4) >= 1) {
        int rssi;
        if (sms_at_parse_int(f[0], &rssi))
          m->status.rssi = rssi;
      }
      break;
    case 1:
      if ((p = reply_params(r, "+CREG:")))
        update_reg(&m->status.creg, "CS registration", sms_at_parse_reg_stat(p));
      break;
    case 2:
      if ((p = reply_params(r, "+CEREG:")))
        update_reg(&m->status.cereg, "EPS registration", sms_at_parse_reg_stat(p));
      break;
    case 3:
      if ((p = reply_params(r, "+CPMS:")))
        parse_cpms_reply(m, p);
      break;
    }
  }
  m->job.step++;
  health_step(m);
}

static void job_done(void *arg, const sms_at_result_t *r) {
  sms_modem_t *m = arg;
  if (r->status == SMS_AT_RESULT_CLOSED) {
    /* The port went away: a send in flight goes back to the head of the queue. An attempt
     * counts only when the PDU went out (it may have reached the network). */
    if (m->job.kind == JOB_SEND && m->job.send.hex && !m->freeing) {
      send_item_t item = m->job.send;
      m->job.send.hex = NULL;
      if (r->payload_sent)
        item.attempts++;
      if (item.attempts < SEND_ATTEMPTS) {
        send_push_front(m, item);
      } else {
        free(item.hex);
        m->status.send_failures++;
        if (m->cb.on_sent)
          m->cb.on_sent(m->cb.arg, item.id, false, -1);
      }
    }
    return;
  }
  if (m->freeing)
    return;
  if (r->status == SMS_AT_RESULT_TIMEOUT) {
    m->status.at_timeouts++;
    /* A modem whose firmware hangs keeps its USB device: only a reopen (and the AT probing of
     * the initialisation) gets it back. */
    if (++m->timeouts_in_a_row >= TIMEOUTS_BEFORE_REOPEN) {
      schedule_close(m, SMS_MODEM_CLOSED, "the modem stopped answering (%d commands timed out)",
                     m->timeouts_in_a_row);
      m->timeouts_in_a_row = 0;
    }
  } else {
    m->timeouts_in_a_row = 0;
  }
  if (r->status == SMS_AT_RESULT_CMS_ERROR && r->code == 322 && !m->status.storage_full) {
    m->status.storage_full = true;
    set_error(m, "message storage full (+CMS ERROR: 322)");
    m->sweep_wanted = true;
  }
  switch (m->job.kind) {
  case JOB_READ: read_done(m, r); return;
  case JOB_SWEEP: sweep_done(m, r); return;
  case JOB_SEND: send_done(m, r); return;
  case JOB_HEALTH: health_done(m, r); return;
  case JOB_CNMA:
    if (r->status != SMS_AT_RESULT_OK)
      GW_DEBUG(MOD, "AT+CNMA: %s", sms_at_status_name(r->status));
    job_finish(m);
    return;
  case JOB_NONE: return;
  }
}

static void send_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  pump(arg);
}

static void pump(sms_modem_t *m) {
  if (m->status.state != SMS_MODEM_READY || m->job.kind != JOB_NONE || m->close_pending ||
      !m->serial)
    return;
  job_t *j = &m->job;
  uint64_t now = gw_now_ms();
  if (m->cnma_wanted > 0) {
    m->cnma_wanted--;
    j->kind = JOB_CNMA;
    job_submit(m, "AT+CNMA", NULL, 0, NULL);
    return;
  }
  if (m->read_count > 0) {
    j->kind = JOB_READ;
    j->read = m->reads[0];
    memmove(m->reads, m->reads + 1, (size_t)(m->read_count - 1) * sizeof(m->reads[0]));
    m->read_count--;
    j->switched = m->read_mem[0] && j->read.mem[0] && strcasecmp(j->read.mem, m->read_mem) != 0;
    read_step(m);
    return;
  }
  if (m->send_count > 0 && now >= m->next_send_ms) {
    j->kind = JOB_SEND;
    j->send = send_pop_front(m);
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "AT+CMGS=%zu", j->send.tpdu_len);
    job_submit(m, cmd, "+CMGS:", CMGS_TIMEOUT_MS, j->send.hex);
    return;
  }
  if (m->sweep_wanted) {
    m->sweep_wanted = false;
    m->sim_sweep_wanted = strcasecmp(m->read_mem, "SM") != 0;
    j->kind = JOB_SWEEP;
    sweep_step(m);
    return;
  }
  if (m->sim_sweep_wanted) {
    m->sim_sweep_wanted = false;
    j->kind = JOB_SWEEP;
    j->switched = true;
    j->step = -1;
    sweep_step(m);
    return;
  }
  if (m->health_wanted) {
    m->health_wanted = false;
    j->kind = JOB_HEALTH;
    health_step(m);
    return;
  }
  if (m->send_count > 0 && !gw_timer_active(&m->send_timer))
    gw_timer_start(m->loop, &m->send_timer, m->next_send_ms - now);
}

static void sweep_timer_fired(gw_loop_t *loop, void *arg) {
  sms_modem_t *m = arg;
  m->sweep_wanted = true;
  gw_timer_start(loop, &m->sweep_timer, m->conf.sweep_interval_ms);
  pump(m);
}

static void health_timer_fired(gw_loop_t *loop, void *arg) {
  sms_modem_t *m = arg;
  m->health_wanted = true;
  gw_timer_start(loop, &m->health_timer, m->conf.health_interval_ms);
  pump(m);
}

/* ---- unsolicited result codes ---- */

static void request_reinit(sms_modem_t *m, const char *why) {
  if (m->status.state != SMS_MODEM_READY)
    return;
  GW_NOTICE(MOD, "%s: initialising the modem again", why);
  stop_work_timers(m);
  m->status.state = SMS_MODEM_INITIALISING;
  if (m->cb.on_state)
    m->cb.on_state(m->cb.arg, SMS_MODEM_INITIALISING);
  if (m->job.kind == JOB_NONE)
    init_start(m);
  else
    m->reinit_pending = true; /* after the job in flight */
}

static void urc_cmti(sms_modem_t *m, const char *line) {
  const char *p = sms_at_after_prefix(line, "+CMTI:");
  char buf[64];
  const char *f[3];
  int index;
  if (!p || sms_at_split_fields(p, buf, sizeof(buf), f, NULL, 3) < 2 ||
      !sms_at_parse_int(f[1], &index)) {
    GW_WARN(MOD, "malformed +CMTI ignored (the sweep will find the message): %.60s", line);
    return;
  }
  if (m->read_mem[0] && strcasecmp(f[0], m->read_mem) != 0 && !m->foreign_mem_logged) {
    m->foreign_mem_logged = true;
    GW_NOTICE(MOD, "+CMTI names storage \"%s\" while the driver reads \"%s\": switching storage "
                   "for each such message (logged once)",
              f[0], m->read_mem);
  }
  for (int i = 0; i < m->read_count; i++)
    if (m->reads[i].index == index && strcasecmp(m->reads[i].mem, f[0]) == 0)
      return;
  if (m->read_count == READS_MAX) {
    m->sweep_wanted = true; /* too many at once: the sweep collects the rest */
    return;
  }
  read_req_t *rq = &m->reads[m->read_count++];
  snprintf(rq->mem, sizeof(rq->mem), "%s", f[0]);
  rq->index = index;
  pump(m);
}

static void urc_cmt(sms_modem_t *m, const sms_at_urc_t *urc) {
  /* 27.005 3.4.1: +CMT with <mt>=2 delivers without storing; acknowledge with AT+CNMA. */
  uint8_t pdu[SMS_MODEM_PDU_MAX + 16];
  size_t len = 0;
  if (urc->pdu_line &&
      gw_hex_decode(urc->pdu_line, strlen(urc->pdu_line), pdu, sizeof(pdu), &len) == GW_OK &&
      len >= 2) {
    m->status.received++;
    if (m->cb.on_pdu)
      m->cb.on_pdu(m->cb.arg, pdu, len);
  } else {
    m->status.rejected++;
    GW_WARN(MOD, "+CMT without a hex PDU line: acknowledged and dropped");
  }
  m->cnma_wanted++;
  pump(m);
}

static void on_urc(void *arg, const sms_at_urc_t *urc) {
  sms_modem_t *m = arg;
  if (m->freeing)
    return;
  const char *p;
  switch (urc->kind) {
  case SMS_AT_URC_CMTI: urc_cmti(m, urc->line); return;
  case SMS_AT_URC_CMT: urc_cmt(m, urc); return;
  case SMS_AT_URC_CDS:
  case SMS_AT_URC_CDSI:
  case SMS_AT_URC_CBM:
    GW_DEBUG(MOD, "%s ignored (status reports and cell broadcasts are not used)",
             sms_at_urc_name(urc->kind));
    return;
  case SMS_AT_URC_CREG:
  case SMS_AT_URC_CEREG:
  case SMS_AT_URC_CGREG:
    if (urc->kind == SMS_AT_URC_CREG && (p = sms_at_after_prefix(urc->line, "+CREG:")))
      update_reg(&m->status.creg, "CS registration", sms_at_parse_reg_stat(p));
    else if (urc->kind == SMS_AT_URC_CEREG && (p = sms_at_after_prefix(urc->line, "+CEREG:")))
      update_reg(&m->status.cereg, "EPS registration", sms_at_parse_reg_stat(p));
    return;
  case SMS_AT_URC_CPIN:
    p = sms_at_after_prefix(urc->line, "+CPIN:");
    if (p && strcasecmp(p, "READY") != 0)
      request_reinit(m, "the SIM state changed");
    return;
  case SMS_AT_URC_BOOT: request_reinit(m, "the modem restarted"); return;
  case SMS_AT_URC_SMSFULL:
    if (!m->status.storage_full)
      GW_WARN(MOD, "the modem says its message storage is full (%s): draining it", urc->line);
    m->status.storage_full = true;
    set_error(m, "message storage full");
    m->sweep_wanted = true;
    pump(m);
    return;
  case SMS_AT_URC_RING: GW_DEBUG(MOD, "incoming call ignored"); return;
  default: GW_DEBUG(MOD, "unsolicited: %s", urc->line); return;
  }
}

/* ---- public ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int sms_modem_new(gw_loop_t *loop, const sms_modem_conf_t *conf,
                  const sms_modem_callbacks_t *callbacks, sms_modem_t **out_modem) {
  if (!loop || !conf || !conf->port || !*conf->port || !out_modem)
    return GW_ERR_INVAL;
  if (conf->pin && (strlen(conf->pin) > 16 || strpbrk(conf->pin, "\"\r\n")))
    return GW_ERR_INVAL;
  if (conf->smsc && (strlen(conf->smsc) > 24 || strpbrk(conf->smsc, "\"\r\n")))
    return GW_ERR_INVAL;
  if (conf->storage && (strlen(conf->storage) > 4 || strpbrk(conf->storage, "\"\r\n")))
    return GW_ERR_INVAL;
  sms_modem_t *m = calloc(1, sizeof(*m));
  if (!m)
    return GW_ERR_NOMEM;
  m->loop = loop;
  m->conf = *conf;
  m->port = strdup(conf->port);
  m->pin = dup_or_null(conf->pin && *conf->pin ? conf->pin : NULL);
  m->smsc = dup_or_null(conf->smsc && *conf->smsc ? conf->smsc : NULL);
  m->storage = strdup(conf->storage && *conf->storage ? conf->storage : "ME");
  m->sends = calloc(SMS_MODEM_SEND_QUEUE_MAX, sizeof(*m->sends));
  if (!m->port || (conf->pin && *conf->pin && !m->pin) || (conf->smsc && *conf->smsc && !m->smsc) ||
      !m->storage || !m->sends) {
    sms_modem_free(&m);
    return GW_ERR_NOMEM;
  }
  m->conf.port = m->port;
  m->conf.pin = m->pin;
  m->conf.smsc = m->smsc;
  m->conf.storage = m->storage;
  if (!m->conf.baud)
    m->conf.baud = 115200;
  if (!m->conf.sweep_interval_ms)
    m->conf.sweep_interval_ms = 30000;
  if (!m->conf.health_interval_ms)
    m->conf.health_interval_ms = 60000;
  if (!m->conf.command_timeout_ms)
    m->conf.command_timeout_ms = 5000;
  /* send_interval_ms 0 is a valid choice: no pacing. The configuration defaults it to 200. */
  if (callbacks)
    m->cb = *callbacks;
  m->fd = -1;
  m->backoff_ms = BACKOFF_MIN_MS;
  m->next_send_id = 1;
  m->status.state = SMS_MODEM_CLOSED;
  m->status.rssi = 99;
  m->status.creg = m->status.cereg = -1;
  gw_timer_init(&m->reopen_timer, reopen_timer_fired, m);
  gw_timer_init(&m->step_timer, step_timer_fired, m);
  gw_timer_init(&m->sweep_timer, sweep_timer_fired, m);
  gw_timer_init(&m->health_timer, health_timer_fired, m);
  gw_timer_init(&m->send_timer, send_timer_fired, m);
  gw_timer_init(&m->close_timer, close_timer_fired, m);
  sms_at_io_t io = {.arg = m, .write = port_write, .want_write = port_want_write, .on_urc = on_urc};
  int rc = sms_at_engine_new(loop, &io, m->conf.command_timeout_ms, &m->at);
  if (rc != GW_OK) {
    sms_modem_free(&m);
    return rc;
  }
  *out_modem = m;
  return GW_OK;
}

int sms_modem_start(sms_modem_t *m) {
  if (!m || m->started)
    return GW_ERR_INVAL;
  m->started = true;
  port_open(m);
  return GW_OK;
}

int sms_modem_send(sms_modem_t *m, const uint8_t *pdu, size_t len, size_t tpdu_len,
                   uint32_t *out_send_id) {
  if (!m || !pdu || len < 2 || tpdu_len == 0)
    return GW_ERR_INVAL;
  if (len > SMS_MODEM_PDU_MAX)
    return GW_ERR_TOOBIG;
  /* 27.005 3.5.1: <length> counts the TPDU only; the SMSC part is its length octet and that
   * many octets. */
  if ((size_t)pdu[0] + 1 + tpdu_len != len)
    return GW_ERR_INVAL;
  if (m->status.state == SMS_MODEM_FAILED)
    return GW_ERR_IO;
  if (m->send_count == SMS_MODEM_SEND_QUEUE_MAX)
    return GW_ERR_FULL;
  char *hex = malloc(2 * len + 1);
  if (!hex)
    return GW_ERR_NOMEM;
  gw_hex_encode(pdu, len, hex, 2 * len + 1);
  send_item_t item = {.id = m->next_send_id++, .hex = hex, .tpdu_len = tpdu_len};
  if (m->next_send_id == 0)
    m->next_send_id = 1;
  *send_at(m, m->send_count) = item;
  m->send_count++;
  if (out_send_id)
    *out_send_id = item.id;
  pump(m);
  return GW_OK;
}

size_t sms_modem_send_queue_length(const sms_modem_t *m) {
  return m->send_count + (m->job.kind == JOB_SEND ? 1 : 0);
}

int sms_modem_sweep(sms_modem_t *m) {
  if (!m)
    return GW_ERR_INVAL;
  if (m->status.state == SMS_MODEM_FAILED)
    return GW_ERR_IO;
  m->sweep_wanted = true;
  pump(m);
  return GW_OK;
}

const sms_modem_status_t *sms_modem_status(const sms_modem_t *m) { return &m->status; }

void sms_modem_free(sms_modem_t **modem) {
  sms_modem_t *m = *modem;
  if (!m)
    return;
  m->freeing = true;
  gw_timer_stop(m->loop, &m->reopen_timer);
  gw_timer_stop(m->loop, &m->close_timer);
  stop_work_timers(m);
  if (m->serial) {
    gw_loop_del_fd(m->loop, m->fd);
    sms_serial_close(&m->serial);
  }
  sms_at_engine_free(&m->at);
  free(m->job.send.hex);
  job_clear(m);
  while (m->sends && m->send_count > 0) {
    send_item_t item = send_pop_front(m);
    free(item.hex);
  }
  free(m->sends);
  if (m->pin)
    explicit_bzero(m->pin, strlen(m->pin));
  free(m->pin);
  free(m->port);
  free(m->smsc);
  free(m->storage);
  free(m);
  *modem = NULL;
}
