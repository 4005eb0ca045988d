/* Unit tests of the AT engine (sms/at.c): the pure line classifier and reply helpers, then the
 * engine over a fake transport (no file descriptor): echo, URCs inside replies, the AT+CMGS
 * prompt in its variants, +CME/+CMS errors numeric and verbose, timeouts driven through the
 * event loop, partial and over-long lines, garbage bytes, close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "at.h"
#include "gw_text.h"
#include "gw_error.h"
#include "loop.h"

#define DEADLINE_MS 10000

/* ---- classifier ---- */

typedef struct {
  const char *line;
  sms_at_line_kind_t kind;
  sms_at_urc_kind_t urc;
  int code;
} classify_case_t;

static void test_classify(void **state) {
  (void)state;
  static const classify_case_t cases[] = {
      {"", SMS_AT_LINE_EMPTY, SMS_AT_URC_NONE, 0},
      {"   \t ", SMS_AT_LINE_EMPTY, SMS_AT_URC_NONE, 0},
      {"OK", SMS_AT_LINE_OK, SMS_AT_URC_NONE, 0},
      {"  OK  ", SMS_AT_LINE_OK, SMS_AT_URC_NONE, 0},
      {"ERROR", SMS_AT_LINE_ERROR, SMS_AT_URC_NONE, 0},
      {"NO CARRIER", SMS_AT_LINE_ERROR, SMS_AT_URC_NONE, 0},
      {"COMMAND NOT SUPPORT", SMS_AT_LINE_ERROR, SMS_AT_URC_NONE, 0},
      {"+CME ERROR: 14", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 14},
      {"+CME ERROR:16", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 16},
      {"+CME ERROR: SIM busy", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 14},
      {"+CME ERROR: incorrect password", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 16},
      {"+CME ERROR: Incorrect Password", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 16},
      {"+CME ERROR: SIM PUK required", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, 12},
      {"+CME ERROR: something odd", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, -1},
      {"+CME ERROR:", SMS_AT_LINE_CME_ERROR, SMS_AT_URC_NONE, -1},
      {"+CMS ERROR: 322", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 322},
      {"+CMS ERROR: 500", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 500},
      {"+CMS ERROR: memory full", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 322},
      {"+CMS ERROR: (U)SIM busy", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 314},
      {"+CMS ERROR: USIM busy", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 314},
      {"+CMS ERROR: SIM busy", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 314},
      {"+CMS ERROR: Unknown error", SMS_AT_LINE_CMS_ERROR, SMS_AT_URC_NONE, 500},
      {">", SMS_AT_LINE_PROMPT, SMS_AT_URC_NONE, 0},
      {"> ", SMS_AT_LINE_PROMPT, SMS_AT_URC_NONE, 0},
      {"AT+CMGL=4", SMS_AT_LINE_ECHO, SMS_AT_URC_NONE, 0},
      {"at", SMS_AT_LINE_ECHO, SMS_AT_URC_NONE, 0},
      {"+CMTI: \"SM\",3", SMS_AT_LINE_URC, SMS_AT_URC_CMTI, 0},
      {"+CMT: ,24", SMS_AT_LINE_URC, SMS_AT_URC_CMT, 0},
      {"+CDS: 25", SMS_AT_LINE_URC, SMS_AT_URC_CDS, 0},
      {"+CDSI: \"SM\",4", SMS_AT_LINE_URC, SMS_AT_URC_CDSI, 0},
      {"RING", SMS_AT_LINE_URC, SMS_AT_URC_RING, 0},
      {"+CREG: 1", SMS_AT_LINE_URC, SMS_AT_URC_CREG, 0},
      {"+CEREG: 5,\"1A2B\",\"01C3F2\",7", SMS_AT_LINE_URC, SMS_AT_URC_CEREG, 0},
      {"+CPIN: READY", SMS_AT_LINE_URC, SMS_AT_URC_CPIN, 0},
      {"RDY", SMS_AT_LINE_URC, SMS_AT_URC_BOOT, 0},
      {"^SYSSTART", SMS_AT_LINE_URC, SMS_AT_URC_BOOT, 0},
      {"Call Ready", SMS_AT_LINE_URC, SMS_AT_URC_READY, 0},
      {"SMS Ready", SMS_AT_LINE_URC, SMS_AT_URC_READY, 0},
      {"^RSSI:17", SMS_AT_LINE_URC, SMS_AT_URC_VENDOR, 0},
      {"^BOOT:28457931,0,0,0,72", SMS_AT_LINE_URC, SMS_AT_URC_VENDOR, 0},
      {"^MODE:5,4", SMS_AT_LINE_URC, SMS_AT_URC_VENDOR, 0},
      {"^SRVST:2", SMS_AT_LINE_URC, SMS_AT_URC_VENDOR, 0},
      {"^SMMEMFULL: \"SM\"", SMS_AT_LINE_URC, SMS_AT_URC_SMSFULL, 0},
      {"+QIND: \"smsfull\",\"SM\"", SMS_AT_LINE_URC, SMS_AT_URC_SMSFULL, 0},
      {"+QIND: SMS DONE", SMS_AT_LINE_URC, SMS_AT_URC_VENDOR, 0},
      {"+CMGL: 1,0,,23", SMS_AT_LINE_INFO, SMS_AT_URC_NONE, 0},
      {"07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
       SMS_AT_LINE_INFO, SMS_AT_URC_NONE, 0},
      {"Quectel", SMS_AT_LINE_INFO, SMS_AT_URC_NONE, 0},
      {"^", SMS_AT_LINE_INFO, SMS_AT_URC_NONE, 0},
      {"RINGS", SMS_AT_LINE_INFO, SMS_AT_URC_NONE, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sms_at_line_t info;
    const char *l = cases[i].line;
    sms_at_line_kind_t k = sms_at_classify_line(l, strlen(l), &info);
    if (k != cases[i].kind || info.urc != cases[i].urc ||
        ((k == SMS_AT_LINE_CME_ERROR || k == SMS_AT_LINE_CMS_ERROR) && info.code != cases[i].code))
      fail_msg("\"%s\": kind %d urc %d code %d, expected %d %d %d", l, k, info.urc, info.code,
               cases[i].kind, cases[i].urc, cases[i].code);
  }
  sms_at_line_t info;
  sms_at_classify_line("+CMT: ,24", 9, &info);
  assert_true(info.urc_has_pdu_line);
  sms_at_classify_line("+CMTI: \"SM\",3", 13, &info);
  assert_false(info.urc_has_pdu_line);
  /* Only the given range is read. */
  assert_int_equal(sms_at_classify_line("OKAY", 2, NULL), SMS_AT_LINE_OK);
}

static void test_helpers(void **state) {
  (void)state;
  char buf[64];
  const char *f[8];
  bool q[8];
  int n = sms_at_split_fields(" 1,\"a,b\" , 23 ,,\"\"", buf, sizeof(buf), f, q, 8);
  assert_int_equal(n, 5);
  assert_string_equal(f[0], "1");
  assert_false(q[0]);
  assert_string_equal(f[1], "a,b");
  assert_true(q[1]);
  assert_string_equal(f[2], "23");
  assert_string_equal(f[3], "");
  assert_string_equal(f[4], "");
  assert_true(q[4]);
  assert_int_equal(sms_at_split_fields("1,2,3", buf, sizeof(buf), f, NULL, 2), -1);
  assert_int_equal(sms_at_split_fields("123456789", buf, 4, f, NULL, 2), -1);
  assert_int_equal(sms_at_split_fields("\"unterminated", buf, sizeof(buf), f, NULL, 2), 1);
  assert_string_equal(f[0], "unterminated");

  int v;
  assert_true(sms_at_parse_int("42", &v));
  assert_int_equal(v, 42);
  assert_false(sms_at_parse_int("", &v));
  assert_false(sms_at_parse_int("4x", &v));
  assert_false(sms_at_parse_int("-1", &v));
  assert_false(sms_at_parse_int("99999999999", &v));

  uint8_t out[4];
  size_t len;
  assert_int_equal(gw_hex_decode("00aFfF", 6, out, sizeof(out), &len), GW_OK);
  assert_int_equal(len, 3);
  assert_int_equal(out[1], 0xaf);
  assert_int_not_equal(gw_hex_decode("0", 1, out, sizeof(out), &len), GW_OK);
  assert_int_not_equal(gw_hex_decode("0G", 2, out, sizeof(out), &len), GW_OK);
  assert_int_not_equal(gw_hex_decode("0000000000", 10, out, sizeof(out), &len), GW_OK);
  char hex[8];
  gw_hex_encode((const uint8_t *)"\x01\xab\xff", 3, hex, sizeof(hex));
  assert_string_equal(hex, "01ABFF");

  assert_string_equal(sms_at_after_prefix("+CSQ: 21,99", "+CSQ:"), "21,99");
  assert_null(sms_at_after_prefix("+CSQ: 21,99", "+CREG:"));

  /* +CREG: reply "<n>,<stat>" and unsolicited "<stat>[,<lac>,<ci>]" */
  assert_int_equal(sms_at_parse_reg_stat("0,1"), 1);
  assert_int_equal(sms_at_parse_reg_stat("2,5,\"1A2B\",\"01C3F2\",7"), 5);
  assert_int_equal(sms_at_parse_reg_stat("1"), 1);
  assert_int_equal(sms_at_parse_reg_stat("5,\"1A2B\",\"01C3F2\""), 5);
  assert_int_equal(sms_at_parse_reg_stat("x"), -1);
  assert_int_equal(sms_at_parse_reg_stat(""), -1);

  assert_string_equal(sms_at_cms_text(322), "memory full");
  assert_string_equal(sms_at_cme_text(16), "incorrect password");
  assert_null(sms_at_cme_text(9999));
}

/* ---- the engine over a fake transport ---- */

typedef struct {
  gw_loop_t *loop;
  sms_at_engine_t *at;
  uint8_t written[8192];
  size_t written_len;
  size_t write_chunk; /* 0: take everything; else at most this many per writable event */
  bool blocked;
  bool want_write;
  bool fail_writes;
  /* URCs */
  sms_at_urc_kind_t urcs[32];
  char urc_lines[32][256];
  char urc_pdus[32][256];
  int urc_count;
} fixture_t;

typedef struct {
  int calls;
  sms_at_status_t status;
  int code;
  bool prompt_missing, payload_sent;
  char final_line[128];
  char lines[16][400];
  size_t line_count;
  /* what the transport had seen when the command completed */
  size_t written_at_done;
} outcome_t;

static ssize_t fake_write(void *arg, const uint8_t *data, size_t len) {
  fixture_t *fx = arg;
  if (fx->fail_writes)
    return -1;
  size_t n = len;
  if (fx->write_chunk) { /* one chunk per writable event, then the port "would block" */
    if (fx->blocked)
      return 0;
    fx->blocked = true;
    if (n > fx->write_chunk)
      n = fx->write_chunk;
  }
  if (fx->written_len + n > sizeof(fx->written))
    n = sizeof(fx->written) - fx->written_len;
  memcpy(fx->written + fx->written_len, data, n);
  fx->written_len += n;
  return (ssize_t)n;
}

static void fake_want_write(void *arg, bool want) {
  fixture_t *fx = arg;
  fx->want_write = want;
}

static void fake_urc(void *arg, const sms_at_urc_t *urc) {
  fixture_t *fx = arg;
  if (fx->urc_count == 32)
    return;
  fx->urcs[fx->urc_count] = urc->kind;
  snprintf(fx->urc_lines[fx->urc_count], 256, "%s", urc->line);
  snprintf(fx->urc_pdus[fx->urc_count], 256, "%s", urc->pdu_line ? urc->pdu_line : "");
  fx->urc_count++;
}

static fixture_t *current_fx;

static void record_done(void *arg, const sms_at_result_t *r) {
  outcome_t *o = arg;
  o->calls++;
  o->status = r->status;
  o->code = r->code;
  o->prompt_missing = r->prompt_missing;
  o->payload_sent = r->payload_sent;
  snprintf(o->final_line, sizeof(o->final_line), "%s", r->final_line);
  o->line_count = r->line_count;
  for (size_t i = 0; i < r->line_count && i < 16; i++)
    snprintf(o->lines[i], sizeof(o->lines[i]), "%s", r->lines[i]);
  o->written_at_done = current_fx ? current_fx->written_len : 0;
}

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof(*fx));
  if (!fx || gw_loop_new(&fx->loop) != GW_OK)
    return -1;
  sms_at_io_t io = {.arg = fx, .write = fake_write, .want_write = fake_want_write,
                    .on_urc = fake_urc};
  if (sms_at_engine_new(fx->loop, &io, 2000, &fx->at) != GW_OK)
    return -1;
  sms_at_engine_open(fx->at);
  current_fx = fx;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture_t *fx = *state;
  sms_at_engine_free(&fx->at);
  gw_loop_free(&fx->loop);
  free(fx);
  current_fx = NULL;
  return 0;
}

