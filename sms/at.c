/* lwm2m-gw: the AT engine. See at.h for what goes where. */
#include "at.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"

#define MOD "at"
#define DEFAULT_PROMPT_TIMEOUT_MS 10000
#define CANCEL_GRACE_MS 1000 /* after ESC, time for the modem's answer to the cancel */
#define OUT_BUF_SIZE (SMS_AT_TEXT_MAX + SMS_AT_PAYLOAD_MAX + 64)
#define CTRL_Z 0x1a
#define ESC 0x1b

/* ---- error number tables (27.007 9.2.1, 27.005 3.2.5) ---- */

typedef struct {
  int code;
  const char *text;
} error_text_t;

static const error_text_t cme_texts[] = {
    {0, "phone failure"},
    {1, "no connection to phone"},
    {2, "phone-adaptor link reserved"},
    {3, "operation not allowed"},
    {4, "operation not supported"},
    {5, "PH-SIM PIN required"},
    {6, "PH-FSIM PIN required"},
    {7, "PH-FSIM PUK required"},
    {10, "SIM not inserted"},
    {11, "SIM PIN required"},
    {12, "SIM PUK required"},
    {13, "SIM failure"},
    {14, "SIM busy"},
    {15, "SIM wrong"},
    {16, "incorrect password"},
    {17, "SIM PIN2 required"},
    {18, "SIM PUK2 required"},
    {20, "memory full"},
    {21, "invalid index"},
    {22, "not found"},
    {23, "memory failure"},
    {24, "text string too long"},
    {25, "invalid characters in text string"},
    {26, "dial string too long"},
    {27, "invalid characters in dial string"},
    {30, "no network service"},
    {31, "network timeout"},
    {32, "network not allowed - emergency calls only"},
    {40, "network personalization PIN required"},
    {41, "network personalization PUK required"},
    {100, "unknown"},
};

