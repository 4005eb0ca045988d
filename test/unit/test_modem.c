/* Unit tests of the modem driver (sms/modem.c over serial.c and at.c) against a scripted fake
 * modem on a pseudo-terminal pair opened here with openpty(): the driver opens the slave
 * through a symlink (as it would a /dev/serial/by-id link), the fake reads commands from the
 * master in the same event loop and answers like a modem whose behaviour each test sets.
 *
 * This is a unit-level check of the driver's sequences and ordering; the end-to-end test with
 * the virtual modem (scripts/vmodem) plays real PDUs through the whole gateway. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "at.h"
#include "gw_text.h"
#include "gw_error.h"
#include "gw_log.h"
#include "loop.h"
#include "modem.h"
#include "modem_probe.h"

#define DEADLINE_MS 20000

#define PDU1 "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
#define PDU2 "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B"
#define PDU3 "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD08"
/* SMS-SUBMIT to +15125551234, "Hello", default SMSC (00). */
#define SUBMIT "0011000B915121551532F40000AA0548656C6C6F"
#define SUBMIT_TPDU_LEN 19

/* ---- a timeline shared by the fake modem and the driver's callbacks ---- */

static char timeline[1024][128];
static int timeline_len;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  if (timeline_len == 1024)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(timeline[timeline_len++], sizeof(timeline[0]), fmt, ap);
  va_end(ap);
}

/* Index of the first entry equal to s at or after from, -1 when none. */
static int find_event(const char *s, int from) {
  for (int i = from; i < timeline_len; i++)
    if (strcmp(timeline[i], s) == 0)
      return i;
  return -1;
}

static int count_events(const char *s) {
  int n = 0;
  for (int i = 0; i < timeline_len; i++)
    n += strcmp(timeline[i], s) == 0;
  return n;
}

static int count_prefix(const char *prefix) {
  int n = 0;
  for (int i = 0; i < timeline_len; i++)
    n += strncmp(timeline[i], prefix, strlen(prefix)) == 0;
  return n;
}

/* ---- the fake modem ---- */

enum { MEM_SM, MEM_ME, MEM_COUNT };
#define SLOTS 32

typedef struct {
  gw_loop_t *loop;
  int master, slave;
  char in[4096];
  size_t in_len;
  bool in_prompt;
  char pdu_hex[1024];
  size_t pdu_len;
  bool echo;
  /* behaviour */
  int mute_ats;             /* leave the first n "AT" unanswered (booting) */
  bool hung;                /* answer nothing at all (firmware hang) */
  const char *sim_pin;      /* NULL: the SIM is ready */
  bool sim_puk;             /* the SIM is blocked */
  bool pin_entered;
  int busy_after_pin;       /* answer AT+CPIN? with +CME ERROR: 14 this many times */
  bool me_refused;          /* AT+CPMS="ME",... fails */
  const char *cnmi_accepted[4]; /* NULL-terminated; empty: all accepted */
  bool cnmi_restrict;
  const char *manufacturer;
  const char *prompt;       /* "> " or ">" */
  int cms_on_send;          /* 0: success, else this +CMS ERROR */
  int mr;
  char *store[MEM_COUNT][SLOTS];
  int mem1;                 /* read memory */
  char last_submit[1024];
  int cmgs_len;
} fake_modem_t;

static void fm_write(fake_modem_t *fm, const char *s) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    ssize_t n = write(fm->master, s + off, len - off);
    if (n < 0 && errno == EAGAIN) {
      usleep(1000);
      continue;
    }
    if (n <= 0)
      return;
    off += (size_t)n;
  }
}