static void feed(fixture_t *fx, const char *s) {
  sms_at_engine_feed(fx->at, (const uint8_t *)s, strlen(s));
}

static void feed_bytewise(fixture_t *fx, const char *s) {
  for (; *s; s++)
    sms_at_engine_feed(fx->at, (const uint8_t *)s, 1);
}

static void submit(fixture_t *fx, const char *text, const char *expect, uint32_t timeout_ms,
                   const char *payload, outcome_t *o) {
  sms_at_command_t c = {.text = text,
                        .expect = expect,
                        .timeout_ms = timeout_ms,
                        .payload = (const uint8_t *)payload,
                        .payload_len = payload ? strlen(payload) : 0,
                        .done = record_done,
                        .arg = o};
  assert_int_equal(sms_at_engine_submit(fx->at, &c), GW_OK);
}

static bool written_is(const fixture_t *fx, const char *s) {
  return fx->written_len == strlen(s) && memcmp(fx->written, s, fx->written_len) == 0;
}

static void run_until_done(fixture_t *fx, const outcome_t *o) {
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (o->calls == 0 && gw_now_ms() < end)
    assert_int_equal(gw_loop_run_once(fx->loop, 50), GW_OK);
  assert_int_equal(o->calls, 1);
}

static void test_simple_and_echo(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CGMI", NULL, 0, NULL, &o);
  assert_true(written_is(fx, "AT+CGMI\r"));
  feed(fx, "AT+CGMI\r\r\nQuectel\r\n\r\nOK\r\n");
  assert_int_equal(o.calls, 1);
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
  assert_int_equal(o.line_count, 1);
  assert_string_equal(o.lines[0], "Quectel");
  assert_string_equal(o.final_line, "OK");
  assert_int_equal(fx->urc_count, 0);
}