static const error_text_t cms_texts[] = {
    {300, "ME failure"},
    {301, "SMS service of ME reserved"},
    {302, "operation not allowed"},
    {303, "operation not supported"},
    {304, "invalid PDU mode parameter"},
    {305, "invalid text mode parameter"},
    {310, "SIM not inserted"},
    {311, "SIM PIN required"},
    {312, "PH-SIM PIN required"},
    {313, "SIM failure"},
    {314, "SIM busy"},
    {315, "SIM wrong"},
    {316, "SIM PUK required"},
    {317, "SIM PIN2 required"},
    {318, "SIM PUK2 required"},
    {320, "memory failure"},
    {321, "invalid memory index"},
    {322, "memory full"},
    {330, "SMSC address unknown"},
    {331, "no network service"},
    {332, "network timeout"},
    {340, "no +CNMA acknowledgement expected"},
    {500, "unknown error"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *table_text(const error_text_t *t, size_t n, int code) {
  for (size_t i = 0; i < n; i++)
    if (t[i].code == code)
      return t[i].text;
  return NULL;
}

const char *sms_at_cme_text(int code) { return table_text(cme_texts, COUNT(cme_texts), code); }
const char *sms_at_cms_text(int code) { return table_text(cms_texts, COUNT(cms_texts), code); }

/* Lower case, "(U)SIM" and "USIM" read as "SIM", runs of blanks as one: the verbose forms differ
 * between vendors only in these. Writes at most out_size-1 bytes. */
static void normalise_verbose(const char *s, size_t len, char *out, size_t out_size) {
  size_t o = 0;
  bool blank = false;
  for (size_t i = 0; i < len && o + 1 < out_size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '(' && i + 2 < len && (s[i + 1] == 'U' || s[i + 1] == 'u') && s[i + 2] == ')') {
      i += 2;
      continue;
    }
    if ((c == 'U' || c == 'u') && i + 3 < len && strncasecmp(s + i + 1, "sim", 3) == 0 &&
        (i == 0 || s[i - 1] == ' ' || s[i - 1] == ')')) {
      continue;
    }
    if (c == ' ' || c == '\t') {
      blank = true;
      continue;
    }
    if (blank && o > 0 && o + 2 < out_size)
      out[o++] = ' ';
    blank = false;
    out[o++] = (char)tolower(c);
  }
  out[o] = '\0';
}

static int verbose_code(const error_text_t *t, size_t n, const char *s, size_t len) {
  char have[96], want[96];
  normalise_verbose(s, len, have, sizeof(have));
  for (size_t i = 0; i < n; i++) {
    normalise_verbose(t[i].text, strlen(t[i].text), want, sizeof(want));
    if (strcmp(have, want) == 0)
      return t[i].code;
  }
  return -1;
}

/* ---- the classifier ---- */

static bool has_prefix(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

static bool has_prefix_ci(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && strncasecmp(s, prefix, n) == 0;
}

static bool equals_ci(const char *s, size_t len, const char *word) {
  return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static bool contains_ci(const char *s, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (strncasecmp(s + i, needle, n) == 0)
      return true;
  return false;
}

/* The error number after "+CME ERROR:" / "+CMS ERROR:": digits, or verbose text. */
static int error_code(const char *s, size_t len, const error_text_t *t, size_t n) {
  while (len > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  if (len == 0)
    return -1;
  long v = 0;
  size_t i = 0;
  for (; i < len && isdigit((unsigned char)s[i]); i++) {
    v = v * 10 + (s[i] - '0');
    if (v > 100000)
      return -1;
  }
  if (i > 0 && i == len)
    return (int)v;
  return verbose_code(t, n, s, len);
}

typedef struct {
  const char *prefix; /* matched at the start of the line, case-sensitive */
  bool exact;         /* the whole line, case-insensitive */
  sms_at_urc_kind_t kind;
  bool pdu_line;
} urc_pattern_t;

static const urc_pattern_t urc_patterns[] = {
    {"+CMTI:", false, SMS_AT_URC_CMTI, false},
    {"+CMT:", false, SMS_AT_URC_CMT, true},
    {"+CDSI:", false, SMS_AT_URC_CDSI, false},
    {"+CDS:", false, SMS_AT_URC_CDS, true},
    {"+CBM:", false, SMS_AT_URC_CBM, true},
    {"RING", true, SMS_AT_URC_RING, false},
    {"+CRING:", false, SMS_AT_URC_RING, false},
    {"+CREG:", false, SMS_AT_URC_CREG, false},
    {"+CGREG:", false, SMS_AT_URC_CGREG, false},
    {"+C5GREG:", false, SMS_AT_URC_CGREG, false},
    {"+CEREG:", false, SMS_AT_URC_CEREG, false},
    {"+CPIN:", false, SMS_AT_URC_CPIN, false},
    {"RDY", true, SMS_AT_URC_BOOT, false},
    {"^SYSSTART", true, SMS_AT_URC_BOOT, false},
    {"Call Ready", true, SMS_AT_URC_READY, false},
    {"SMS Ready", true, SMS_AT_URC_READY, false},
    {"SMS DONE", true, SMS_AT_URC_READY, false},
    {"PB DONE", true, SMS_AT_URC_READY, false},
    {"+PBREADY", true, SMS_AT_URC_READY, false},
    {"^SMMEMFULL:", false, SMS_AT_URC_SMSFULL, false},
    {"+QIND:", false, SMS_AT_URC_VENDOR, false},
    {"+QUSIM:", false, SMS_AT_URC_VENDOR, false},
    {"+QSTK:", false, SMS_AT_URC_VENDOR, false},
    {"+CIEV:", false, SMS_AT_URC_VENDOR, false},
    {"+CGEV:", false, SMS_AT_URC_VENDOR, false},
    {"+CTZV:", false, SMS_AT_URC_VENDOR, false},
    {"+CTZE:", false, SMS_AT_URC_VENDOR, false},
    {"+CTZEU:", false, SMS_AT_URC_VENDOR, false},
    {"+CUSD:", false, SMS_AT_URC_VENDOR, false},
    {"+CLIP:", false, SMS_AT_URC_VENDOR, false},
    {"+CCWA:", false, SMS_AT_URC_VENDOR, false},
    {"+CUSATP:", false, SMS_AT_URC_VENDOR, false},
    {"+STIN:", false, SMS_AT_URC_VENDOR, false},
    {"+PACSP", false, SMS_AT_URC_VENDOR, false},
    {"*PSUTTZ:", false, SMS_AT_URC_VENDOR, false},
    {"+NITZ:", false, SMS_AT_URC_VENDOR, false},
    {"+CPSI:", false, SMS_AT_URC_VENDOR, false},
    {"+SIMCARD:", false, SMS_AT_URC_VENDOR, false},
};

/* Huawei's proprietary codes all look like "^NAME:" or "^NAME" (^RSSI, ^BOOT, ^MODE, ^SRVST,
 * ^SIMST, ^HCSQ, ^DSFLOWRPT, ^CEND, ^NDISSTAT ...). */
static bool huawei_urc(const char *s, size_t len) {
  if (len < 2 || s[0] != '^')
    return false;
  size_t i = 1;
  while (i < len && (isupper((unsigned char)s[i]) || isdigit((unsigned char)s[i])))
    i++;
  return i > 1 && (i == len || s[i] == ':');
}

sms_at_line_kind_t sms_at_classify_line(const char *line, size_t len, sms_at_line_t *out) {
  sms_at_line_t r = {.kind = SMS_AT_LINE_INFO, .urc = SMS_AT_URC_NONE};
  const char *s = line;
  while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
    s++;
    len--;
  }
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
                     s[len - 1] == '\n'))
    len--;

  if (len == 0) {
    r.kind = SMS_AT_LINE_EMPTY;
  } else if (equals_ci(s, len, "OK")) {
    r.kind = SMS_AT_LINE_OK;
  } else if (equals_ci(s, len, "ERROR") || equals_ci(s, len, "NO CARRIER") ||
             equals_ci(s, len, "BUSY") || equals_ci(s, len, "NO ANSWER") ||
             equals_ci(s, len, "NO DIALTONE") || equals_ci(s, len, "COMMAND NOT SUPPORT") ||
             equals_ci(s, len, "TOO MANY PARAMETERS")) {
    r.kind = SMS_AT_LINE_ERROR;
  } else if (has_prefix_ci(s, len, "+CME ERROR:")) {
    r.kind = SMS_AT_LINE_CME_ERROR;
    r.code = error_code(s + 11, len - 11, cme_texts, COUNT(cme_texts));
  } else if (has_prefix_ci(s, len, "+CMS ERROR:")) {
    r.kind = SMS_AT_LINE_CMS_ERROR;
    r.code = error_code(s + 11, len - 11, cms_texts, COUNT(cms_texts));
  } else if (s[0] == '>' && len == 1) {
    r.kind = SMS_AT_LINE_PROMPT;
  } else if (has_prefix_ci(s, len, "AT")) {
    r.kind = SMS_AT_LINE_ECHO;
  } else {
    for (size_t i = 0; i < COUNT(urc_patterns); i++) {
      const urc_pattern_t *p = &urc_patterns[i];
      if (p->exact ? equals_ci(s, len, p->prefix) : has_prefix(s, len, p->prefix)) {
        r.kind = SMS_AT_LINE_URC;
        r.urc = p->kind;
        r.urc_has_pdu_line = p->pdu_line;
        break;
      }
    }
    if (r.kind == SMS_AT_LINE_INFO && huawei_urc(s, len)) {
      r.kind = SMS_AT_LINE_URC;
      r.urc = SMS_AT_URC_VENDOR;
    }
    /* Quectel +QIND: "smsfull","SM"; SIMCom +CIEV: "SMSFULL",1; Huawei ^SMMEMFULL. */
    if (r.kind == SMS_AT_LINE_URC && r.urc == SMS_AT_URC_VENDOR &&
        (contains_ci(s, len, "smsfull") || contains_ci(s, len, "memfull")))
      r.urc = SMS_AT_URC_SMSFULL;
  }
  if (out)
    *out = r;
  return r.kind;
}

const char *sms_at_urc_name(sms_at_urc_kind_t urc) {
  switch (urc) {
  case SMS_AT_URC_NONE: return "none";
  case SMS_AT_URC_CMTI: return "+CMTI";
  case SMS_AT_URC_CMT: return "+CMT";
  case SMS_AT_URC_CDS: return "+CDS";
  case SMS_AT_URC_CDSI: return "+CDSI";
  case SMS_AT_URC_CBM: return "+CBM";
  case SMS_AT_URC_RING: return "RING";
  case SMS_AT_URC_CREG: return "+CREG";
  case SMS_AT_URC_CGREG: return "+CGREG";
  case SMS_AT_URC_CEREG: return "+CEREG";
  case SMS_AT_URC_CPIN: return "+CPIN";
  case SMS_AT_URC_BOOT: return "boot";
  case SMS_AT_URC_READY: return "ready";
  case SMS_AT_URC_SMSFULL: return "storage full";
  case SMS_AT_URC_VENDOR: return "vendor";
  case SMS_AT_URC_UNKNOWN: return "unknown";
  }
  return "?";
}

const char *sms_at_status_name(sms_at_status_t status) {
  switch (status) {
  case SMS_AT_RESULT_OK: return "OK";
  case SMS_AT_RESULT_ERROR: return "ERROR";
  case SMS_AT_RESULT_CME_ERROR: return "+CME ERROR";
  case SMS_AT_RESULT_CMS_ERROR: return "+CMS ERROR";
  case SMS_AT_RESULT_TIMEOUT: return "timeout";
  case SMS_AT_RESULT_CLOSED: return "port closed";
  }
  return "?";
}

/* ---- reply parsing helpers ---- */

const char *sms_at_after_prefix(const char *line, const char *prefix) {
  if (!line || !prefix)
    return NULL;
  size_t n = strlen(prefix);
  if (strncmp(line, prefix, n) != 0)
    return NULL;
  line += n;
  while (*line == ' ' || *line == '\t')
    line++;
  return line;
}

int sms_at_split_fields(const char *params, char *buf, size_t buf_size, const char **out_fields,
                        bool *out_quoted, int max_fields) {
  if (!params || buf_size == 0 || max_fields <= 0)
    return -1;
  size_t o = 0;
  int count = 0;
  const char *p = params;
  for (;;) {
    if (count == max_fields)
      return -1;
    while (*p == ' ' || *p == '\t')
      p++;
    bool quoted = false;
    size_t start = o;
    if (*p == '"') {
      quoted = true;
      p++;
      while (*p && *p != '"') {
        if (o + 1 >= buf_size)
          return -1;
        buf[o++] = *p++;
      }
      if (*p == '"')
        p++;
      while (*p && *p != ',') /* stray text after the closing quote is ignored */
        p++;
    } else {
      while (*p && *p != ',') {
        if (o + 1 >= buf_size)
          return -1;
        buf[o++] = *p++;
      }
      while (o > start && (buf[o - 1] == ' ' || buf[o - 1] == '\t'))
        o--;
    }
    if (o + 1 > buf_size)
      return -1;
    buf[o++] = '\0';
    out_fields[count] = buf + start;
    if (out_quoted)
      out_quoted[count] = quoted;
    count++;
    if (*p != ',')
      return count;
    p++;
  }
}

bool sms_at_parse_int(const char *field, int *out_value) {
  if (!field || !*field)
    return false;
  long v = 0;
  for (const char *p = field; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return false;
    v = v * 10 + (*p - '0');
    if (v > INT_MAX)
      return false;
  }
  *out_value = (int)v;
  return true;
}

int sms_at_parse_reg_stat(const char *params) {
  char buf[128];
  const char *f[8];
  bool quoted[8];
  int n = sms_at_split_fields(params, buf, sizeof(buf), f, quoted, 8);
  int a, b;
  if (n < 1 || quoted[0] || !sms_at_parse_int(f[0], &a))
    return -1;
  /* Reply: "<n>,<stat>[,...]"; unsolicited: "<stat>[,"<lac>","<ci>"...]": the second field is a
   * bare number only in the reply. */
  if (n >= 2 && !quoted[1] && sms_at_parse_int(f[1], &b))
    return b;
  return a;
}

/* ---- the engine ---- */

typedef enum {
  CMD_QUEUED,
  CMD_WAIT_PROMPT, /* AT+CMGS sent, waiting for "> " */
  CMD_WAIT_FINAL,  /* waiting for the final result */
  CMD_CANCELLING   /* no prompt came; ESC sent, waiting briefly for the modem's answer */
} cmd_state_t;

typedef struct at_cmd {
  struct at_cmd *next;
  char *text, *expect;
  uint8_t *payload;
  size_t payload_len;
  uint32_t timeout_ms, prompt_timeout_ms;
  bool secret;
  sms_at_done_cb_t done;
  void *arg;
  cmd_state_t state;
  bool payload_sent;
  char **lines;
  size_t line_count, line_cap;
} at_cmd_t;

struct sms_at_engine {
  gw_loop_t *loop;
  sms_at_io_t io;
  uint32_t default_timeout_ms;
  bool open;
  uint64_t generation; /* bumped by close: a feed in progress stops */
  at_cmd_t *current;
  at_cmd_t *queue_head, *queue_tail;
  size_t queue_len;
  gw_timer_t timer;

  char line[SMS_AT_LINE_MAX + 1];
  size_t line_len;
  bool discarding; /* an over-long line: drop bytes until its end */
  char urc_header[SMS_AT_LINE_MAX + 1]; /* a +CMT/+CDS/+CBM waiting for its PDU line */
  bool urc_header_pending;
  sms_at_urc_kind_t urc_header_kind;

  uint8_t out[OUT_BUF_SIZE];
  size_t out_off, out_len;
  bool want_write;

  sms_at_stats_t stats;
};

static void cmd_free(at_cmd_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->line_count; i++)
    free(c->lines[i]);
  free(c->lines);
  if (c->secret)
    explicit_bzero(c->text, strlen(c->text));
  free(c->text);
  free(c->expect);
  free(c->payload);
  free(c);
}