static void fm_reply(fake_modem_t *fm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fm_reply(fake_modem_t *fm, const char *fmt, ...) {
  char line[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fm_write(fm, "\r\n");
  fm_write(fm, line);
  fm_write(fm, "\r\n");
}

static void fm_ok(fake_modem_t *fm) { fm_reply(fm, "OK"); }

static int mem_index(const char *name) {
  return strncmp(name, "ME", 2) == 0 ? MEM_ME : MEM_SM;
}

static int tpdu_len(const char *hex) {
  unsigned smsc = 0;
  sscanf(hex, "%2x", &smsc);
  return (int)(strlen(hex) / 2 - smsc - 1);
}

static void fm_store(fake_modem_t *fm, int mem, int index, const char *hex) {
  free(fm->store[mem][index]);
  fm->store[mem][index] = strdup(hex);
}

static int fm_stored_count(const fake_modem_t *fm, int mem) {
  int n = 0;
  for (int i = 0; i < SLOTS; i++)
    n += fm->store[mem][i] != NULL;
  return n;
}

static bool fm_has(const fake_modem_t *fm, const char *hex) {
  for (int m = 0; m < MEM_COUNT; m++)
    for (int i = 0; i < SLOTS; i++)
      if (fm->store[m][i] && strcmp(fm->store[m][i], hex) == 0)
        return true;
  return false;
}

static void fm_cpms_reply(fake_modem_t *fm) {
  int n = fm_stored_count(fm, fm->mem1);
  fm_reply(fm, "+CPMS: %d,%d,%d,%d,%d,%d", n, SLOTS, n, SLOTS, n, SLOTS);
}

static void fm_command(fake_modem_t *fm, const char *cmd) {
  note("cmd:%s", cmd);
  if (fm->echo) {
    fm_write(fm, cmd);
    fm_write(fm, "\r");
  }
  int a = 0;
  char s[64];
  if (fm->hung)
    return;
  if (strcmp(cmd, "AT") == 0) {
    if (fm->mute_ats > 0) {
      fm->mute_ats--;
      return;
    }
    fm_ok(fm);
  } else if (strcmp(cmd, "ATE0") == 0) {
    fm->echo = false;
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CMEE=1") == 0 || strcmp(cmd, "AT+CMGF=0") == 0 ||
             strncmp(cmd, "AT+CSCA=", 8) == 0 || strncmp(cmd, "AT+QURCCFG=", 11) == 0 ||
             strcmp(cmd, "AT+CNMA") == 0) {
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CPIN?") == 0) {
    if (fm->sim_puk) {
      fm_reply(fm, "+CPIN: SIM PUK");
      fm_ok(fm);
    } else if (fm->sim_pin && !fm->pin_entered) {
      fm_reply(fm, "+CPIN: SIM PIN");
      fm_ok(fm);
    } else if (fm->busy_after_pin > 0) {
      fm->busy_after_pin--;
      fm_reply(fm, "+CME ERROR: 14");
    } else {
      fm_reply(fm, "+CPIN: READY");
      fm_ok(fm);
    }
  } else if (strncmp(cmd, "AT+CPIN=\"", 9) == 0) {
    char pin[32] = "";
    sscanf(cmd + 9, "%31[^\"]", pin);
    if (fm->sim_pin && strcmp(pin, fm->sim_pin) == 0) {
      fm->pin_entered = true;
      fm_ok(fm);
    } else {
      fm_reply(fm, "+CME ERROR: 16");
    }
  } else if (strcmp(cmd, "AT+CSCA?") == 0) {
    fm_reply(fm, "+CSCA: \"+491710760000\",145");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CPMS?") == 0) {
    int n = fm_stored_count(fm, fm->mem1);
    fm_reply(fm, "+CPMS: \"%s\",%d,%d,\"%s\",%d,%d,\"%s\",%d,%d", fm->mem1 ? "ME" : "SM", n,
             SLOTS, fm->mem1 ? "ME" : "SM", n, SLOTS, fm->mem1 ? "ME" : "SM", n, SLOTS);
    fm_ok(fm);
  } else if (strncmp(cmd, "AT+CPMS=\"", 9) == 0) {
    if (fm->me_refused && strncmp(cmd + 9, "ME", 2) == 0) {
      fm_reply(fm, "+CMS ERROR: 302");
      return;
    }
    fm->mem1 = mem_index(cmd + 9);
    fm_cpms_reply(fm);
    fm_ok(fm);
  } else if (strncmp(cmd, "AT+CNMI=", 8) == 0) {
    bool ok = !fm->cnmi_restrict;
    for (int i = 0; i < 4 && fm->cnmi_accepted[i]; i++)
      ok = ok || strcmp(cmd + 8, fm->cnmi_accepted[i]) == 0;
    if (ok)
      fm_ok(fm);
    else
      fm_reply(fm, "+CMS ERROR: 303");
  } else if (strcmp(cmd, "AT+CGMI") == 0) {
    fm_reply(fm, "%s", fm->manufacturer ? fm->manufacturer : "Quectel");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CGMM") == 0) {
    fm_reply(fm, "EC25");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CGMR") == 0) {
    fm_reply(fm, "Revision: EC25EFAR06A06M4G");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CGSN") == 0) {
    fm_reply(fm, "867962040000001");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CIMI") == 0) {
    fm_reply(fm, "262010000000002");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+QCCID") == 0) {
    fm_reply(fm, "+QCCID: 8949020000000000003F");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CNUM") == 0) {
    fm_reply(fm, "+CNUM: \"\",\"+12125550178\",145");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CSQ") == 0) {
    fm_reply(fm, "+CSQ: 21,99");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CREG?") == 0) {
    fm_reply(fm, "+CREG: 0,1");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CEREG?") == 0) {
    fm_reply(fm, "+CEREG: 0,5");
    fm_ok(fm);
  } else if (strcmp(cmd, "AT+CMGL=4") == 0) {
    for (int i = 0; i < SLOTS; i++) {
      const char *pdu = fm->store[fm->mem1][i];
      if (!pdu)
        continue;
      fm_reply(fm, "+CMGL: %d,1,,%d", i, tpdu_len(pdu));
      fm_write(fm, pdu);
      fm_write(fm, "\r\n");
    }
    fm_ok(fm);
  } else if (sscanf(cmd, "AT+CMGR=%d", &a) == 1 && a >= 0 && a < SLOTS) {
    const char *pdu = fm->store[fm->mem1][a];
    if (pdu) {
      fm_reply(fm, "+CMGR: 0,,%d", tpdu_len(pdu));
      fm_write(fm, pdu);
      fm_write(fm, "\r\n");
    }
    fm_ok(fm);
  } else if (sscanf(cmd, "AT+CMGD=%d", &a) == 1 && a >= 0 && a < SLOTS) {
    free(fm->store[fm->mem1][a]);
    fm->store[fm->mem1][a] = NULL;
    fm_ok(fm);
  } else if (sscanf(cmd, "AT+CMGS=%d", &a) == 1) {
    fm->cmgs_len = a;
    fm->in_prompt = true;
    fm->pdu_len = 0;
    fm_write(fm, "\r\n");
    fm_write(fm, fm->prompt ? fm->prompt : "> ");
  } else {
    snprintf(s, sizeof(s), "ERROR");
    fm_reply(fm, "%s", s);
  }
}

static void fm_submit_done(fake_modem_t *fm) {
  fm->in_prompt = false;
  fm->pdu_hex[fm->pdu_len] = '\0';
  snprintf(fm->last_submit, sizeof(fm->last_submit), "%s", fm->pdu_hex);
  note("submit:%s", fm->pdu_hex);
  if (fm->cms_on_send) {
    fm_reply(fm, "+CMS ERROR: %d", fm->cms_on_send);
    return;
  }
  fm_reply(fm, "+CMGS: %d", fm->mr++);
  fm_ok(fm);
}

static void fm_on_master(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)events;
  fake_modem_t *fm = arg;
  uint8_t buf[512];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n <= 0)
    return; /* EIO while no slave is open: nothing to do */
  for (ssize_t i = 0; i < n; i++) {
    uint8_t c = buf[i];
    if (fm->in_prompt) {
      if (c == 0x1a) {
        fm_submit_done(fm);
      } else if (c == 0x1b) {
        fm->in_prompt = false;
        fm_ok(fm);
      } else if (fm->pdu_len + 1 < sizeof(fm->pdu_hex)) {
        fm->pdu_hex[fm->pdu_len++] = (char)c;
      }
      continue;
    }
    if (c == '\r') {
      fm->in[fm->in_len] = '\0';
      if (fm->in_len)
        fm_command(fm, fm->in);
      fm->in_len = 0;
    } else if (c >= 0x20 && fm->in_len + 1 < sizeof(fm->in)) {
      fm->in[fm->in_len++] = (char)c; /* ESC, \n: dropped */
    }
  }
}

