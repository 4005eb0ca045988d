/* Unit tests of the metrics endpoint: request-line routing (RFC 9112 3: method SP target SP
 * HTTP-version) and the Prometheus text format of the gateway's counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "metrics.h"

/* Routes a string given without its NUL, from an exact-size copy so ASan sees any overread. */
static gw_http_route_t route_n(const char *text, size_t len) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  gw_http_route_t r = gw_metrics_route(copy, len);
  free(copy);
  return r;
}

static gw_http_route_t route(const char *text) { return route_n(text, strlen(text)); }

/* ---- gw_metrics_route -------------------------------------------------------------------- */

static void test_route_get_metrics(void **state) {
  (void)state;
  assert_int_equal(route("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"), GW_HTTP_METRICS);
  assert_int_equal(route("GET /metrics HTTP/1.0\r\n\r\n"), GW_HTTP_METRICS);
  /* Only the request line is needed; a bare LF ends it too. */
  assert_int_equal(route("GET /metrics HTTP/1.1\r\n"), GW_HTTP_METRICS);
  assert_int_equal(route("GET /metrics HTTP/1.1\n"), GW_HTTP_METRICS);
}

static void test_route_head(void **state) {
  (void)state;
  assert_int_equal(route("HEAD /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_METRICS);
  assert_int_equal(route("HEAD / HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
}

static void test_route_not_found(void **state) {
  (void)state;
  assert_int_equal(route("GET / HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET /metric HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET /metricsx HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET /metrics/ HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET /METRICS HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
  assert_int_equal(route("GET metrics HTTP/1.1\r\n\r\n"), GW_HTTP_NOT_FOUND);
}

static void test_route_bad_method(void **state) {
  (void)state;
  assert_int_equal(route("POST /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  assert_int_equal(route("PUT /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  assert_int_equal(route("DELETE /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  /* Methods are case-sensitive (RFC 9110 9.1), and a prefix of GET is not GET. */
  assert_int_equal(route("get /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  assert_int_equal(route("GE /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  assert_int_equal(route("GETS /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
  assert_int_equal(route("HEADS /metrics HTTP/1.1\r\n\r\n"), GW_HTTP_BAD_METHOD);
}

static void test_route_incomplete(void **state) {
  (void)state;
  assert_int_equal(route_n("", 0), GW_HTTP_INCOMPLETE);
  assert_int_equal(route("G"), GW_HTTP_INCOMPLETE);
  assert_int_equal(route("GET /metrics"), GW_HTTP_INCOMPLETE);
  assert_int_equal(route("GET /metrics HTTP/1.1"), GW_HTTP_INCOMPLETE);
  assert_int_equal(route("GET /metrics HTTP/1.1\r"), GW_HTTP_INCOMPLETE);
  /* Even a request that is going to be refused waits for its line. */
  assert_int_equal(route("POST /x"), GW_HTTP_INCOMPLETE);
}

static void test_route_bad_request(void **state) {
  (void)state;
  assert_int_equal(route("\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("garbage\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route_n("\x00\x01\x02\xff\n", 5), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics\r\n"), GW_HTTP_BAD_REQUEST); /* HTTP/0.9 */
  assert_int_equal(route("GET /metrics \r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics HTTP/1.\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics HTTP/2.0\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics FTP/1.1\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics http/1.1\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /a b HTTP/1.1\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route(" GET /metrics HTTP/1.1\r\n"), GW_HTTP_BAD_REQUEST);
  /* The version must be on the first line, not found on a later one. */
  assert_int_equal(route("GET /metrics\r\nX: HTTP/1.1\r\n"), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route("GET /metrics\nHTTP/1.1 HTTP/1.1\n"), GW_HTTP_BAD_REQUEST);
  /* Garbage ahead of an otherwise valid line: the first line decides. */
  assert_int_equal(route("\r\nGET /metrics HTTP/1.1\r\n"), GW_HTTP_BAD_REQUEST);
}

/* The line arrives in two reads: incomplete until the newline, then routed. */
static void test_route_split_line(void **state) {
  (void)state;
  const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t eol = (size_t)(strchr(req, '\n') - req);
  for (size_t cut = 0; cut <= eol; cut++)
    assert_int_equal(route_n(req, cut), GW_HTTP_INCOMPLETE);
  for (size_t cut = eol + 1; cut <= strlen(req); cut++)
    assert_int_equal(route_n(req, cut), GW_HTTP_METRICS);
}

/* A client that never ends its line is refused once the request buffer (2048 bytes) is full. */
static void test_route_long_line(void **state) {
  (void)state;
  char *buf = malloc(4096);
  assert_non_null(buf);
  memcpy(buf, "GET /", 5);
  memset(buf + 5, 'a', 4096 - 5);
  assert_int_equal(route_n(buf, 2047), GW_HTTP_INCOMPLETE);
  assert_int_equal(route_n(buf, 2048), GW_HTTP_BAD_REQUEST);
  assert_int_equal(route_n(buf, 4096), GW_HTTP_BAD_REQUEST);
  /* A long target that does end is routed normally. */
  memcpy(buf + 2000, " HTTP/1.1\r\n", 11);
  assert_int_equal(route_n(buf, 2011), GW_HTTP_NOT_FOUND);
  free(buf);
}

/* ---- gw_metrics_format ------------------------------------------------------------------- */

typedef struct {
  gw_gateway_t *gw;
  char *out;
  size_t out_size;
} format_fixture_t;

static int format_setup(void **state) {
  format_fixture_t *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  f->gw = calloc(1, sizeof(*f->gw)); /* 64 KiB datagram buffer inside: not on the stack */
  f->out_size = 16384;
  f->out = malloc(f->out_size);
  if (!f->gw || !f->out || gw_device_table_init(&f->gw->devices, 16) != GW_OK)
    return -1;
  *state = f;
  return 0;
}

static int format_teardown(void **state) {
  format_fixture_t *f = *state;
  gw_device_table_clear(&f->gw->devices, NULL, NULL);
  free(f->gw);
  free(f->out);
  free(f);
  return 0;
}

static const char *format(format_fixture_t *f) {
  memset(f->out, 0x7f, f->out_size);
  size_t len = gw_metrics_format(f->gw, f->out, f->out_size);
  assert_true(len < f->out_size);
  assert_int_equal(strlen(f->out), len);
  return f->out;
}

/* text contains line as a whole line. */
static void assert_has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return;
  }
  fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_format_zero(void **state) {
  format_fixture_t *f = *state;
  const char *text = format(f);
  assert_has_line(text, "lwm2m_gw_malformed_total 0");
  assert_has_line(text, "lwm2m_gw_devices 0");
  assert_has_line(text, "lwm2m_gw_devices_registered 0");
  assert_has_line(text, "lwm2m_gw_observations 0");
  assert_has_line(text, "lwm2m_gw_queued_requests 0");
  assert_has_line(text, "# TYPE lwm2m_gw_devices gauge");
  /* Prometheus text ends with a newline. */
  assert_int_equal(text[strlen(text) - 1], '\n');
}

static void test_format_every_counter(void **state) {
  format_fixture_t *f = *state;
  const char *text = format(f);
  char line[256];
  int counters = 0;
#define CHECK_COUNTER(name, help)                                                              \
  snprintf(line, sizeof(line), "lwm2m_gw_%s_total 0", #name);                                  \
  assert_has_line(text, line);                                                                 \
  snprintf(line, sizeof(line), "# TYPE lwm2m_gw_%s_total counter", #name);                     \
  assert_has_line(text, line);                                                                 \
  snprintf(line, sizeof(line), "# HELP lwm2m_gw_%s_total %s", #name, help);                    \
  assert_has_line(text, line);                                                                 \
  counters++;
  GW_METRICS(CHECK_COUNTER)
#undef CHECK_COUNTER
  assert_int_equal(counters, sizeof(gw_metrics_t) / sizeof(uint64_t));
}

static void test_format_values(void **state) {
  format_fixture_t *f = *state;
  f->gw->metrics.datagrams_in = 12345;
  f->gw->metrics.malformed = 7;
  f->gw->metrics.devices_created = 1;
  f->gw->metrics.queued = UINT64_MAX;
  const char *text = format(f);
  assert_has_line(text, "lwm2m_gw_datagrams_in_total 12345");
  assert_has_line(text, "lwm2m_gw_malformed_total 7");
  assert_has_line(text, "lwm2m_gw_devices_created_total 1");
  assert_has_line(text, "lwm2m_gw_queued_total 18446744073709551615");
  assert_has_line(text, "lwm2m_gw_datagrams_out_total 0");
  assert_null(strstr(text, "lwm2m_gw_malformed_total 0"));
}

static void test_format_devices(void **state) {
  format_fixture_t *f = *state;
  gw_binding_t binding = {0};
  gw_device_t *devs[3];
  for (int i = 0; i < 3; i++) {
    gw_baddr_t a = {{0}};
    snprintf(a.text, sizeof(a.text), "127.0.0.1:%d", 40001 + i);
    devs[i] = gw_device_add(&f->gw->devices, &binding, &a, 4);
    assert_non_null(devs[i]);
  }
  devs[0]->registered = true;
  devs[2]->registered = true;
  assert_non_null(gw_observation_add(devs[0], (const uint8_t *)"\x01", 1, "/3/0"));
  assert_non_null(gw_observation_add(devs[1], (const uint8_t *)"\x02", 1, "/3/0"));
  assert_non_null(gw_observation_add(devs[1], (const uint8_t *)"\x03", 1, "/3303/0"));
  assert_non_null(gw_downlink_alloc(devs[2], true));
  assert_non_null(gw_downlink_alloc(devs[2], false)); /* in flight: not queued */
  const char *text = format(f);
  assert_has_line(text, "lwm2m_gw_devices 3");
  assert_has_line(text, "lwm2m_gw_devices_registered 2");
  assert_has_line(text, "lwm2m_gw_observations 3");
  assert_has_line(text, "lwm2m_gw_queued_requests 1");
}

/* A short buffer truncates, NUL-terminated, and reports the truncated length. */
static void test_format_truncated(void **state) {
  format_fixture_t *f = *state;
  const char *full = format(f);
  size_t full_len = strlen(full);
  char *copy = strdup(full);
  assert_non_null(copy);
  const size_t sizes[] = {1, 2, 10, 100, 1000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t size = sizes[i];
    assert_true(size <= full_len);
    char *small = malloc(size);
    assert_non_null(small);
    memset(small, 0x7f, size);
    size_t len = gw_metrics_format(f->gw, small, size);
    assert_int_equal(len, size - 1);
    assert_int_equal(small[size - 1], '\0');
    assert_memory_equal(small, copy, size - 1);
    free(small);
  }
  free(copy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_route_get_metrics),
      cmocka_unit_test(test_route_head),
      cmocka_unit_test(test_route_not_found),
      cmocka_unit_test(test_route_bad_method),
      cmocka_unit_test(test_route_incomplete),
      cmocka_unit_test(test_route_bad_request),
      cmocka_unit_test(test_route_split_line),
      cmocka_unit_test(test_route_long_line),
      cmocka_unit_test_setup_teardown(test_format_zero, format_setup, format_teardown),
      cmocka_unit_test_setup_teardown(test_format_every_counter, format_setup, format_teardown),
      cmocka_unit_test_setup_teardown(test_format_values, format_setup, format_teardown),
      cmocka_unit_test_setup_teardown(test_format_devices, format_setup, format_teardown),
      cmocka_unit_test_setup_teardown(test_format_truncated, format_setup, format_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