static void set_want_write(sms_at_engine_t *e, bool want) {
  if (e->want_write == want)
    return;
  e->want_write = want;
  if (e->io.want_write)
    e->io.want_write(e->io.arg, want);
}

static void flush_output(sms_at_engine_t *e) {
  while (e->out_off < e->out_len) {
    ssize_t n = e->io.write(e->io.arg, e->out + e->out_off, e->out_len - e->out_off);
    if (n < 0) {
      /* The owner closes the port; nothing we hold can still go out. */
      e->out_off = e->out_len = 0;
      set_want_write(e, false);
      return;
    }
    if (n == 0)
      break;
    e->out_off += (size_t)n;
  }
  if (e->out_off == e->out_len) {
    e->out_off = e->out_len = 0;
    set_want_write(e, false);
  } else {
    set_want_write(e, true);
  }
}

static int append_output(sms_at_engine_t *e, const void *data, size_t len) {
  if (e->out_off > 0 && e->out_len + len > sizeof(e->out)) {
    memmove(e->out, e->out + e->out_off, e->out_len - e->out_off);
    e->out_len -= e->out_off;
    e->out_off = 0;
  }
  if (e->out_len + len > sizeof(e->out))
    return GW_ERR_FULL;
  memcpy(e->out + e->out_len, data, len);
  e->out_len += len;
  return GW_OK;
}