/* Opens a pty pair and points link at its slave. */
static void fm_open(fake_modem_t *fm, const char *link) {
  char name[128];
  assert_int_equal(openpty(&fm->master, &fm->slave, name, NULL, NULL), 0);
  fcntl(fm->master, F_SETFL, fcntl(fm->master, F_GETFL) | O_NONBLOCK);
  unlink(link);
  assert_int_equal(symlink(name, link), 0);
  fm->echo = true; /* a modem starts with echo on */
  fm->in_len = 0;
  fm->in_prompt = false;
  assert_int_equal(gw_loop_add_fd(fm->loop, fm->master, EPOLLIN, fm_on_master, fm), GW_OK);
}

/* Unplug: both ends go away. */
static void fm_close(fake_modem_t *fm) {
  if (fm->master < 0)
    return;
  gw_loop_del_fd(fm->loop, fm->master);
  close(fm->master);
  close(fm->slave);
  fm->master = fm->slave = -1;
}

/* ---- the harness ---- */

typedef struct {
  gw_loop_t *loop;
  fake_modem_t fm;
  char dir[64], link[128];
  sms_modem_conf_t conf;
  sms_modem_t *modem;
  int pdus;
  char pdu_hex[16][400];
  bool pdu_was_stored[16];
  sms_modem_state_t states[64];
  int state_count;
  int sent_calls;
  uint32_t sent_id[16];
  bool sent_ok[16];
  int sent_mr[16];
  int saved_stderr;
  char log_path[128];
} harness_t;

static void on_pdu(void *arg, const uint8_t *pdu, size_t len) {
  harness_t *h = arg;
  char hex[400];
  gw_hex_encode(pdu, len, hex, sizeof(hex));
  note("pdu:%s", hex);
  if (h->pdus < 16) {
    snprintf(h->pdu_hex[h->pdus], sizeof(h->pdu_hex[0]), "%s", hex);
    /* The message must still be on the modem while its owner handles it. */
    h->pdu_was_stored[h->pdus] = fm_has(&h->fm, hex);
  }
  h->pdus++;
}

static void on_sent(void *arg, uint32_t id, bool ok, int mr) {
  harness_t *h = arg;
  note("sent:%u:%d", id, ok);
  if (h->sent_calls < 16) {
    h->sent_id[h->sent_calls] = id;
    h->sent_ok[h->sent_calls] = ok;
    h->sent_mr[h->sent_calls] = mr;
  }
  h->sent_calls++;
}

static void on_state(void *arg, sms_modem_state_t state) {
  harness_t *h = arg;
  note("state:%s", sms_modem_state_name(state));
  if (h->state_count < 64)
    h->states[h->state_count++] = state;
}