static void test_queue_one_at_a_time(void **state) {
  fixture_t *fx = *state;
  outcome_t a = {0}, b = {0};
  submit(fx, "AT", NULL, 0, NULL, &a);
  submit(fx, "ATE0", NULL, 0, NULL, &b);
  assert_true(written_is(fx, "AT\r"));
  assert_int_equal(sms_at_engine_pending(fx->at), 2);
  feed(fx, "\r\nOK\r\n");
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 0);
  assert_true(written_is(fx, "AT\rATE0\r"));
  feed(fx, "\r\nERROR\r\n");
  assert_int_equal(b.status, SMS_AT_RESULT_ERROR);
  assert_int_equal(sms_at_engine_pending(fx->at), 0);
}

#define PDU1 "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
#define PDU2 "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B"

static void test_urc_inside_cmgl(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CMGL=4", "+CMGL:", 0, NULL, &o);
  feed(fx, "\r\n+CMGL: 1,0,,39\r\n" PDU1 "\r\n"
           "+CMTI: \"SM\",5\r\n"
           "^RSSI:17\r\n"
           "+CMGL: 2,1,,37\r\n" PDU2 "\r\n"
           "+CREG: 1\r\n"
           "\r\nOK\r\n");
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
  assert_int_equal(o.line_count, 4);
  assert_string_equal(o.lines[0], "+CMGL: 1,0,,39");
  assert_string_equal(o.lines[1], PDU1);
  assert_string_equal(o.lines[2], "+CMGL: 2,1,,37");
  assert_string_equal(o.lines[3], PDU2);
  assert_int_equal(fx->urc_count, 3);
  assert_int_equal(fx->urcs[0], SMS_AT_URC_CMTI);
  assert_string_equal(fx->urc_lines[0], "+CMTI: \"SM\",5");
  assert_int_equal(fx->urcs[1], SMS_AT_URC_VENDOR);
  assert_int_equal(fx->urcs[2], SMS_AT_URC_CREG);
}