static void start_next(sms_at_engine_t *e);

/* Completes the command in flight: detach first, so the callback may submit the next one. */
static void complete(sms_at_engine_t *e, sms_at_status_t status, int code, const char *final_line,
                     bool prompt_missing) {
  at_cmd_t *c = e->current;
  if (!c)
    return;
  e->current = NULL;
  gw_timer_stop(e->loop, &e->timer);
  if (status == SMS_AT_RESULT_TIMEOUT)
    e->stats.timeouts++;
  sms_at_result_t r = {.status = status,
                       .code = code,
                       .prompt_missing = prompt_missing,
                       .payload_sent = c->payload_sent,
                       .final_line = final_line ? final_line : "",
                       .lines = (const char *const *)c->lines,
                       .line_count = c->line_count};
  if (status != SMS_AT_RESULT_OK)
    GW_DEBUG(MOD, "%s: %s%s%s", c->secret ? "AT+CPIN=<hidden>" : c->text,
             sms_at_status_name(status), final_line && *final_line ? " " : "",
             final_line ? final_line : "");
  if (c->done)
    c->done(c->arg, &r);
  cmd_free(c);
  start_next(e);
}

static void timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  sms_at_engine_t *e = arg;
  at_cmd_t *c = e->current;
  if (!c)
    return;
  if (c->state == CMD_WAIT_PROMPT) {
    /* 27.005 3.5.1: ESC cancels the sending of a message; give the modem a moment to answer
     * the cancel so its OK is not taken for the next command's. */
    GW_WARN(MOD, "%s: no \"> \" prompt within %u ms, cancelling with ESC", c->text,
            c->prompt_timeout_ms);
    uint8_t esc = ESC;
    if (append_output(e, &esc, 1) == GW_OK)
      flush_output(e);
    c->state = CMD_CANCELLING;
    gw_timer_start(e->loop, &e->timer, CANCEL_GRACE_MS);
    return;
  }
  bool prompt_missing = c->state == CMD_CANCELLING;
  if (!prompt_missing) /* the owner decides how loud this is */
    GW_DEBUG(MOD, "%s: no final result within %u ms", c->secret ? "AT+CPIN=<hidden>" : c->text,
            c->timeout_ms);
  complete(e, SMS_AT_RESULT_TIMEOUT, 0, "", prompt_missing);
}