#define RUN_UNTIL(h, cond)                                                                     \
  do {                                                                                         \
    uint64_t end_ = gw_now_ms() + DEADLINE_MS;                                                 \
    while (!(cond) && gw_now_ms() < end_)                                                      \
      assert_int_equal(gw_loop_run_once((h)->loop, 20), GW_OK);                                \
    if (!(cond))                                                                               \
      fail_msg("timed out waiting for: %s", #cond);                                            \
  } while (0)

static void run_for(harness_t *h, uint64_t ms) {
  uint64_t end = gw_now_ms() + ms;
  while (gw_now_ms() < end)
    assert_int_equal(gw_loop_run_once(h->loop, 20), GW_OK);
}

static int setup(void **state) {
  harness_t *h = calloc(1, sizeof(*h));
  if (!h || gw_loop_new(&h->loop) != GW_OK)
    return -1;
  snprintf(h->dir, sizeof(h->dir), "/tmp/test_modem.XXXXXX");
  if (!mkdtemp(h->dir))
    return -1;
  snprintf(h->link, sizeof(h->link), "%s/usb-Fake_Modem-if02-port0", h->dir);
  h->fm.loop = h->loop;
  h->fm.master = h->fm.slave = -1;
  h->conf = (sms_modem_conf_t){.port = h->link,
                               .storage = "ME",
                               .sweep_interval_ms = 60000,
                               .health_interval_ms = 60000,
                               .send_interval_ms = 10,
                               .command_timeout_ms = 2000};
  h->saved_stderr = -1;
  timeline_len = 0;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  harness_t *h = *state;
  sms_modem_free(&h->modem);
  fm_close(&h->fm);
  for (int m = 0; m < MEM_COUNT; m++)
    for (int i = 0; i < SLOTS; i++)
      free(h->fm.store[m][i]);
  unlink(h->link);
  rmdir(h->dir);
  gw_loop_free(&h->loop);
  free(h);
  gw_log_set_level(GW_LOG_INFO);
  return 0;
}

static void start(harness_t *h) {
  sms_modem_callbacks_t cb = {.arg = h, .on_pdu = on_pdu, .on_sent = on_sent,
                              .on_state = on_state};
  assert_int_equal(sms_modem_new(h->loop, &h->conf, &cb, &h->modem), GW_OK);
  assert_int_equal(sms_modem_start(h->modem), GW_OK);
}

static sms_modem_state_t state_of(harness_t *h) { return sms_modem_status(h->modem)->state; }

/* READY and the first sweep and health check done: the driver is idle. */
static void wait_idle_ready(harness_t *h) {
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_READY && find_event("cmd:AT+CPMS?", 0) >= 0);
  run_for(h, 100);
}

/* ---- tests ---- */

static void test_init_sequence(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  static const char *const expected[] = {
      "cmd:AT", "cmd:ATE0", "cmd:AT+CMEE=1", "cmd:AT+CPIN?", "cmd:AT+CMGF=0", "cmd:AT+CSCA?",
      "cmd:AT+CPMS=\"ME\",\"ME\",\"ME\"", "cmd:AT+CNMI=2,1,0,0,0", "cmd:AT+CGMI",
      "cmd:AT+QURCCFG=\"urcport\",\"usbat\"", "cmd:AT+CGMM", "cmd:AT+CGMR", "cmd:AT+CGSN",
      "cmd:AT+CIMI", "cmd:AT+CCID", "cmd:AT+QCCID", "state:ready", "cmd:AT+CMGL=4",
      "cmd:AT+CSQ", "cmd:AT+CREG?", "cmd:AT+CEREG?", "cmd:AT+CPMS?"};
  int at = 0;
  for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
    int next = find_event(expected[i], at);
    if (next < 0)
      fail_msg("missing or out of order: %s", expected[i]);
    at = next + 1;
  }
  assert_int_equal(find_event("cmd:AT^ICCID?", 0), -1); /* the first ICCID answer wins */
  assert_int_equal(find_event("cmd:AT^CURC=0", 0), -1); /* Huawei only */
  const sms_modem_status_t *st = sms_modem_status(h->modem);
  assert_string_equal(st->manufacturer, "Quectel");
  assert_string_equal(st->model, "EC25");
  assert_string_equal(st->revision, "Revision: EC25EFAR06A06M4G");
  assert_string_equal(st->imei, "867962040000001");
  assert_string_equal(st->imsi, "262010000000002");
  assert_string_equal(st->iccid, "8949020000000000003");
  assert_string_equal(st->smsc, "+491710760000");
  assert_string_equal(st->storage, "ME");
  assert_string_equal(st->cnmi, "2,1,0,0,0");
  assert_string_equal(st->backend, "termios");
  assert_int_equal(strncmp(st->device, "/dev/pts/", 9), 0);
  assert_int_equal(st->rssi, 21);
  assert_int_equal(st->creg, 1);
  assert_int_equal(st->cereg, 5);
  assert_int_equal(st->storage_total, SLOTS);
  assert_int_equal(h->states[0], SMS_MODEM_INITIALISING);
  assert_int_equal(h->states[1], SMS_MODEM_READY);
}