static void test_cmt_two_lines(void **state) {
  fixture_t *fx = *state;
  /* Alone, and in the middle of a reply. */
  feed(fx, "\r\n+CMT: ,39\r\n" PDU1 "\r\n");
  assert_int_equal(fx->urc_count, 1);
  assert_int_equal(fx->urcs[0], SMS_AT_URC_CMT);
  assert_string_equal(fx->urc_lines[0], "+CMT: ,39");
  assert_string_equal(fx->urc_pdus[0], PDU1);

  outcome_t o = {0};
  submit(fx, "AT+CSQ", "+CSQ:", 0, NULL, &o);
  feed(fx, "\r\n+CMT: \"\",37\r\n" PDU2 "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
  assert_int_equal(fx->urc_count, 2);
  assert_string_equal(fx->urc_pdus[1], PDU2);
  assert_int_equal(o.line_count, 1);
  assert_string_equal(o.lines[0], "+CSQ: 20,99");

  /* A header whose PDU line never comes does not swallow the final result. */
  outcome_t p = {0};
  submit(fx, "AT", NULL, 0, NULL, &p);
  feed(fx, "\r\n+CDS: 25\r\nOK\r\n");
  assert_int_equal(p.calls, 1);
  assert_int_equal(p.status, SMS_AT_RESULT_OK);
  assert_int_equal(fx->urc_count, 3);
  assert_int_equal(fx->urcs[2], SMS_AT_URC_CDS);
  assert_string_equal(fx->urc_pdus[2], "");
}

static void test_reply_vs_urc_by_prefix(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CREG?", "+CREG:", 0, NULL, &o);
  feed(fx, "\r\n+CREG: 0,1\r\n\r\nOK\r\n");
  assert_int_equal(o.line_count, 1);
  assert_int_equal(fx->urc_count, 0);
  outcome_t p = {0};
  submit(fx, "AT+CPIN?", "+CPIN:", 0, NULL, &p);
  feed(fx, "\r\n+CREG: 5\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n");
  assert_int_equal(p.line_count, 1);
  assert_string_equal(p.lines[0], "+CPIN: SIM PIN");
  assert_int_equal(fx->urc_count, 1);
  assert_int_equal(fx->urcs[0], SMS_AT_URC_CREG);
}

static void prompt_case(fixture_t *fx, const char *prompt_bytes, bool bytewise) {
  fx->written_len = 0;
  outcome_t o = {0};
  submit(fx, "AT+CMGS=19", "+CMGS:", 0, "0011000B915121551532F40000AA0548656C6C6F", &o);
  assert_true(written_is(fx, "AT+CMGS=19\r"));
  if (bytewise)
    feed_bytewise(fx, prompt_bytes);
  else
    feed(fx, prompt_bytes);
  assert_true(written_is(fx, "AT+CMGS=19\r0011000B915121551532F40000AA0548656C6C6F\x1a"));
  feed(fx, "\r\n+CMGS: 42\r\n\r\nOK\r\n");
  assert_int_equal(o.calls, 1);
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
  assert_true(o.payload_sent);
  assert_int_equal(o.line_count, 1);
  assert_string_equal(o.lines[0], "+CMGS: 42");
}

static void test_prompt_variants(void **state) {
  fixture_t *fx = *state;
  prompt_case(fx, "\r\n> ", false);     /* the usual: no line end after it */
  prompt_case(fx, "\r\n>", false);      /* no space */
  prompt_case(fx, "\r\n> \r\n", false); /* with a line end */
  prompt_case(fx, ">", false);          /* bare */
  prompt_case(fx, "\r\n> ", true);      /* split across reads */
  prompt_case(fx, "AT+CMGS=19\r\r\n> ", false); /* after the echo */
  assert_int_equal(fx->urc_count, 0);

  /* Not waiting for a prompt: a ">" line is ignored. */
  outcome_t o = {0};
  submit(fx, "AT", NULL, 0, NULL, &o);
  feed(fx, "\r\n>\r\nOK\r\n");
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
  assert_int_equal(o.line_count, 0);
}

static void test_error_before_prompt(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CMGS=19", "+CMGS:", 0, "00", &o);
  feed(fx, "\r\n+CMS ERROR: 304\r\n");
  assert_int_equal(o.status, SMS_AT_RESULT_CMS_ERROR);
  assert_int_equal(o.code, 304);
  assert_false(o.payload_sent);
  assert_true(written_is(fx, "AT+CMGS=19\r"));
}

static void test_errors(void **state) {
  fixture_t *fx = *state;
  static const struct {
    const char *reply;
    sms_at_status_t status;
    int code;
  } cases[] = {
      {"+CME ERROR: 14\r\n", SMS_AT_RESULT_CME_ERROR, 14},
      {"+CME ERROR: SIM busy\r\n", SMS_AT_RESULT_CME_ERROR, 14},
      {"+CME ERROR: incorrect password\r\n", SMS_AT_RESULT_CME_ERROR, 16},
      {"+CMS ERROR: 322\r\n", SMS_AT_RESULT_CMS_ERROR, 322},
      {"+CMS ERROR: memory full\r\n", SMS_AT_RESULT_CMS_ERROR, 322},
      {"+CMS ERROR: frobnicated\r\n", SMS_AT_RESULT_CMS_ERROR, -1},
      {"ERROR\r\n", SMS_AT_RESULT_ERROR, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    outcome_t o = {0};
    submit(fx, "AT+CPIN?", "+CPIN:", 0, NULL, &o);
    feed(fx, cases[i].reply);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, cases[i].status);
    assert_int_equal(o.code, cases[i].code);
  }
}

static void test_timeout(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0}, next = {0};
  uint64_t start = gw_now_ms();
  submit(fx, "AT+CSQ", "+CSQ:", 100, NULL, &o);
  submit(fx, "AT", NULL, 0, NULL, &next);
  feed(fx, "\r\n+CSQ: 20,99\r\n"); /* a reply without final result */
  run_until_done(fx, &o);
  assert_true(gw_now_ms() - start >= 100);
  assert_int_equal(o.status, SMS_AT_RESULT_TIMEOUT);
  assert_false(o.prompt_missing);
  assert_int_equal(o.line_count, 1);
  assert_int_equal(sms_at_engine_stats(fx->at)->timeouts, 1);
  /* The next command went out after the timeout. */
  assert_true(written_is(fx, "AT+CSQ\rAT\r"));
  feed(fx, "OK\r\n");
  assert_int_equal(next.status, SMS_AT_RESULT_OK);
}

