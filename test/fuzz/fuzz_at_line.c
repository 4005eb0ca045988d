/* libFuzzer target: the AT line parser (sms/at.c). Every byte a modem sends goes through the
 * line assembler and the pure classifier, and reply lines through the field splitter.
 * Seeds: test/fuzz/corpus/at_line/.
 *
 * The input is used three ways: as one line for sms_at_classify_line() and the reply helpers,
 * and as a byte stream fed to an engine with a command in flight (in two pieces, split where
 * the first byte says), so partial lines, prompts, URCs and over-long lines all get exercised.
 * Checks beyond "no crash": classification is deterministic, and every command completes exactly
 * once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "at.h"
#include "gw_text.h"
#include "gw_log.h"
#include "loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

static ssize_t sink_write(void *arg, const uint8_t *buf, size_t len) {
  (void)arg;
  (void)buf;
  return (ssize_t)len;
}

static void on_urc(void *arg, const sms_at_urc_t *urc) {
  (void)arg;
  check(urc->line != NULL);
  const char *p = strchr(urc->line, ':');
  if (p) {
    char buf[SMS_AT_LINE_MAX + 8];
    const char *f[16];
    bool q[16];
    int n = sms_at_split_fields(p + 1, buf, sizeof(buf), f, q, 16);
    for (int i = 0; i < n; i++)
      check(f[i] >= buf && f[i] < buf + sizeof(buf));
    (void)sms_at_parse_reg_stat(p + 1);
  }
  if (urc->pdu_line) {
    uint8_t pdu[SMS_AT_LINE_MAX / 2];
    size_t len;
    (void)gw_hex_decode(urc->pdu_line, strlen(urc->pdu_line), pdu, sizeof(pdu), &len);
  }
}

static int completions;

static void on_done(void *arg, const sms_at_result_t *r) {
  (void)arg;
  completions++;
  check(r->final_line != NULL);
  for (size_t i = 0; i < r->line_count; i++)
    check(strlen(r->lines[i]) <= SMS_AT_LINE_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gw_loop_t *loop;
  static sms_at_engine_t *engine;
  if (!loop) {
    gw_log_set_level(GW_LOG_ERR); /* over-long lines would flood the output */
    if (gw_loop_new(&loop) != 0)
      abort();
    sms_at_io_t io = {.write = sink_write, .on_urc = on_urc};
    if (sms_at_engine_new(loop, &io, 1000, &engine) != 0)
      abort();
  }

  /* 1. one line */
  /* Zeroed so the comparison below looks at fields, not at padding left uninitialised. */
  sms_at_line_t a, b;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  sms_at_classify_line((const char *)data, size, &a);
  sms_at_classify_line((const char *)data, size, &b);
  check(memcmp(&a, &b, sizeof(a)) == 0);
  check(a.kind <= SMS_AT_LINE_INFO && a.urc <= SMS_AT_URC_UNKNOWN);

  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char buf[256];
  const char *f[8];
  (void)sms_at_split_fields(text, buf, sizeof(buf), f, NULL, 8);
  int v;
  (void)sms_at_parse_int(text, &v);
  (void)sms_at_parse_reg_stat(text);
  (void)sms_at_after_prefix(text, "+CMGL:");
  uint8_t bin[64];
  size_t len;
  (void)gw_hex_decode(text, strlen(text), bin, sizeof(bin), &len);
  free(text);

  /* 2. a byte stream while commands run: one waiting for a prompt, one plain */
  completions = 0;
  sms_at_engine_open(engine);
  sms_at_command_t send = {.text = "AT+CMGS=19",
                           .expect = "+CMGS:",
                           .payload = (const uint8_t *)"0011",
                           .payload_len = 4,
                           .done = on_done};
  sms_at_command_t list = {.text = "AT+CMGL=4", .expect = "+CMGL:", .done = on_done};
  check(sms_at_engine_submit(engine, &send) == 0);
  check(sms_at_engine_submit(engine, &list) == 0);
  size_t cut = size ? data[0] % (size + 1) : 0;
  sms_at_engine_feed(engine, data, cut);
  sms_at_engine_feed(engine, data + cut, size - cut);
  sms_at_engine_close(engine);
  check(completions == 2);
  check(sms_at_engine_pending(engine) == 0);
  return 0;
}