static void capture_log_start(harness_t *h) {
  snprintf(h->log_path, sizeof(h->log_path), "%s/log", h->dir);
  fflush(stderr);
  h->saved_stderr = dup(2);
  int fd = open(h->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  dup2(fd, 2);
  close(fd);
  gw_log_set_level(GW_LOG_DEBUG);
}

static char *capture_log_end(harness_t *h) {
  fflush(stderr);
  dup2(h->saved_stderr, 2);
  close(h->saved_stderr);
  h->saved_stderr = -1;
  gw_log_set_level(GW_LOG_INFO);
  FILE *f = fopen(h->log_path, "r");
  assert_non_null(f);
  char *text = calloc(1, 1 << 20);
  size_t n = fread(text, 1, (1 << 20) - 1, f);
  text[n] = '\0';
  fclose(f);
  unlink(h->log_path);
  return text;
}

static void test_init_pin_busy_and_boot(void **state) {
  harness_t *h = *state;
  h->fm.mute_ats = 1;         /* still booting at the first AT */
  h->fm.sim_pin = "8264";
  h->fm.busy_after_pin = 2;   /* +CME ERROR: 14 twice after the PIN */
  h->conf.pin = "8264";
  fm_open(&h->fm, h->link);
  capture_log_start(h);
  start(h);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_READY);
  char *log = capture_log_end(h);
  assert_int_equal(count_events("cmd:AT"), 2);
  assert_int_equal(count_events("cmd:AT+CPIN=\"8264\""), 1);
  assert_int_equal(count_events("cmd:AT+CPIN?"), 4); /* SIM PIN, busy, busy, READY */
  int pin = find_event("cmd:AT+CPIN=\"8264\"", 0);
  assert_true(find_event("cmd:AT+CMGF=0", pin) > pin);
  /* The PIN never reaches the log, not even at debug level with echo on. */
  assert_non_null(strstr(log, "AT+CPIN=<hidden>"));
  if (strstr(log, "8264"))
    fail_msg("the PIN appears in the log:\n%s", log);
  free(log);
}

static void test_wrong_pin_fails_without_retry(void **state) {
  harness_t *h = *state;
  h->fm.sim_pin = "1111";
  h->conf.pin = "2222";
  fm_open(&h->fm, h->link);
  start(h);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_FAILED);
  int commands = count_prefix("cmd:");
  run_for(h, 1500); /* longer than the first reopen backoff */
  assert_int_equal(state_of(h), SMS_MODEM_FAILED);
  assert_int_equal(count_prefix("cmd:AT+CPIN=\""), 1);
  assert_int_equal(count_prefix("cmd:"), commands);
  assert_non_null(strstr(sms_modem_status(h->modem)->last_error, "PIN"));
  uint8_t pdu[20];
  size_t len;
  assert_int_equal(gw_hex_decode(SUBMIT, strlen(SUBMIT), pdu, sizeof(pdu), &len), GW_OK);
  assert_int_equal(sms_modem_send(h->modem, pdu, len, SUBMIT_TPDU_LEN, NULL), GW_ERR_IO);
}

static void test_puk_fails(void **state) {
  harness_t *h = *state;
  h->fm.sim_puk = true;
  h->conf.pin = "1234";
  fm_open(&h->fm, h->link);
  start(h);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_FAILED);
  assert_int_equal(count_prefix("cmd:AT+CPIN=\""), 0);
  assert_non_null(strstr(sms_modem_status(h->modem)->last_error, "PUK"));
}

static void test_missing_pin_fails(void **state) {
  harness_t *h = *state;
  h->fm.sim_pin = "1234";
  fm_open(&h->fm, h->link);
  start(h);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_FAILED);
  assert_int_equal(count_prefix("cmd:AT+CPIN=\""), 0);
}

static void test_cpms_and_cnmi_fallbacks(void **state) {
  harness_t *h = *state;
  h->fm.me_refused = true;
  h->fm.cnmi_restrict = true;
  h->fm.cnmi_accepted[0] = "1,1";
  h->fm.manufacturer = "huawei";
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  int a = find_event("cmd:AT+CPMS=\"ME\",\"ME\",\"ME\"", 0);
  int b = find_event("cmd:AT+CPMS=\"SM\",\"SM\",\"SM\"", a);
  int c1 = find_event("cmd:AT+CNMI=2,1,0,0,0", b);
  int c2 = find_event("cmd:AT+CNMI=1,1,0,0,0", c1);
  int c3 = find_event("cmd:AT+CNMI=2,1,0,0", c2);
  int c4 = find_event("cmd:AT+CNMI=1,1", c3);
  assert_true(a >= 0 && b > a && c1 > b && c2 > c1 && c3 > c2 && c4 > c3);
  assert_true(find_event("cmd:AT^CURC=0", c4) > c4); /* Huawei: ^RSSI noise off */
  const sms_modem_status_t *st = sms_modem_status(h->modem);
  assert_string_equal(st->storage, "SM");
  assert_string_equal(st->cnmi, "1,1");
}

static void test_no_cnmi_still_ready(void **state) {
  harness_t *h = *state;
  h->fm.cnmi_restrict = true; /* nothing accepted */
  h->fm.manufacturer = "SIMCOM INCORPORATED";
  fm_store(&h->fm, MEM_ME, 2, PDU1);
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  assert_int_equal(count_prefix("cmd:AT+CNMI="), 4);
  assert_string_equal(sms_modem_status(h->modem)->cnmi, "");
  assert_int_equal(h->pdus, 1); /* the sweep still reads */
  assert_int_equal(find_event("cmd:AT+QURCCFG=\"urcport\",\"usbat\"", 0), -1);
}

