/* Unit tests of the rate-limited log lines (gw_log.h): a flood of bad input writes a bounded
 * number of lines, and says how many it suppressed. stderr is captured in a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_log.h"

typedef struct {
  FILE *capture;
  int saved_stderr;
} capture_t;

static int capture_setup(void **state) {
  capture_t *c = calloc(1, sizeof(*c));
  c->capture = tmpfile();
  fflush(stderr);
  c->saved_stderr = dup(STDERR_FILENO);
  dup2(fileno(c->capture), STDERR_FILENO);
  gw_log_setup(GW_LOG_TO_STDERR, GW_LOG_INFO);
  *state = c;
  return 0;
}

static int capture_teardown(void **state) {
  capture_t *c = *state;
  fflush(stderr);
  dup2(c->saved_stderr, STDERR_FILENO);
  close(c->saved_stderr);
  fclose(c->capture);
  free(c);
  return 0;
}

/* Lines written so far that contain needle. */
static int lines_with(capture_t *c, const char *needle) {
  fflush(stderr);
  rewind(c->capture);
  char line[1200];
  int n = 0;
  while (fgets(line, sizeof(line), c->capture))
    n += strstr(line, needle) != NULL;
  return n;
}

static void test_burst_then_silence(void **state) {
  capture_t *c = *state;
  gw_log_limit_t limit = {0};
  for (int i = 0; i < 1000; i++)
    gw_log_limited(&limit, GW_LOG_WARNING, "test", "malformed datagram %d", i);
  assert_int_equal(lines_with(c, "malformed datagram"), GW_LOG_BURST);
  assert_int_equal(limit.suppressed, 1000 - GW_LOG_BURST);
  assert_int_equal(lines_with(c, "suppressed"), 0);
}

static void test_next_window_reports_suppressed(void **state) {
  capture_t *c = *state;
  gw_log_limit_t limit = {0};
  for (int i = 0; i < 100; i++)
    gw_log_limited(&limit, GW_LOG_WARNING, "test", "bad SMS %d", i);
  limit.window_start_ms -= GW_LOG_WINDOW_MS; /* the window has passed */
  gw_log_limited(&limit, GW_LOG_WARNING, "test", "bad SMS again");
  assert_int_equal(lines_with(c, "95 more lines like the next were suppressed"), 1);
  assert_int_equal(lines_with(c, "bad SMS again"), 1);
  assert_int_equal(limit.suppressed, 0);
  assert_int_equal(limit.logged, 1);
}

static void test_kinds_are_independent(void **state) {
  capture_t *c = *state;
  gw_log_limit_t a = {0}, b = {0};
  for (int i = 0; i < 50; i++) {
    gw_log_limited(&a, GW_LOG_WARNING, "test", "kind A");
    gw_log_limited(&b, GW_LOG_WARNING, "test", "kind B");
  }
  assert_int_equal(lines_with(c, "kind A"), GW_LOG_BURST);
  assert_int_equal(lines_with(c, "kind B"), GW_LOG_BURST);
}

static void test_below_level_costs_nothing(void **state) {
  capture_t *c = *state;
  gw_log_limit_t limit = {0};
  gw_log_limited(&limit, GW_LOG_DEBUG, "test", "debug line");
  assert_int_equal(lines_with(c, "debug line"), 0);
  assert_int_equal(limit.logged, 0);
  assert_int_equal(limit.suppressed, 0);
}

static void test_macro_keeps_one_limit_per_call_site(void **state) {
  capture_t *c = *state;
  for (int i = 0; i < 20; i++)
    GW_WARN_LIMITED("test", "call site one");
  for (int i = 0; i < 20; i++)
    GW_WARN_LIMITED("test", "call site two");
  assert_int_equal(lines_with(c, "call site one"), GW_LOG_BURST);
  assert_int_equal(lines_with(c, "call site two"), GW_LOG_BURST);
}

#define CAPTURED(fn) cmocka_unit_test_setup_teardown(fn, capture_setup, capture_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CAPTURED(test_burst_then_silence),
      CAPTURED(test_next_window_reports_suppressed),
      CAPTURED(test_kinds_are_independent),
      CAPTURED(test_below_level_costs_nothing),
      CAPTURED(test_macro_keeps_one_limit_per_call_site),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