static void test_prompt_timeout_sends_esc(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  sms_at_command_t c = {.text = "AT+CMGS=5",
                        .expect = "+CMGS:",
                        .payload = (const uint8_t *)"0001",
                        .payload_len = 4,
                        .prompt_timeout_ms = 80,
                        .done = record_done,
                        .arg = &o};
  assert_int_equal(sms_at_engine_submit(fx->at, &c), GW_OK);
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (fx->written_len == strlen("AT+CMGS=5\r") && gw_now_ms() < end)
    assert_int_equal(gw_loop_run_once(fx->loop, 20), GW_OK);
  assert_true(written_is(fx, "AT+CMGS=5\r\x1b"));
  assert_int_equal(o.calls, 0);
  /* The modem answers the cancel: that OK belongs to the cancelled command. */
  feed(fx, "\r\nOK\r\n");
  assert_int_equal(o.calls, 1);
  assert_int_equal(o.status, SMS_AT_RESULT_TIMEOUT);
  assert_true(o.prompt_missing);
  assert_false(o.payload_sent);

  /* Without an answer to the ESC, the grace period ends it. */
  fx->written_len = 0;
  outcome_t p = {0};
  c.arg = &p;
  assert_int_equal(sms_at_engine_submit(fx->at, &c), GW_OK);
  run_until_done(fx, &p);
  assert_int_equal(p.status, SMS_AT_RESULT_TIMEOUT);
  assert_true(p.prompt_missing);
  assert_true(written_is(fx, "AT+CMGS=5\r\x1b"));
}