static void test_sweep_three_messages(void **state) {
  harness_t *h = *state;
  fm_store(&h->fm, MEM_ME, 1, PDU1);
  fm_store(&h->fm, MEM_ME, 4, PDU2);
  fm_store(&h->fm, MEM_ME, 7, PDU3);
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  RUN_UNTIL(h, fm_stored_count(&h->fm, MEM_ME) == 0);
  assert_int_equal(h->pdus, 3);
  assert_string_equal(h->pdu_hex[0], PDU1);
  assert_string_equal(h->pdu_hex[1], PDU2);
  assert_string_equal(h->pdu_hex[2], PDU3);
  for (int i = 0; i < 3; i++)
    assert_true(h->pdu_was_stored[i]);
  /* Each delete after its message was handed over. */
  static const char *const pdus[] = {"pdu:" PDU1, "pdu:" PDU2, "pdu:" PDU3};
  static const char *const dels[] = {"cmd:AT+CMGD=1", "cmd:AT+CMGD=4", "cmd:AT+CMGD=7"};
  for (int i = 0; i < 3; i++)
    assert_true(find_event(dels[i], 0) > find_event(pdus[i], 0));
  const sms_modem_status_t *st = sms_modem_status(h->modem);
  assert_int_equal(st->received, 3);
  assert_int_equal(st->deleted, 3);
}

static void test_cmti_read_then_delete(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  fm_store(&h->fm, MEM_ME, 3, PDU2);
  fm_write(&h->fm, "\r\n+CMTI: \"ME\",3\r\n");
  RUN_UNTIL(h, find_event("cmd:AT+CMGD=3", 0) >= 0 && h->pdus == 1);
  run_for(h, 50);
  int read = find_event("cmd:AT+CMGR=3", 0);
  int pdu = find_event("pdu:" PDU2, 0);
  int del = find_event("cmd:AT+CMGD=3", 0);
  assert_true(read >= 0 && pdu > read && del > pdu);
  assert_true(h->pdu_was_stored[0]);
  assert_int_equal(fm_stored_count(&h->fm, MEM_ME), 0);
  /* Selecting ME, then the first sweep's look into the SIM (SMS may land in SM while the
   * modem has its defaults) and back to ME: no switch for the +CMTI itself. */
  assert_int_equal(count_prefix("cmd:AT+CPMS=\""), 3);

  /* +CMTI naming another storage than the one read: switch, read, delete, switch back. */
  fm_store(&h->fm, MEM_SM, 5, PDU3);
  fm_write(&h->fm, "\r\n+CMTI: \"SM\",5\r\n");
  RUN_UNTIL(h, h->pdus == 2 && find_event("cmd:AT+CMGD=5", 0) >= 0 &&
                   find_event("cmd:AT+CPMS=\"ME\"", find_event("cmd:AT+CMGD=5", 0)) >= 0);
  int sw = find_event("cmd:AT+CPMS=\"SM\"", del);
  int rd = find_event("cmd:AT+CMGR=5", sw);
  int pd = find_event("pdu:" PDU3, rd);
  int dl = find_event("cmd:AT+CMGD=5", pd);
  int back = find_event("cmd:AT+CPMS=\"ME\"", dl);
  assert_true(sw > del && rd > sw && pd > rd && dl > pd && back > dl);
  assert_int_equal(fm_stored_count(&h->fm, MEM_SM), 0);
  assert_int_equal(h->fm.mem1, MEM_ME);

  /* A +CMTI for a slot already emptied reads nothing and deletes nothing. */
  fm_write(&h->fm, "\r\n+CMTI: \"ME\",9\r\n");
  RUN_UNTIL(h, find_event("cmd:AT+CMGR=9", 0) >= 0);
  run_for(h, 100);
  assert_int_equal(find_event("cmd:AT+CMGD=9", 0), -1);
  assert_int_equal(h->pdus, 2);
}

/* An SMS the modem stored in the SIM with its default settings, before AT+CPMS chose ME (at
 * boot, after a replug), is still read and deleted: the sweep looks into SM too. */
static void test_sms_left_in_sim_storage_is_swept(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  fm_store(&h->fm, MEM_SM, 2, PDU3);
  start(h);
  RUN_UNTIL(h, h->pdus == 1 && fm_stored_count(&h->fm, MEM_SM) == 0);
  RUN_UNTIL(h, h->fm.mem1 == MEM_ME);
  assert_true(find_event("cmd:AT+CMGD=2", find_event("pdu:" PDU3, 0)) >= 0);
}

static void test_cmt_direct_delivery_acknowledged(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  fm_write(&h->fm, "\r\n+CMT: ,39\r\n" PDU1 "\r\n");
  RUN_UNTIL(h, find_event("cmd:AT+CNMA", 0) >= 0);
  assert_int_equal(h->pdus, 1);
  assert_true(find_event("cmd:AT+CNMA", 0) > find_event("pdu:" PDU1, 0));
  /* A status report is ignored and not acknowledged twice. */
  fm_write(&h->fm, "\r\n+CDS: 25\r\n07911326040000F006\r\n");
  run_for(h, 100);
  assert_int_equal(h->pdus, 1);
  assert_int_equal(count_events("cmd:AT+CNMA"), 1);
}