static void start_next(sms_at_engine_t *e) {
  if (e->current || !e->open || !e->queue_head)
    return;
  at_cmd_t *c = e->queue_head;
  e->queue_head = c->next;
  if (!e->queue_head)
    e->queue_tail = NULL;
  e->queue_len--;
  c->next = NULL;
  e->current = c;
  e->stats.commands++;
  GW_DEBUG(MOD, "> %s", c->secret ? "AT+CPIN=<hidden>" : c->text);
  size_t n = strlen(c->text);
  if (append_output(e, c->text, n) != GW_OK || append_output(e, "\r", 1) != GW_OK) {
    complete(e, SMS_AT_RESULT_ERROR, 0, "output buffer full", false);
    return;
  }
  if (c->payload) {
    c->state = CMD_WAIT_PROMPT;
    gw_timer_start(e->loop, &e->timer, c->prompt_timeout_ms);
  } else {
    c->state = CMD_WAIT_FINAL;
    gw_timer_start(e->loop, &e->timer, c->timeout_ms);
  }
  flush_output(e);
}

static void prompt_received(sms_at_engine_t *e) {
  at_cmd_t *c = e->current;
  if (!c || c->state != CMD_WAIT_PROMPT)
    return;
  uint8_t ctrl_z = CTRL_Z;
  if (append_output(e, c->payload, c->payload_len) != GW_OK ||
      append_output(e, &ctrl_z, 1) != GW_OK) {
    uint8_t esc = ESC;
    append_output(e, &esc, 1);
    flush_output(e);
    complete(e, SMS_AT_RESULT_ERROR, 0, "output buffer full", false);
    return;
  }
  c->payload_sent = true;
  c->state = CMD_WAIT_FINAL;
  gw_timer_start(e->loop, &e->timer, c->timeout_ms);
  flush_output(e);
}