static void test_partial_lines(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CMGL=4", "+CMGL:", 0, NULL, &o);
  feed_bytewise(fx, "\r\n+CMGL: 1,0,,39\r\n" PDU1 "\r\n+CMTI: \"ME\",2\r\n\r\nOK\r\n");
  assert_int_equal(o.calls, 1);
  assert_int_equal(o.line_count, 2);
  assert_string_equal(o.lines[1], PDU1);
  assert_int_equal(fx->urc_count, 1);
  /* Lines ended by a lone \n or \r work too. */
  outcome_t p = {0};
  submit(fx, "AT+CSQ", "+CSQ:", 0, NULL, &p);
  feed(fx, "+CSQ: 1");
  feed(fx, "7,99\nO");
  feed(fx, "K\r");
  assert_int_equal(p.calls, 1);
  assert_string_equal(p.lines[0], "+CSQ: 17,99");
}

static void test_overlong_and_garbage(void **state) {
  fixture_t *fx = *state;
  outcome_t o = {0};
  submit(fx, "AT+CGMR", NULL, 0, NULL, &o);
  char *junk = malloc(3 * SMS_AT_LINE_MAX + 1);
  memset(junk, 'x', 3 * SMS_AT_LINE_MAX);
  junk[3 * SMS_AT_LINE_MAX] = '\0';
  feed(fx, "\r\n");
  feed(fx, junk);
  feed(fx, "\r\nEC25EFAR06A06M4G\r\n");
  free(junk);
  static const uint8_t garbage[] = {0xff, 0xfe, '\r', '\n', 0, 0x01, 'O', 0, 'K', 0x7f, '\r', '\n'};
  sms_at_engine_feed(fx->at, garbage, sizeof(garbage));
  assert_int_equal(o.calls, 1);
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
  /* The over-long line is gone; 0xff is kept as text, the control bytes are dropped. */
  assert_int_equal(o.line_count, 2);
  assert_string_equal(o.lines[0], "EC25EFAR06A06M4G");
  assert_string_equal(o.lines[1], "\xff\xfe");
  const sms_at_stats_t *st = sms_at_engine_stats(fx->at);
  assert_int_equal(st->overlong_lines, 1);
  assert_int_equal(st->garbage_bytes, 4);
  /* A line of exactly the limit is kept. */
  outcome_t p = {0};
  submit(fx, "AT+CGMR", NULL, 0, NULL, &p);
  char *full = malloc(SMS_AT_LINE_MAX + 1);
  memset(full, 'y', SMS_AT_LINE_MAX);
  full[SMS_AT_LINE_MAX] = '\0';
  feed(fx, full);
  feed(fx, "\r\nOK\r\n");
  assert_int_equal(p.line_count, 1);
  assert_int_equal(strlen(p.lines[0]) > 0, 1);
  free(full);
  assert_int_equal(st->overlong_lines, 1);
}