static void test_storage_full_drains(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  fm_store(&h->fm, MEM_ME, 0, PDU1);
  fm_write(&h->fm, "\r\n+QIND: \"smsfull\",\"ME\"\r\n");
  /* Two sweeps at start (ME, then SM) and at least one more for the full storage. */
  RUN_UNTIL(h, count_events("cmd:AT+CMGL=4") >= 3 && fm_stored_count(&h->fm, MEM_ME) == 0);
  assert_int_equal(h->pdus, 1);
}

static uint32_t send_hex(harness_t *h, const char *hex, size_t tpdu) {
  uint8_t pdu[200];
  size_t len;
  assert_int_equal(gw_hex_decode(hex, strlen(hex), pdu, sizeof(pdu), &len), GW_OK);
  uint32_t id = 0;
  assert_int_equal(sms_modem_send(h->modem, pdu, len, tpdu, &id), GW_OK);
  assert_true(id != 0);
  return id;
}

static void test_send_both_prompts(void **state) {
  harness_t *h = *state;
  h->fm.mr = 42;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  h->fm.prompt = "> ";
  uint32_t a = send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  RUN_UNTIL(h, h->sent_calls == 1);
  assert_int_equal(h->sent_id[0], a);
  assert_true(h->sent_ok[0]);
  assert_int_equal(h->sent_mr[0], 42);
  assert_string_equal(h->fm.last_submit, SUBMIT);
  assert_int_equal(h->fm.cmgs_len, SUBMIT_TPDU_LEN);

  h->fm.prompt = ">"; /* no space, no line end */
  uint32_t b = send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  uint32_t c = send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  assert_int_equal(sms_modem_send_queue_length(h->modem), 2);
  RUN_UNTIL(h, h->sent_calls == 3);
  assert_int_equal(h->sent_id[1], b);
  assert_int_equal(h->sent_id[2], c);
  assert_true(h->sent_ok[1] && h->sent_ok[2]);
  assert_int_equal(h->sent_mr[2], 44);
  assert_int_equal(sms_modem_status(h->modem)->sent, 3);
  assert_int_equal(sms_modem_send_queue_length(h->modem), 0);

  /* Malformed requests are refused up front. */
  uint8_t pdu[20];
  size_t len;
  gw_hex_decode(SUBMIT, strlen(SUBMIT), pdu, sizeof(pdu), &len);
  assert_int_equal(sms_modem_send(h->modem, pdu, len, SUBMIT_TPDU_LEN + 1, NULL), GW_ERR_INVAL);
  uint8_t big[SMS_MODEM_PDU_MAX + 1] = {0};
  assert_int_equal(sms_modem_send(h->modem, big, sizeof(big), sizeof(big) - 1, NULL),
                   GW_ERR_TOOBIG);
}

static void test_send_cms_errors(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  h->fm.cms_on_send = 500; /* unknown error: transient, two more attempts */
  send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  RUN_UNTIL(h, h->sent_calls == 1);
  assert_false(h->sent_ok[0]);
  assert_int_equal(count_prefix("submit:"), 3);
  h->fm.cms_on_send = 304; /* invalid PDU mode parameter: no retry */
  send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  RUN_UNTIL(h, h->sent_calls == 2);
  assert_false(h->sent_ok[1]);
  assert_int_equal(count_prefix("submit:"), 4);
  assert_int_equal(sms_modem_status(h->modem)->send_failures, 2);
  assert_non_null(strstr(sms_modem_status(h->modem)->last_error, "304"));
}

static void test_hangup_and_reopen(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  /* Unplug: udev removes the by-id link too (left dangling, it could meet a /dev/pts number
   * that another process reuses meanwhile, and the reopen would find that one). */
  fm_close(&h->fm);
  unlink(h->link);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_CLOSED);
  /* Sent while the modem is away: queued, not lost. */
  uint32_t id = send_hex(h, SUBMIT, SUBMIT_TPDU_LEN);
  run_for(h, 700); /* at least one reopen attempt fails: the link is gone */
  assert_int_equal(state_of(h), SMS_MODEM_CLOSED);
  /* The modem comes back under another /dev/pts number, same link; a message arrived while
   * it was away. */
  fm_store(&h->fm, MEM_ME, 6, PDU2);
  int mark = timeline_len;
  fm_open(&h->fm, h->link);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_READY && h->sent_calls == 1 && h->pdus == 1);
  assert_int_equal(h->sent_id[0], id);
  assert_true(h->sent_ok[0]);
  assert_true(find_event("cmd:ATE0", mark) > mark); /* initialised again */
  assert_true(find_event("cmd:AT+CMGL=4", mark) > mark);
  RUN_UNTIL(h, fm_stored_count(&h->fm, MEM_ME) == 0);
  const sms_modem_status_t *st = sms_modem_status(h->modem);
  assert_int_equal(st->reopens, 1);
  assert_int_equal(h->states[0], SMS_MODEM_INITIALISING);
  assert_int_equal(h->states[1], SMS_MODEM_READY);
  assert_int_equal(h->states[2], SMS_MODEM_CLOSED);
  assert_int_equal(h->states[3], SMS_MODEM_INITIALISING);
  assert_int_equal(h->states[4], SMS_MODEM_READY);
}