static void add_line(sms_at_engine_t *e, at_cmd_t *c, const char *line) {
  (void)e;
  if (c->line_count == SMS_AT_RESULT_LINES_MAX)
    return;
  if (c->line_count == c->line_cap) {
    size_t cap = c->line_cap ? c->line_cap * 2 : 8;
    char **lines = realloc(c->lines, cap * sizeof(*lines));
    if (!lines)
      return;
    c->lines = lines;
    c->line_cap = cap;
  }
  char *copy = strdup(line);
  if (copy)
    c->lines[c->line_count++] = copy;
}

static void deliver_urc(sms_at_engine_t *e, sms_at_urc_kind_t kind, const char *line,
                        const char *pdu_line) {
  e->stats.urcs++;
  if (e->io.on_urc) {
    sms_at_urc_t u = {.kind = kind, .line = line, .pdu_line = pdu_line};
    e->io.on_urc(e->io.arg, &u);
  }
}

static bool all_hex(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (gw_hex_digit(*s) < 0)
      return false;
  return true;
}

static bool secret_in_flight(const sms_at_engine_t *e) { return e->current && e->current->secret; }

/* One complete line, trimmed, NUL-terminated. */
static void process_line(sms_at_engine_t *e, const char *line) {
  uint64_t gen = e->generation;
  sms_at_line_t info;
  sms_at_classify_line(line, strlen(line), &info);
  if (info.kind == SMS_AT_LINE_EMPTY)
    return;
  e->stats.lines++;
  if (gw_log_get_level() >= GW_LOG_DEBUG)
    GW_DEBUG(MOD, "< %s",
             info.kind == SMS_AT_LINE_ECHO && secret_in_flight(e) ? "<echo hidden>" : line);

  if (e->urc_header_pending) {
    e->urc_header_pending = false;
    if (info.kind == SMS_AT_LINE_INFO && all_hex(line)) {
      deliver_urc(e, e->urc_header_kind, e->urc_header, line);
      return;
    }
    /* The PDU line did not come: report the header alone, then handle this line. */
    deliver_urc(e, e->urc_header_kind, e->urc_header, NULL);
    if (gen != e->generation)
      return;
  }

  at_cmd_t *c = e->current;
  if (info.kind == SMS_AT_LINE_PROMPT) {
    if (c && c->state == CMD_WAIT_PROMPT)
      prompt_received(e);
    return;
  }
  if (c && c->expect && strncmp(line, c->expect, strlen(c->expect)) == 0) {
    add_line(e, c, line);
    return;
  }
  switch (info.kind) {
  case SMS_AT_LINE_URC:
    if (info.urc_has_pdu_line) {
      snprintf(e->urc_header, sizeof(e->urc_header), "%s", line);
      e->urc_header_kind = info.urc;
      e->urc_header_pending = true;
    } else {
      deliver_urc(e, info.urc, line, NULL);
    }
    return;
  case SMS_AT_LINE_ECHO:
    /* The echo comes before any reply line; a later "AT..." line is information text. */
    if (c && c->line_count > 0 && c->state == CMD_WAIT_FINAL)
      add_line(e, c, line);
    return;
  case SMS_AT_LINE_OK:
  case SMS_AT_LINE_ERROR:
  case SMS_AT_LINE_CME_ERROR:
  case SMS_AT_LINE_CMS_ERROR: {
    if (!c) {
      e->stats.stray_finals++;
      GW_DEBUG(MOD, "final result with no command in flight: %s", line);
      return;
    }
    if (c->state == CMD_CANCELLING) {
      complete(e, SMS_AT_RESULT_TIMEOUT, 0, line, true);
      return;
    }
    sms_at_status_t st = info.kind == SMS_AT_LINE_OK           ? SMS_AT_RESULT_OK
                         : info.kind == SMS_AT_LINE_ERROR      ? SMS_AT_RESULT_ERROR
                         : info.kind == SMS_AT_LINE_CME_ERROR ? SMS_AT_RESULT_CME_ERROR
                                                                : SMS_AT_RESULT_CMS_ERROR;
    complete(e, st, info.kind == SMS_AT_LINE_CME_ERROR || info.kind == SMS_AT_LINE_CMS_ERROR
                        ? info.code
                        : 0,
             line, false);
    return;
  }
  default:
    if (c && c->state != CMD_CANCELLING)
      add_line(e, c, line);
    else if (!c)
      deliver_urc(e, SMS_AT_URC_UNKNOWN, line, NULL);
    return;
  }
}