static void test_no_command_in_flight(void **state) {
  fixture_t *fx = *state;
  feed(fx, "\r\nOK\r\nHello there\r\nRING\r\n");
  const sms_at_stats_t *st = sms_at_engine_stats(fx->at);
  assert_int_equal(st->stray_finals, 1);
  assert_int_equal(fx->urc_count, 2);
  assert_int_equal(fx->urcs[0], SMS_AT_URC_UNKNOWN);
  assert_int_equal(fx->urcs[1], SMS_AT_URC_RING);
}

static void test_close_fails_everything(void **state) {
  fixture_t *fx = *state;
  outcome_t a = {0}, b = {0}, c = {0};
  submit(fx, "AT+CMGL=4", "+CMGL:", 0, NULL, &a);
  submit(fx, "AT+CMGD=1", NULL, 0, NULL, &b);
  feed(fx, "\r\n+CMGL: 1,0,,39\r\n");
  sms_at_engine_close(fx->at);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, SMS_AT_RESULT_CLOSED);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.status, SMS_AT_RESULT_CLOSED);
  sms_at_command_t cmd = {.text = "AT", .done = record_done, .arg = &c};
  assert_int_equal(sms_at_engine_submit(fx->at, &cmd), GW_ERR_IO);
  feed(fx, "OK\r\n"); /* ignored while closed */
  assert_int_equal(c.calls, 0);
  /* Reopened: a partial line from before is gone. */
  feed(fx, "+CMGL: 9");
  sms_at_engine_open(fx->at);
  fx->written_len = 0;
  submit(fx, "AT+CSQ", "+CSQ:", 0, NULL, &c);
  feed(fx, "+CSQ: 5,99\r\nOK\r\n");
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.line_count, 1);
  assert_string_equal(c.lines[0], "+CSQ: 5,99");
}