static void test_missing_port_retries(void **state) {
  harness_t *h = *state;
  start(h); /* nothing at the link yet */
  run_for(h, 300);
  assert_int_equal(state_of(h), SMS_MODEM_CLOSED);
  assert_non_null(strstr(sms_modem_status(h->modem)->last_error, "No such file"));
  fm_open(&h->fm, h->link);
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_READY);
  assert_int_equal(sms_modem_status(h->modem)->reopens, 0);
}

static void test_boot_urc_reinitialises(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  int mark = timeline_len;
  h->fm.echo = true; /* a rebooted modem has echo on again */
  fm_write(&h->fm, "\r\nRDY\r\n");
  RUN_UNTIL(h, find_event("state:ready", mark) > mark);
  assert_true(find_event("cmd:ATE0", mark) > mark);
  assert_true(find_event("cmd:AT+CNMI=2,1,0,0,0", mark) > mark);
}

static void test_stopped_answering_reopens(void **state) {
  harness_t *h = *state;
  h->conf.command_timeout_ms = 300;
  fm_open(&h->fm, h->link);
  start(h);
  wait_idle_ready(h);
  h->fm.hung = true;
  for (int i = 1; i <= 3; i++) {
    char urc[64];
    snprintf(urc, sizeof(urc), "\r\n+CMTI: \"ME\",%d\r\n", i);
    fm_write(&h->fm, urc);
  }
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_CLOSED);
  assert_int_equal(sms_modem_status(h->modem)->at_timeouts, 3);
  assert_non_null(strstr(sms_modem_status(h->modem)->last_error, "stopped answering"));
  h->fm.hung = false;
  RUN_UNTIL(h, state_of(h) == SMS_MODEM_READY);
  assert_int_equal(sms_modem_status(h->modem)->reopens, 1);
}

/* ---- modem probe, against the fake modem in a child process ---- */

static void test_probe(void **state) {
  harness_t *h = *state;
  fm_open(&h->fm, h->link);
  gw_loop_del_fd(h->loop, h->fm.master);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    gw_loop_t *loop = NULL;
    if (gw_loop_new(&loop) != GW_OK)
      _exit(1);
    h->fm.loop = loop;
    close(h->fm.slave); /* only the driver under test holds the slave */
    gw_loop_add_fd(loop, h->fm.master, EPOLLIN, fm_on_master, &h->fm);
    uint64_t end = gw_now_ms() + DEADLINE_MS;
    while (gw_now_ms() < end)
      gw_loop_run_once(loop, 50);
    _exit(0);
  }
  close(h->fm.master);
  h->fm.master = -1;
  close(h->fm.slave);
  h->fm.slave = -1;

  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  sms_modem_probe_opts_t opts = {.timeout_ms = 15000, .by_id_dir = h->dir};
  /* Probing the /dev/pts path finds the by-id style link that points to it. */
  char pts[256];
  assert_non_null(realpath(h->link, pts));
  int rc = sms_modem_probe_port(out, pts, &opts);
  fclose(out);
  char link[256];
  assert_true(sms_modem_probe_by_id_link(h->dir, pts, link, sizeof(link)));
  assert_string_equal(link, h->link);
  assert_false(sms_modem_probe_by_id_link(h->dir, "/dev/null", link, sizeof(link)));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  assert_int_equal(rc, GW_OK);
  if (getenv("TEST_MODEM_VERBOSE"))
    fputs(text, stdout);
  static const char *const wanted[] = {
      "Quectel", "EC25", "867962040000001", "262010000000002", "8949020000000000003",
      "READY", "21 (-71 dBm)", "registered, home network (1)", "registered, roaming (5)",
      "+491710760000", "12125550178"};
  for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
    if (!strstr(text, wanted[i]))
      fail_msg("probe output lacks \"%s\":\n%s", wanted[i], text);
  char snippet[512];
  snprintf(snippet, sizeof(snippet),
           "bindings = { sms = { enabled = true; modem = \"%s\"; msisdn = \"12125550178\"; }; };",
           h->link);
  if (!strstr(text, snippet))
    fail_msg("probe output lacks the snippet %s:\n%s", snippet, text);
  free(text);
}

static void test_probe_missing_port(void **state) {
  harness_t *h = *state;
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  int rc = sms_modem_probe_port(out, h->link, NULL);
  fclose(out);
  assert_int_equal(rc, GW_ERR_NOTFOUND);
  assert_non_null(strstr(text, "not enumerated yet"));
  free(text);
  /* list works without any USB modem (prints what libserialport finds) */
  out = open_memstream(&text, &size);
  assert_true(sms_modem_probe_list(out, h->dir) >= 0);
  fclose(out);
  free(text);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_init_sequence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_pin_busy_and_boot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_pin_fails_without_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_puk_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_pin_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cpms_and_cnmi_fallbacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_cnmi_still_ready, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sweep_three_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cmti_read_then_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sms_left_in_sim_storage_is_swept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cmt_direct_delivery_acknowledged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_storage_full_drains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_both_prompts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_cms_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hangup_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_port_retries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_boot_urc_reinitialises, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stopped_answering_reopens, setup, teardown),
      cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_probe_missing_port, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