static void end_line(sms_at_engine_t *e) {
  if (e->discarding) {
    e->discarding = false;
    e->line_len = 0;
    return;
  }
  size_t start = 0, len = e->line_len;
  while (start < len && (e->line[start] == ' ' || e->line[start] == '\t'))
    start++;
  while (len > start && (e->line[len - 1] == ' ' || e->line[len - 1] == '\t'))
    len--;
  e->line_len = 0;
  if (len == start)
    return;
  /* process_line may reset the engine (close from a callback): work on a private copy. */
  char line[SMS_AT_LINE_MAX + 1];
  memcpy(line, e->line + start, len - start);
  line[len - start] = '\0';
  process_line(e, line);
}

void sms_at_engine_feed(sms_at_engine_t *e, const uint8_t *data, size_t len) {
  uint64_t gen = e->generation;
  for (size_t i = 0; i < len && e->open && gen == e->generation; i++) {
    uint8_t c = data[i];
    if (c == '\r' || c == '\n') {
      end_line(e);
      continue;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      e->stats.garbage_bytes++;
      continue;
    }
    if (e->discarding)
      continue;
    if (e->line_len == SMS_AT_LINE_MAX) {
      e->stats.overlong_lines++;
      GW_WARN(MOD, "line longer than %d bytes discarded", SMS_AT_LINE_MAX);
      e->discarding = true;
      e->line_len = 0;
      continue;
    }
    e->line[e->line_len++] = (char)c;
    /* The prompt "> " often comes without a line end: take it as soon as it starts a line. */
    if (c == '>' && e->current && e->current->state == CMD_WAIT_PROMPT) {
      bool only_blanks = true;
      for (size_t k = 0; k + 1 < e->line_len; k++)
        if (e->line[k] != ' ' && e->line[k] != '\t')
          only_blanks = false;
      if (only_blanks) {
        e->line_len = 0;
        e->stats.lines++;
        GW_DEBUG(MOD, "< >");
        prompt_received(e);
      }
    }
  }
}

void sms_at_engine_writable(sms_at_engine_t *e) {
  if (e->open)
    flush_output(e);
}