static void test_partial_writes(void **state) {
  fixture_t *fx = *state;
  fx->write_chunk = 3;
  outcome_t o = {0};
  submit(fx, "AT+CMGR=12", "+CMGR:", 0, NULL, &o);
  assert_true(fx->want_write);
  for (int i = 0; i < 10 && fx->want_write; i++) {
    fx->blocked = false;
    sms_at_engine_writable(fx->at);
  }
  assert_false(fx->want_write);
  assert_true(written_is(fx, "AT+CMGR=12\r"));
  feed(fx, "OK\r\n");
  assert_int_equal(o.status, SMS_AT_RESULT_OK);
}

static void test_submit_limits(void **state) {
  fixture_t *fx = *state;
  char *text = malloc(SMS_AT_TEXT_MAX + 2);
  memset(text, 'A', SMS_AT_TEXT_MAX + 1);
  text[SMS_AT_TEXT_MAX + 1] = '\0';
  sms_at_command_t c = {.text = text};
  assert_int_equal(sms_at_engine_submit(fx->at, &c), GW_ERR_TOOBIG);
  free(text);
  outcome_t o[SMS_AT_QUEUE_MAX + 2];
  memset(o, 0, sizeof(o));
  int full = 0;
  for (int i = 0; i < SMS_AT_QUEUE_MAX + 2; i++) {
    sms_at_command_t k = {.text = "AT", .done = record_done, .arg = &o[i]};
    if (sms_at_engine_submit(fx->at, &k) == GW_ERR_FULL)
      full++;
  }
  assert_int_equal(full, 1); /* one in flight, SMS_AT_QUEUE_MAX queued */
  sms_at_engine_close(fx->at); /* the outcomes live on this stack */
  for (int i = 0; i < SMS_AT_QUEUE_MAX + 1; i++)
    assert_int_equal(o[i].status, SMS_AT_RESULT_CLOSED);
}

static void close_in_callback(void *arg, const sms_at_result_t *r) {
  (void)r;
  fixture_t *fx = arg;
  sms_at_engine_close(fx->at);
}

static void test_close_inside_callback(void **state) {
  fixture_t *fx = *state;
  sms_at_command_t c = {.text = "AT", .done = close_in_callback, .arg = fx};
  assert_int_equal(sms_at_engine_submit(fx->at, &c), GW_OK);
  /* The rest of this read must not be processed after the close. */
  feed(fx, "OK\r\n+CMTI: \"SM\",1\r\n");
  assert_false(sms_at_engine_is_open(fx->at));
  assert_int_equal(fx->urc_count, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify),
      cmocka_unit_test(test_helpers),
      cmocka_unit_test_setup_teardown(test_simple_and_echo, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue_one_at_a_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_urc_inside_cmgl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cmt_two_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reply_vs_urc_by_prefix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prompt_variants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_before_prompt, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prompt_timeout_sends_esc, setup, teardown),
      cmocka_unit_test_setup_teardown(test_partial_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overlong_and_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_command_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_fails_everything, setup, teardown),
      cmocka_unit_test_setup_teardown(test_partial_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_submit_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_inside_callback, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