int sms_at_engine_new(gw_loop_t *loop, const sms_at_io_t *io, uint32_t default_timeout_ms,
                      sms_at_engine_t **out_engine) {
  if (!loop || !io || !io->write || !out_engine)
    return GW_ERR_INVAL;
  sms_at_engine_t *e = calloc(1, sizeof(*e));
  if (!e)
    return GW_ERR_NOMEM;
  e->loop = loop;
  e->io = *io;
  e->default_timeout_ms = default_timeout_ms ? default_timeout_ms : 5000;
  gw_timer_init(&e->timer, timer_fired, e);
  *out_engine = e;
  return GW_OK;
}

static void reset_input(sms_at_engine_t *e) {
  e->line_len = 0;
  e->discarding = false;
  e->urc_header_pending = false;
}

void sms_at_engine_open(sms_at_engine_t *e) {
  reset_input(e);
  e->out_off = e->out_len = 0;
  e->want_write = false;
  e->open = true;
  start_next(e);
}

bool sms_at_engine_is_open(const sms_at_engine_t *e) { return e->open; }

void sms_at_engine_close(sms_at_engine_t *e) {
  e->open = false;
  e->generation++;
  reset_input(e);
  e->out_off = e->out_len = 0;
  set_want_write(e, false);
  complete(e, SMS_AT_RESULT_CLOSED, 0, "", false);
  /* Callbacks may queue more (they should not while closed: submit refuses). */
  while (e->queue_head) {
    at_cmd_t *c = e->queue_head;
    e->queue_head = c->next;
    e->queue_len--;
    c->next = NULL;
    e->current = c;
    complete(e, SMS_AT_RESULT_CLOSED, 0, "", false);
  }
  e->queue_tail = NULL;
}

void sms_at_engine_free(sms_at_engine_t **engine) {
  if (!*engine)
    return;
  sms_at_engine_t *e = *engine;
  sms_at_engine_close(e);
  gw_timer_stop(e->loop, &e->timer);
  free(e);
  *engine = NULL;
}

int sms_at_engine_submit(sms_at_engine_t *e, const sms_at_command_t *cmd) {
  if (!cmd || !cmd->text)
    return GW_ERR_INVAL;
  if (!e->open)
    return GW_ERR_IO;
  if (e->queue_len >= SMS_AT_QUEUE_MAX)
    return GW_ERR_FULL;
  if (strlen(cmd->text) > SMS_AT_TEXT_MAX || cmd->payload_len > SMS_AT_PAYLOAD_MAX ||
      (cmd->expect && strlen(cmd->expect) > 32))
    return GW_ERR_TOOBIG;
  at_cmd_t *c = calloc(1, sizeof(*c));
  if (!c)
    return GW_ERR_NOMEM;
  c->text = strdup(cmd->text);
  c->expect = cmd->expect ? strdup(cmd->expect) : NULL;
  if (cmd->payload) {
    c->payload = malloc(cmd->payload_len ? cmd->payload_len : 1);
    if (c->payload && cmd->payload_len)
      memcpy(c->payload, cmd->payload, cmd->payload_len);
    c->payload_len = cmd->payload_len;
  }
  if (!c->text || (cmd->expect && !c->expect) || (cmd->payload && !c->payload)) {
    cmd_free(c);
    return GW_ERR_NOMEM;
  }
  c->timeout_ms = cmd->timeout_ms ? cmd->timeout_ms : e->default_timeout_ms;
  c->prompt_timeout_ms = cmd->prompt_timeout_ms ? cmd->prompt_timeout_ms
                                                : DEFAULT_PROMPT_TIMEOUT_MS;
  c->secret = cmd->secret;
  c->done = cmd->done;
  c->arg = cmd->arg;
  c->state = CMD_QUEUED;
  if (e->queue_tail)
    e->queue_tail->next = c;
  else
    e->queue_head = c;
  e->queue_tail = c;
  e->queue_len++;
  start_next(e);
  return GW_OK;
}

int sms_at_engine_send_raw(sms_at_engine_t *e, const uint8_t *data, size_t len) {
  if (!e->open)
    return GW_ERR_IO;
  int rc = append_output(e, data, len);
  if (rc == GW_OK)
    flush_output(e);
  return rc;
}

size_t sms_at_engine_pending(const sms_at_engine_t *e) {
  return e->queue_len + (e->current ? 1 : 0);
}

const sms_at_stats_t *sms_at_engine_stats(const sms_at_engine_t *e) { return &e->stats; }
