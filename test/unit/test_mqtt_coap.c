/* Unit tests of the LwM2M-over-MQTT <-> CoAP translation (Transport 1.2.1 section 8 and 6.4).
 *
 * Vectors: MQTT messages are hand-encoded CBOR built from the 8.3 / 8.4 CDDL tables (the spec
 * prints only the Bootstrap-Request body { 1:0, 2:42 }); CoAP messages are hand-encoded per
 * RFC 7252 3 from the Transport 6.4 operation tables. Both were cross-checked with a separate
 * small encoder written in Python. Translated messages are serialized (gw_coap_serialize,
 * mqtt_cbor_encode) and compared byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_coap.h"

#define BIT(k) MQTT_CBOR_BIT(MQTT_CBOR_KEY_##k)
#define RD MQTT_CBOR_IFACE_RD
#define BS MQTT_CBOR_IFACE_BS

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *const ep_name = "node-1";

/* Decodes a hand-encoded MQTT message and checks it against the 8.3 tables. */
static mqtt_cbor_msg_t decode_ok(const uint8_t *cbor, size_t len, mqtt_cbor_iface_t iface) {
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(cbor, len, &msg), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&msg, iface, NULL), MQTT_CBOR_OK);
  return msg;
}

static void assert_coap_bytes(const gw_coap_msg_t *msg, const uint8_t *want, size_t want_len) {
  uint8_t buf[1024];
  size_t n = gw_coap_serialize(msg, buf, sizeof buf);
  assert_int_equal(n, want_len);
  assert_memory_equal(buf, want, want_len);
}

static void assert_mqtt_bytes(const mqtt_cbor_msg_t *msg, const uint8_t *want, size_t want_len) {
  uint8_t buf[512];
  long n = mqtt_cbor_encode(msg, buf, sizeof buf);
  assert_int_equal(n, (long)want_len);
  assert_memory_equal(buf, want, want_len);
}

static void assert_bytes_str(const mqtt_cbor_bytes_t *b, const char *s) {
  assert_int_equal(b->len, strlen(s));
  assert_memory_equal(b->ptr, s, b->len);
}

/* Uplink translation of a hand-encoded message with a fresh scratch buffer. */
static int uplink(const uint8_t *cbor, size_t len, mqtt_cbor_iface_t iface, const char *location,
                  uint16_t mid, gw_coap_msg_t *out) {
  static mqtt_coap_scratch_t scratch;
  scratch.used = 0;
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(cbor, len, &msg), MQTT_CBOR_OK);
  mqtt_coap_uplink_ctx_t ctx = {ep_name, location};
  return mqtt_coap_uplink_request(&msg, iface, &ctx, mid, out, &scratch);
}

/* A server request built option by option; values borrow string literals or `uints`. */
typedef struct {
  gw_coap_msg_t msg;
  uint8_t uints[8][4];
  size_t uint_count;
} test_req_t;

static void req_init(test_req_t *r, uint8_t code, const char *path) {
  memset(r, 0, sizeof *r);
  gw_coap_msg_init(&r->msg, GW_COAP_CON, code, 0x0101);
  static const uint8_t token[] = {0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(gw_coap_set_token(&r->msg, token, sizeof token), 0);
  while (*path) {
    size_t n = strcspn(path, "/");
    assert_int_equal(gw_coap_add_option(&r->msg, GW_COAP_OPT_URI_PATH,
                                        (const uint8_t *)path, n), 0);
    path += n + (path[n] == '/');
  }
}

static void req_uint(test_req_t *r, uint16_t number, uint32_t v) {
  assert_true(r->uint_count < 8);
  uint8_t *buf = r->uints[r->uint_count++];
  size_t n = gw_coap_encode_uint(buf, v);
  assert_int_equal(gw_coap_add_option(&r->msg, number, buf, n), 0);
}

static void req_query(test_req_t *r, const char *arg) {
  assert_int_equal(gw_coap_add_option(&r->msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)arg,
                                      strlen(arg)), 0);
}

static void req_payload(test_req_t *r, const void *payload, size_t len) {
  r->msg.payload = payload;
  r->msg.payload_len = len;
}

static void expect_op(const test_req_t *r, mqtt_cbor_iface_t iface, int want) {
  uint64_t op = 999;
  int err = mqtt_coap_downlink_op(&r->msg, iface, &op);
  if (want < 0) { /* -code: an error answer */
    assert_int_equal(err, -want);
    assert_int_equal(op, 999);
  } else {
    assert_int_equal(err, 0);
    assert_int_equal(op, (uint64_t)want);
  }
}

/* Classifies, translates with token and compares the encoded MQTT message. */
static void expect_downlink(const test_req_t *r, mqtt_cbor_iface_t iface, uint64_t want_op,
                            uint64_t token, const uint8_t *want, size_t want_len) {
  uint64_t op;
  assert_int_equal(mqtt_coap_downlink_op(&r->msg, iface, &op), 0);
  assert_int_equal(op, want_op);
  mqtt_coap_scratch_t scratch = {.used = 0};
  mqtt_cbor_msg_t out;
  assert_int_equal(mqtt_coap_downlink_request(&r->msg, op, token, &out, &scratch), 0);
  assert_int_equal(mqtt_cbor_validate(&out, iface, NULL), MQTT_CBOR_OK);
  assert_mqtt_bytes(&out, want, want_len);
}

/* The CoAP code downlink_request answers for a Write-Attributes / Discover query. */
static int request_error(const test_req_t *r, mqtt_cbor_iface_t iface) {
  uint64_t op;
  assert_int_equal(mqtt_coap_downlink_op(&r->msg, iface, &op), 0);
  mqtt_coap_scratch_t scratch = {.used = 0};
  mqtt_cbor_msg_t out;
  return mqtt_coap_downlink_request(&r->msg, op, 1, &out, &scratch);
}

/* ---- topics (8.2) ----------------------------------------------------------------------- */

static int parse(const char *topic, size_t *idx, mqtt_cbor_iface_t *iface, const char **ep,
                 size_t *ep_len) {
  static const char *const prefixes[] = {"", "tenant-a", "a/b", "a"};
  return mqtt_topic_parse(topic, prefixes, 4, idx, iface, ep, ep_len);
}

static void assert_topic(const char *topic, size_t want_idx, mqtt_cbor_iface_t want_iface,
                         const char *want_ep) {
  size_t idx = 99, ep_len = 0;
  mqtt_cbor_iface_t iface;
  const char *ep = NULL;
  assert_int_equal(parse(topic, &idx, &iface, &ep, &ep_len), 0);
  assert_int_equal(idx, want_idx);
  assert_int_equal(iface, want_iface);
  assert_int_equal(ep_len, strlen(want_ep));
  assert_memory_equal(ep, want_ep, ep_len);
  assert_ptr_equal(ep, topic + strlen(topic) - ep_len); /* points into the topic */
}

static int parse_result(const char *topic) {
  size_t idx, ep_len;
  mqtt_cbor_iface_t iface;
  const char *ep;
  return parse(topic, &idx, &iface, &ep, &ep_len);
}

static void test_topic_parse(void **state) {
  (void)state;
  /* 8.3.1 example topic, with the "tenant-a" prefix. */
  assert_topic("tenant-a/lwm2m/bs/b1cccdea-22ca-4448-bcf7-do7317ee0361", 1, BS,
               "b1cccdea-22ca-4448-bcf7-do7317ee0361");
  assert_topic("lwm2m/rd/node-1", 0, RD, "node-1");
  assert_topic("a/b/lwm2m/rd/x", 2, RD, "x");
  assert_topic("a/lwm2m/bs/x", 3, BS, "x");
  /* UTF-8 endpoints: 2-byte and 4-byte sequences. */
  assert_topic("lwm2m/rd/caf\xc3\xa9", 0, RD, "caf\xc3\xa9");
  assert_topic("lwm2m/rd/\xf0\x9f\x98\x80", 0, RD, "\xf0\x9f\x98\x80");

  /* Longest prefix wins whatever the order: "" would leave "lwm2m/rd/x" (invalid). */
  static const char *const nested[] = {"", "lwm2m/rd"};
  static const char *const nested_rev[] = {"lwm2m/rd", ""};
  size_t idx;
  mqtt_cbor_iface_t iface;
  const char *ep;
  size_t ep_len;
  assert_int_equal(mqtt_topic_parse("lwm2m/rd/lwm2m/rd/x", nested, 2, &idx, &iface, &ep,
                                    &ep_len), 0);
  assert_int_equal(idx, 1);
  assert_int_equal(ep_len, 1);
  assert_int_equal(mqtt_topic_parse("lwm2m/rd/lwm2m/rd/x", nested_rev, 2, &idx, &iface, &ep,
                                    &ep_len), 0);
  assert_int_equal(idx, 0);
  /* Only "" configured: a prefixed topic is no match. */
  assert_int_equal(mqtt_topic_parse("tenant-a/lwm2m/rd/x", nested, 1, &idx, &iface, &ep,
                                    &ep_len), -1);
  assert_int_equal(mqtt_topic_parse("lwm2m/rd/x", NULL, 0, &idx, &iface, &ep, &ep_len), -1);

  /* Wrong shapes. */
  assert_int_equal(parse_result("tenant-a/lwm2m/xx/ep"), -1);
  assert_int_equal(parse_result("tenant-a/lwm2m/rd"), -1);
  assert_int_equal(parse_result("tenant-a/lwm2m/rdx/ep"), -1);
  assert_int_equal(parse_result("tenant-a/lwm2m"), -1);
  assert_int_equal(parse_result("tenant-b/lwm2m/rd/ep"), -1);
  assert_int_equal(parse_result("tenant-a/LWM2M/rd/ep"), -1);
  assert_int_equal(parse_result("/lwm2m/rd/ep"), -1);
  assert_int_equal(parse_result(""), -1);

  /* Invalid endpoints. */
  assert_int_equal(parse_result("tenant-a/lwm2m/rd/"), -2);
  assert_int_equal(parse_result("lwm2m/rd/a+b"), -2);
  assert_int_equal(parse_result("lwm2m/rd/#"), -2);
  assert_int_equal(parse_result("lwm2m/rd/a/b"), -2);
  assert_int_equal(parse_result("lwm2m/rd/\xc3\x28"), -2);         /* bad continuation */
  assert_int_equal(parse_result("lwm2m/rd/\xc0\xaf"), -2);         /* overlong '/' */
  assert_int_equal(parse_result("lwm2m/rd/\xed\xa0\x80"), -2);     /* surrogate */
  assert_int_equal(parse_result("lwm2m/rd/\xf4\x90\x80\x80"), -2); /* above U+10FFFF */
  assert_int_equal(parse_result("lwm2m/rd/\xe2\x82"), -2);         /* truncated */
  assert_int_equal(parse_result("lwm2m/rd/\xff"), -2);
  assert_int_equal(parse_result("lwm2m/rd/a\x01"), -2);
  assert_int_equal(parse_result("lwm2m/rd/a\x1f"), -2);
  assert_int_equal(parse_result("lwm2m/rd/a\x7f"), -2);
  char topic[256] = "lwm2m/rd/";
  memset(topic + 9, 'e', MQTT_EP_MAX);
  topic[9 + MQTT_EP_MAX] = '\0';
  assert_int_equal(parse_result(topic), 0); /* exactly MQTT_EP_MAX bytes */
  topic[9 + MQTT_EP_MAX] = 'e';
  topic[10 + MQTT_EP_MAX] = '\0';
  assert_int_equal(parse_result(topic), -2);
}

static void test_topic_build(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(mqtt_topic_build("tenant-a", RD, "node-1", out, sizeof out), 24);
  assert_string_equal(out, "tenant-a/lwm2m/rd/node-1");
  assert_int_equal(mqtt_topic_build("", BS, "node-1", out, sizeof out), 15);
  assert_string_equal(out, "lwm2m/bs/node-1");
  assert_int_equal(mqtt_topic_build(NULL, BS, "node-1", out, sizeof out), 15);
  assert_int_equal(mqtt_topic_build("a/b", RD, "x", out, sizeof out), 14);
  assert_string_equal(out, "a/b/lwm2m/rd/x");
  /* Round trip through parse. */
  size_t idx, ep_len;
  mqtt_cbor_iface_t iface;
  const char *ep;
  assert_int_equal(parse(out, &idx, &iface, &ep, &ep_len), 0);
  assert_int_equal(idx, 2);
  /* The terminating NUL must fit too. */
  assert_int_equal(mqtt_topic_build("a/b", RD, "x", out, 15), 14);
  assert_int_equal(mqtt_topic_build("a/b", RD, "x", out, 14), 0);
  assert_int_equal(mqtt_topic_build("a/b", RD, "x", NULL, 0), 0);

  assert_int_equal(mqtt_topic_filter("tenant-a", RD, out, sizeof out), 19);
  assert_string_equal(out, "tenant-a/lwm2m/rd/#");
  assert_int_equal(mqtt_topic_filter("", BS, out, sizeof out), 10);
  assert_string_equal(out, "lwm2m/bs/#");
  assert_int_equal(mqtt_topic_filter("", BS, out, 11), 10);
  assert_int_equal(mqtt_topic_filter("", BS, out, 10), 0);
  assert_int_equal(mqtt_topic_filter("", BS, out, 1), 0);
}

/* ---- uplink (8.3.1, 8.3.2, 8.3.4 -> Transport 6.4.2, 6.4.3, 6.4.5) ----------------------- */

/* Register { 1:6, 2:43, 3:"node-1", 7:'</1/0>,</3/0>', 8:3600, 9:"1.2", 10:"UQ",
 * 11:"15551234567" } with every registration key of 8.3.2 that table 8.7-1 can carry. */
static const uint8_t mqtt_register[] = {
    0xa8, 0x01, 0x06, 0x02, 0x18, 0x2b, 0x03, 0x66, 0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x31, 0x07,
    0x4d, 0x3c, 0x2f, 0x31, 0x2f, 0x30, 0x3e, 0x2c, 0x3c, 0x2f, 0x33, 0x2f, 0x30, 0x3e, 0x08,
    0x19, 0x0e, 0x10, 0x09, 0x63, 0x31, 0x2e, 0x32, 0x0a, 0x62, 0x55, 0x51, 0x0b, 0x6b, 0x31,
    0x35, 0x35, 0x35, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37};
/* CON POST mid 0x1234, token 00..00 2b, Uri-Path "rd", Content-Format 40, Uri-Query ep=node-1,
 * lt=3600, lwm2m=1.2, b=UQ, sms=15551234567, payload '</1/0>,</3/0>'. */
static const uint8_t coap_register[] = {
    0x48, 0x02, 0x12, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2b, 0xb2, 0x72, 0x64,
    0x11, 0x28, 0x39, 0x65, 0x70, 0x3d, 0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x31, 0x07, 0x6c, 0x74,
    0x3d, 0x33, 0x36, 0x30, 0x30, 0x09, 0x6c, 0x77, 0x6d, 0x32, 0x6d, 0x3d, 0x31, 0x2e, 0x32,
    0x04, 0x62, 0x3d, 0x55, 0x51, 0x0d, 0x02, 0x73, 0x6d, 0x73, 0x3d, 0x31, 0x35, 0x35, 0x35,
    0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0xff, 0x3c, 0x2f, 0x31, 0x2f, 0x30, 0x3e, 0x2c,
    0x3c, 0x2f, 0x33, 0x2f, 0x30, 0x3e};
/* Update { 1:7, 2:44, 7:'</1/0>', 8:600, 10:"U", 11:"15551234567" }. */
static const uint8_t mqtt_update[] = {
    0xa6, 0x01, 0x07, 0x02, 0x18, 0x2c, 0x07, 0x46, 0x3c, 0x2f, 0x31, 0x2f, 0x30, 0x3e, 0x08,
    0x19, 0x02, 0x58, 0x0a, 0x61, 0x55, 0x0b, 0x6b, 0x31, 0x35, 0x35, 0x35, 0x31, 0x32, 0x33,
    0x34, 0x35, 0x36, 0x37};
/* CON POST /rd/5a3f?lt=600&b=U&sms=15551234567, Content-Format 40, payload '</1/0>'. */
static const uint8_t coap_update[] = {
    0x48, 0x02, 0x12, 0x35, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2c, 0xb2, 0x72, 0x64,
    0x04, 0x35, 0x61, 0x33, 0x66, 0x11, 0x28, 0x36, 0x6c, 0x74, 0x3d, 0x36, 0x30, 0x30, 0x03,
    0x62, 0x3d, 0x55, 0x0d, 0x02, 0x73, 0x6d, 0x73, 0x3d, 0x31, 0x35, 0x35, 0x35, 0x31, 0x32,
    0x33, 0x34, 0x35, 0x36, 0x37, 0xff, 0x3c, 0x2f, 0x31, 0x2f, 0x30, 0x3e};
/* De-register { 1:8, 2:45 } -> CON DELETE /rd/5a3f. */
static const uint8_t mqtt_deregister[] = {0xa2, 0x01, 0x08, 0x02, 0x18, 0x2d};
static const uint8_t coap_deregister[] = {0x48, 0x04, 0x12, 0x36, 0x00, 0x00, 0x00,
                                          0x00, 0x00, 0x00, 0x00, 0x2d, 0xb2, 0x72,
                                          0x64, 0x04, 0x35, 0x61, 0x33, 0x66};
/* Send { 1:24, 2:46, 7:SenML CBOR [{0:"/3/0/9", 2:85}], 19:112 } -> POST /dp, CF 112. */
static const uint8_t mqtt_send[] = {0xa4, 0x01, 0x18, 0x18, 0x02, 0x18, 0x2e, 0x07, 0x4d,
                                    0x81, 0xa2, 0x00, 0x66, 0x2f, 0x33, 0x2f, 0x30, 0x2f,
                                    0x39, 0x02, 0x18, 0x55, 0x13, 0x18, 0x70};
static const uint8_t coap_send[] = {
    0x48, 0x02, 0x12, 0x37, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2e, 0xb2, 0x64, 0x70,
    0x11, 0x70, 0xff, 0x81, 0xa2, 0x00, 0x66, 0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x39, 0x02, 0x18,
    0x55};
/* 8.3.1 example { 1:0, 2:42 } on tenant-a/lwm2m/bs/b1cccdea-22ca-4448-bcf7-do7317ee0361. */
static const uint8_t mqtt_bs_request[] = {0xa2, 0x01, 0x00, 0x02, 0x18, 0x2a};
/* CON POST /bs?ep=b1cccdea-22ca-4448-bcf7-do7317ee0361, mid 1, token 00..00 2a. */
static const uint8_t coap_bs_request[] = {
    0x48, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0xb2, 0x62, 0x73,
    0x4d, 0x1a, 0x65, 0x70, 0x3d, 0x62, 0x31, 0x63, 0x63, 0x63, 0x64, 0x65, 0x61, 0x2d, 0x32,
    0x32, 0x63, 0x61, 0x2d, 0x34, 0x34, 0x34, 0x38, 0x2d, 0x62, 0x63, 0x66, 0x37, 0x2d, 0x64,
    0x6f, 0x37, 0x33, 0x31, 0x37, 0x65, 0x65, 0x30, 0x33, 0x36, 0x31};
/* { 1:0, 2:42, 4:112 } -> POST /bs?ep=node-1&pct=112. */
static const uint8_t mqtt_bs_request_pct[] = {0xa3, 0x01, 0x00, 0x02, 0x18, 0x2a, 0x04, 0x18, 0x70};
static const uint8_t coap_bs_request_pct[] = {
    0x48, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0xb2, 0x62, 0x73,
    0x49, 0x65, 0x70, 0x3d, 0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x31, 0x07, 0x70, 0x63, 0x74, 0x3d,
    0x31, 0x31, 0x32};
/* Bootstrap-Pack-Request { 1:6, 2:7, 4:11542 } -> GET /bspack?ep=node-1, Accept 11542. */
static const uint8_t mqtt_bspack[] = {0xa3, 0x01, 0x06, 0x02, 0x07, 0x04, 0x19, 0x2d, 0x16};
static const uint8_t coap_bspack[] = {
    0x48, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xb6, 0x62, 0x73,
    0x70, 0x61, 0x63, 0x6b, 0x49, 0x65, 0x70, 0x3d, 0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x31, 0x22,
    0x2d, 0x16};

static void test_uplink_register(void **state) {
  (void)state;
  gw_coap_msg_t out;
  assert_int_equal(uplink(mqtt_register, sizeof mqtt_register, RD, NULL, 0x1234, &out), 0);
  assert_coap_bytes(&out, coap_register, sizeof coap_register);
  /* The payload is borrowed from the MQTT message, not copied. */
  assert_ptr_equal(out.payload, mqtt_register + 16);

  /* ep key that differs from the topic's endpoint (8.2): 400. */
  uint8_t other[sizeof mqtt_register];
  memcpy(other, mqtt_register, sizeof other);
  other[13] = '2'; /* "node-2" */
  assert_int_equal(uplink(other, sizeof other, RD, NULL, 1, &out), 400);
  /* Without the ep key, the topic's endpoint is used: { 1:6, 2:1, 8:60, 9:"1.2" }. */
  static const uint8_t minimal[] = {0xa4, 0x01, 0x06, 0x02, 0x01, 0x08, 0x18,
                                    0x3c, 0x09, 0x63, 0x31, 0x2e, 0x32};
  assert_int_equal(uplink(minimal, sizeof minimal, RD, NULL, 1, &out), 0);
  char path[32];
  assert_string_equal(gw_coap_path_str(&out, GW_COAP_OPT_URI_PATH, path, sizeof path), "/rd");
  const gw_coap_option_t *q = gw_coap_find_option(&out, GW_COAP_OPT_URI_QUERY);
  assert_non_null(q);
  assert_int_equal(q->length, 9);
  assert_memory_equal(q->value, "ep=node-1", 9);
  assert_null(gw_coap_find_option(&out, GW_COAP_OPT_CONTENT_FORMAT)); /* no links, no CF */
  assert_int_equal(out.payload_len, 0);
}

static void test_uplink_update_deregister(void **state) {
  (void)state;
  gw_coap_msg_t out;
  assert_int_equal(uplink(mqtt_update, sizeof mqtt_update, RD, "/rd/5a3f", 0x1235, &out), 0);
  assert_coap_bytes(&out, coap_update, sizeof coap_update);
  /* A location without leading "/" or with empty segments gives the same path. */
  assert_int_equal(uplink(mqtt_update, sizeof mqtt_update, RD, "rd//5a3f/", 0x1235, &out), 0);
  assert_coap_bytes(&out, coap_update, sizeof coap_update);
  /* Before a Register there is no location: 404 (table 8.5-2). */
  assert_int_equal(uplink(mqtt_update, sizeof mqtt_update, RD, NULL, 1, &out), 404);
  assert_int_equal(uplink(mqtt_update, sizeof mqtt_update, RD, "", 1, &out), 404);

  assert_int_equal(
      uplink(mqtt_deregister, sizeof mqtt_deregister, RD, "/rd/5a3f", 0x1236, &out), 0);
  assert_coap_bytes(&out, coap_deregister, sizeof coap_deregister);
  assert_int_equal(uplink(mqtt_deregister, sizeof mqtt_deregister, RD, NULL, 1, &out), 404);

  /* An Update with only operation and token: POST {location}, nothing else. */
  static const uint8_t bare_update[] = {0xa2, 0x01, 0x07, 0x02, 0x01};
  assert_int_equal(uplink(bare_update, sizeof bare_update, RD, "/rd/5a3f", 2, &out), 0);
  assert_int_equal(out.code, GW_COAP_POST);
  assert_int_equal(out.option_count, 2);
  assert_int_equal(out.payload_len, 0);
}

static void test_uplink_send_and_bootstrap(void **state) {
  (void)state;
  gw_coap_msg_t out;
  assert_int_equal(uplink(mqtt_send, sizeof mqtt_send, RD, NULL, 0x1237, &out), 0);
  assert_coap_bytes(&out, coap_send, sizeof coap_send);

  /* The 8.3.1 example, endpoint from its topic. */
  static mqtt_coap_scratch_t scratch;
  mqtt_cbor_msg_t msg = decode_ok(mqtt_bs_request, sizeof mqtt_bs_request, BS);
  size_t idx;
  mqtt_cbor_iface_t iface;
  const char *ep;
  size_t ep_len;
  static const char *const prefixes[] = {"tenant-a"};
  assert_int_equal(mqtt_topic_parse("tenant-a/lwm2m/bs/b1cccdea-22ca-4448-bcf7-do7317ee0361",
                                    prefixes, 1, &idx, &iface, &ep, &ep_len), 0);
  assert_int_equal(iface, BS);
  mqtt_coap_uplink_ctx_t ctx = {ep, NULL}; /* the topic ends with the endpoint: NUL-terminated */
  assert_int_equal(mqtt_coap_uplink_request(&msg, iface, &ctx, 1, &out, &scratch), 0);
  assert_coap_bytes(&out, coap_bs_request, sizeof coap_bs_request);

  assert_int_equal(uplink(mqtt_bs_request_pct, sizeof mqtt_bs_request_pct, BS, NULL, 2, &out), 0);
  assert_coap_bytes(&out, coap_bs_request_pct, sizeof coap_bs_request_pct);
  assert_int_equal(uplink(mqtt_bspack, sizeof mqtt_bspack, BS, NULL, 3, &out), 0);
  assert_coap_bytes(&out, coap_bspack, sizeof coap_bspack);
  /* pct beyond a Content-Format (0..65535): { 1:0, 2:42, 4:65536 }. */
  static const uint8_t big_pct[] = {0xa3, 0x01, 0x00, 0x02, 0x18, 0x2a,
                                    0x04, 0x1a, 0x00, 0x01, 0x00, 0x00};
  assert_int_equal(uplink(big_pct, sizeof big_pct, BS, NULL, 2, &out), 400);
  /* An ep key that differs applies to the bootstrap ep= too: { 1:0, 2:42, 3:"x" }. */
  static const uint8_t bs_other_ep[] = {0xa3, 0x01, 0x00, 0x02, 0x18, 0x2a, 0x03, 0x61, 'x'};
  assert_int_equal(uplink(bs_other_ep, sizeof bs_other_ep, BS, NULL, 2, &out), 400);
}

static void test_uplink_errors(void **state) {
  (void)state;
  gw_coap_msg_t out;
  /* Codes that are no uplink operation of that interface: 501. */
  static const uint8_t op19[] = {0xa2, 0x01, 0x13, 0x02, 0x01};  /* unassigned */
  static const uint8_t read[] = {0xa2, 0x01, 0x09, 0x02, 0x01};  /* a server's operation */
  static const uint8_t notify[] = {0xa2, 0x01, 0x17, 0x02, 0x01}; /* mqtt_coap_notification */
  static const uint8_t bs_write[] = {0xa2, 0x01, 0x01, 0x02, 0x01};
  assert_int_equal(uplink(op19, sizeof op19, RD, "/rd/1", 1, &out), 501);
  assert_int_equal(uplink(read, sizeof read, RD, "/rd/1", 1, &out), 501);
  assert_int_equal(uplink(notify, sizeof notify, RD, "/rd/1", 1, &out), 501);
  assert_int_equal(uplink(bs_write, sizeof bs_write, BS, NULL, 1, &out), 501);
  assert_int_equal(uplink(mqtt_bs_request, sizeof mqtt_bs_request, RD, NULL, 1, &out), 501);
  assert_int_equal(uplink(mqtt_send, sizeof mqtt_send, BS, NULL, 1, &out), 501);
  /* A response (no operation) is not a request: { 2:1, 18:205 }. */
  static const uint8_t response[] = {0xa2, 0x02, 0x01, 0x12, 0x18, 0xcd};
  assert_int_equal(uplink(response, sizeof response, RD, NULL, 1, &out), 400);

  /* A string that does not fit the scratch buffer: 400. sms of 3000 bytes. */
  static uint8_t big[3020];
  size_t n = 0;
  big[n++] = 0xa4;
  big[n++] = 0x01, big[n++] = 0x06, big[n++] = 0x02, big[n++] = 0x01;
  big[n++] = 0x08, big[n++] = 0x00, big[n++] = 0x0b, big[n++] = 0x79;
  big[n++] = 3000 >> 8, big[n++] = 3000 & 0xff;
  memset(big + n, '1', 3000);
  n += 3000;
  assert_int_equal(uplink(big, n, RD, NULL, 1, &out), 400);
  /* A scratch buffer the caller left nearly full: 400, nothing written past it. */
  mqtt_cbor_msg_t msg = decode_ok(mqtt_register, sizeof mqtt_register, RD);
  mqtt_coap_scratch_t scratch = {.used = sizeof scratch.buf - 4};
  mqtt_coap_uplink_ctx_t ctx = {ep_name, NULL};
  assert_int_equal(mqtt_coap_uplink_request(&msg, RD, &ctx, 1, &out, &scratch), 400);
  assert_true(scratch.used <= sizeof scratch.buf);
  /* Register needs the topic's endpoint. */
  ctx.endpoint = NULL;
  scratch.used = 0;
  assert_int_equal(mqtt_coap_uplink_request(&msg, RD, &ctx, 1, &out, &scratch), 500);
}

/* Notify { 1:23, 2:5, 7:h'81A102182A', 19:112 } -> CON 2.05, token a1 b2, Observe 5, CF 112. */
static const uint8_t mqtt_notify[] = {0xa4, 0x01, 0x17, 0x02, 0x05, 0x07, 0x45, 0x81,
                                      0xa1, 0x02, 0x18, 0x2a, 0x13, 0x18, 0x70};
static const uint8_t coap_notify[] = {0x42, 0x45, 0x07, 0x77, 0xa1, 0xb2, 0x61, 0x05,
                                      0x61, 0x70, 0xff, 0x81, 0xa1, 0x02, 0x18, 0x2a};

static void test_notification(void **state) {
  (void)state;
  mqtt_cbor_msg_t msg = decode_ok(mqtt_notify, sizeof mqtt_notify, RD);
  static const uint8_t token[] = {0xa1, 0xb2};
  mqtt_coap_scratch_t scratch = {.used = 0};
  gw_coap_msg_t out;
  /* Only the low 24 bits of the sequence number travel (RFC 7641 3.4). */
  assert_int_equal(mqtt_coap_notification(&msg, token, 2, 0x7000005, 0x0777, &out, &scratch), 0);
  assert_coap_bytes(&out, coap_notify, sizeof coap_notify);
  /* Not a Notify, or a token no CoAP message can carry: 400. */
  mqtt_cbor_msg_t send = decode_ok(mqtt_send, sizeof mqtt_send, RD);
  assert_int_equal(mqtt_coap_notification(&send, token, 2, 1, 1, &out, &scratch), 400);
  static const uint8_t long_token[9] = {0};
  assert_int_equal(mqtt_coap_notification(&msg, long_token, 9, 1, 1, &out, &scratch), 400);
}

/* ---- CoAP responses to uplink requests -> 8.4 ------------------------------------------- */

/* ACK 2.01 Created, Location-Path rd/5a3f -> { 2:43, 18:201 }. */
static const uint8_t coap_created[] = {0x68, 0x41, 0x12, 0x34, 0x00, 0x00, 0x00,
                                       0x00, 0x00, 0x00, 0x00, 0x2b, 0x82, 0x72,
                                       0x64, 0x04, 0x35, 0x61, 0x33, 0x66};
static const uint8_t mqtt_created[] = {0xa2, 0x02, 0x18, 0x2b, 0x12, 0x18, 0xc9};
/* ACK 2.05, Content-Format 11542 (LwM2M CBOR), payload bf ff -> { 2:44, 7:h'BFFF', 18:205,
 * 19:11542 }. */
static const uint8_t coap_content[] = {0x68, 0x45, 0x12, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x00, 0x00, 0x2c, 0xc2, 0x2d, 0x16, 0xff, 0xbf, 0xff};
static const uint8_t mqtt_content[] = {0xa4, 0x02, 0x18, 0x2c, 0x07, 0x42, 0xbf, 0xff,
                                       0x12, 0x18, 0xcd, 0x13, 0x19, 0x2d, 0x16};

static void test_response_to_mqtt(void **state) {
  (void)state;
  gw_coap_msg_t resp;
  mqtt_cbor_msg_t out;
  assert_int_equal(gw_coap_parse(coap_created, sizeof coap_created, &resp), GW_COAP_PARSE_OK);
  uint64_t token = gw_coap_token_to_u64(resp.token, resp.token_len);
  assert_int_equal(mqtt_coap_response_to_mqtt(&resp, token, &out), 0);
  assert_mqtt_bytes(&out, mqtt_created, sizeof mqtt_created);
  assert_true(mqtt_cbor_result_allowed(RD, MQTT_CBOR_OP_REGISTER, out.result));

  assert_int_equal(gw_coap_parse(coap_content, sizeof coap_content, &resp), GW_COAP_PARSE_OK);
  assert_int_equal(mqtt_coap_response_to_mqtt(&resp, 44, &out), 0);
  assert_mqtt_bytes(&out, mqtt_content, sizeof mqtt_content);
  assert_ptr_equal(out.payload.ptr, coap_content + 16); /* borrowed */

  /* 4.13 is listed (table 8.5-3, Write) though not for Register: the codec maps it, the caller
   * may check mqtt_cbor_result_allowed(). */
  resp.code = GW_COAP_CODE(4, 13);
  assert_int_equal(mqtt_coap_response_to_mqtt(&resp, 44, &out), 0);
  assert_int_equal(out.result, 413);
  assert_false(mqtt_cbor_result_allowed(RD, MQTT_CBOR_OP_REGISTER, 413));
  /* Codes outside tables 8.5: 500 (8.5-5), and the caller is told. */
  static const uint8_t unlisted[] = {GW_COAP_CODE(4, 2), GW_COAP_CODE(2, 3), GW_COAP_CODE(5, 4),
                                     GW_COAP_CODE(2, 31), GW_COAP_CODE(4, 14)};
  for (size_t i = 0; i < sizeof unlisted; i++) {
    resp.code = unlisted[i];
    assert_int_equal(mqtt_coap_response_to_mqtt(&resp, 44, &out), MQTT_CBOR_ERR_RESULT);
    assert_int_equal(out.result, 500);
    assert_int_equal(out.token, 44);
  }
}

/* ---- downlink: which operation (Transport 6.4.2, 6.4.4, 6.4.5) -------------------------- */

enum {
  C400 = -(int)GW_COAP_CODE(4, 0),
  C405 = -(int)GW_COAP_CODE(4, 5),
  C415 = -(int)GW_COAP_CODE(4, 15)
};

static void test_downlink_op_rd(void **state) {
  (void)state;
  test_req_t r;
  static const uint8_t body[] = {0x81};
  req_init(&r, GW_COAP_GET, "3/0/1");
  expect_op(&r, RD, MQTT_CBOR_OP_READ);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 112); /* a data Accept stays a Read */
  expect_op(&r, RD, MQTT_CBOR_OP_READ);
  req_init(&r, GW_COAP_GET, "3/0");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  expect_op(&r, RD, MQTT_CBOR_OP_DISCOVER);
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  expect_op(&r, RD, MQTT_CBOR_OP_OBSERVE);
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 1);
  expect_op(&r, RD, MQTT_CBOR_OP_CANCEL_OBSERVE);
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 2); /* RFC 7641 defines only 0 and 1 for requests */
  expect_op(&r, RD, C400);

  /* Composites: FETCH / iPATCH on the root, paths in SenML-ETCH CBOR (322). */
  req_init(&r, GW_COAP_FETCH, "");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 322);
  expect_op(&r, RD, MQTT_CBOR_OP_READ_COMPOSITE);
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  expect_op(&r, RD, MQTT_CBOR_OP_OBSERVE_COMPOSITE);
  req_init(&r, GW_COAP_FETCH, "");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 320); /* SenML-ETCH JSON */
  expect_op(&r, RD, C415);
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  expect_op(&r, RD, C415);
  req_init(&r, GW_COAP_FETCH, "");
  expect_op(&r, RD, C415); /* no Content-Format */
  req_uint(&r, GW_COAP_OPT_OBSERVE, 1); /* Cancel-Observe-Composite: the paths are not read */
  expect_op(&r, RD, MQTT_CBOR_OP_CANCEL_OBSERVE);
  req_init(&r, GW_COAP_FETCH, "3");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 322);
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_IPATCH, "");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_COMPOSITE);
  req_init(&r, GW_COAP_IPATCH, "3/0");
  expect_op(&r, RD, C405);

  /* PUT: a body (or at least a Content-Format) is a Write, none is Write-Attributes. */
  req_init(&r, GW_COAP_PUT, "3/0/14");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  req_payload(&r, body, 1);
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_REPLACE);
  req_payload(&r, NULL, 0);
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_REPLACE); /* an empty string */
  req_init(&r, GW_COAP_PUT, "3/0/9");
  req_query(&r, "pmin=1");
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_ATTRIBUTES);
  req_init(&r, GW_COAP_PUT, "");
  expect_op(&r, RD, C405);

  /* POST by path depth; on a Resource the Content-Format tells Execute from Write. */
  req_init(&r, GW_COAP_POST, "3");
  expect_op(&r, RD, MQTT_CBOR_OP_CREATE);
  req_init(&r, GW_COAP_POST, "3/0");
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_PARTIAL);
  req_init(&r, GW_COAP_POST, "3/0/4");
  expect_op(&r, RD, MQTT_CBOR_OP_EXECUTE);
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  expect_op(&r, RD, MQTT_CBOR_OP_EXECUTE);
  req_init(&r, GW_COAP_POST, "3/0/4");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  expect_op(&r, RD, MQTT_CBOR_OP_WRITE_PARTIAL);
  req_init(&r, GW_COAP_POST, "3/0/4/1");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_POST, "");
  expect_op(&r, RD, C405);

  req_init(&r, GW_COAP_DELETE, "3/0");
  expect_op(&r, RD, MQTT_CBOR_OP_DELETE);
  req_init(&r, GW_COAP_DELETE, "");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_PATCH, "3/0");
  expect_op(&r, RD, C405);
  req_init(&r, 31, "3/0"); /* an unassigned method */
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_CONTENT, "3/0"); /* a response is no request */
  expect_op(&r, RD, C405);

  /* Paths that are no LwM2M path (Transport 6.4.4: 4.05). */
  req_init(&r, GW_COAP_GET, "abc");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_GET, "70000");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_GET, "65535/65535/65535/65535");
  expect_op(&r, RD, MQTT_CBOR_OP_READ);
  req_init(&r, GW_COAP_GET, "1/2/3/4/5");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_GET, "3//1");
  expect_op(&r, RD, C405);
  req_init(&r, GW_COAP_GET, "bs");
  expect_op(&r, RD, C405);
}

static void test_downlink_op_bs(void **state) {
  (void)state;
  test_req_t r;
  req_init(&r, GW_COAP_PUT, "1/0");
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_WRITE);
  req_init(&r, GW_COAP_PUT, "");
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_WRITE);
  req_init(&r, GW_COAP_GET, "1");
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_READ);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DISCOVER);
  req_init(&r, GW_COAP_GET, ""); /* Bootstrap-Discover may target "/" */
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DISCOVER);
  req_init(&r, GW_COAP_DELETE, ""); /* Bootstrap-Delete may target "/" */
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DELETE);
  req_init(&r, GW_COAP_DELETE, "1/0");
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DELETE);
  req_init(&r, GW_COAP_POST, "bs");
  expect_op(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_FINISH);
  req_init(&r, GW_COAP_POST, "bs/x");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_POST, "bsx");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_POST, "1");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_POST, "");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_FETCH, "");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_IPATCH, "");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_PATCH, "1");
  expect_op(&r, BS, C405);
  req_init(&r, GW_COAP_GET, "x");
  expect_op(&r, BS, C405);
  /* A Uri-Path "bs" with an embedded NUL is not "bs". */
  req_init(&r, GW_COAP_POST, "");
  assert_int_equal(gw_coap_add_option(&r.msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"bs\0", 3),
                   0);
  expect_op(&r, BS, C405);
}

/* ---- downlink: the MQTT request (8.3.1, 8.3.3, 8.3.4) ----------------------------------- */

/* CON GET /3/0/1, token de ad be ef -> Read { 1:9, 2:77, 5:"/3/0/1" }. */
static const uint8_t coap_read[] = {0x44, 0x01, 0x01, 0x01, 0xde, 0xad, 0xbe,
                                    0xef, 0xb1, 0x33, 0x01, 0x30, 0x01, 0x31};
static const uint8_t mqtt_read[] = {0xa3, 0x01, 0x09, 0x02, 0x18, 0x4d, 0x05,
                                    0x66, 0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x31};
/* { 1:11, 2:78, 5:"/3/0", 22:2 } */
static const uint8_t mqtt_discover[] = {0xa4, 0x01, 0x0b, 0x02, 0x18, 0x4e, 0x05,
                                        0x64, 0x2f, 0x33, 0x2f, 0x30, 0x16, 0x02};
/* { 1:12, 2:79, 5:"/3/0/14", 7:'+02', 19:0 } */
static const uint8_t mqtt_write_replace[] = {0xa5, 0x01, 0x0c, 0x02, 0x18, 0x4f, 0x05, 0x67,
                                             0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x31, 0x34, 0x07,
                                             0x43, 0x2b, 0x30, 0x32, 0x13, 0x00};
/* { 1:14, 2:80, 5:"/3/0/9", 12:1, 13:60, 14:20.5 (half), 15:0.1 (double), 16:2, 17:30,
 * 20:1, 21:10 } */
static const uint8_t mqtt_write_attrs[] = {
    0xab, 0x01, 0x0e, 0x02, 0x18, 0x50, 0x05, 0x66, 0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x39, 0x0c,
    0x01, 0x0d, 0x18, 0x3c, 0x0e, 0xf9, 0x4d, 0x20, 0x0f, 0xfb, 0x3f, 0xb9, 0x99, 0x99, 0x99,
    0x99, 0x99, 0x9a, 0x10, 0x02, 0x11, 0x18, 0x1e, 0x14, 0x01, 0x15, 0x0a};
/* { 1:16, 2:81, 5:"/3/0/4", 7:'0=\'x\'' } */
static const uint8_t mqtt_execute[] = {0xa4, 0x01, 0x10, 0x02, 0x18, 0x51, 0x05,
                                       0x66, 0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x34,
                                       0x07, 0x45, 0x30, 0x3d, 0x27, 0x78, 0x27};
/* { 1:17, 2:82, 5:"/3", 7:h'81', 19:112 } */
static const uint8_t mqtt_create[] = {0xa5, 0x01, 0x11, 0x02, 0x18, 0x52, 0x05, 0x62,
                                      0x2f, 0x33, 0x07, 0x41, 0x81, 0x13, 0x18, 0x70};
/* { 1:18, 2:83, 5:"/3/0" } */
static const uint8_t mqtt_delete[] = {0xa3, 0x01, 0x12, 0x02, 0x18, 0x53,
                                      0x05, 0x64, 0x2f, 0x33, 0x2f, 0x30};
/* SenML-ETCH CBOR [{0:"/3/0"}] and { 1:10, 2:84, 6:it }, { 1:21, 2:85, 6:it } */
static const uint8_t etch_paths[] = {0x81, 0xa1, 0x00, 0x64, 0x2f, 0x33, 0x2f, 0x30};
static const uint8_t mqtt_read_composite[] = {0xa3, 0x01, 0x0a, 0x02, 0x18, 0x54,
                                              0x06, 0x48, 0x81, 0xa1, 0x00, 0x64,
                                              0x2f, 0x33, 0x2f, 0x30};
static const uint8_t mqtt_observe_composite[] = {0xa3, 0x01, 0x15, 0x02, 0x18, 0x55,
                                                 0x06, 0x48, 0x81, 0xa1, 0x00, 0x64,
                                                 0x2f, 0x33, 0x2f, 0x30};
/* { 1:15, 2:86, 7:h'81', 19:112 } */
static const uint8_t mqtt_write_composite[] = {0xa4, 0x01, 0x0f, 0x02, 0x18, 0x56,
                                               0x07, 0x41, 0x81, 0x13, 0x18, 0x70};
/* { 1:22, 2:87 } */
static const uint8_t mqtt_cancel[] = {0xa2, 0x01, 0x16, 0x02, 0x18, 0x57};
/* { 1:1, 2:88, 5:"/1/0", 7:h'81', 19:112 } and { 1:5, 2:89 } */
static const uint8_t mqtt_bs_write[] = {0xa5, 0x01, 0x01, 0x02, 0x18, 0x58, 0x05, 0x64, 0x2f,
                                        0x31, 0x2f, 0x30, 0x07, 0x41, 0x81, 0x13, 0x18, 0x70};
static const uint8_t mqtt_bs_finish[] = {0xa2, 0x01, 0x05, 0x02, 0x18, 0x59};

static void test_downlink_request_dm(void **state) {
  (void)state;
  static const uint8_t one[] = {0x81};
  test_req_t r;
  memset(&r, 0, sizeof r);
  assert_int_equal(gw_coap_parse(coap_read, sizeof coap_read, &r.msg), GW_COAP_PARSE_OK);
  expect_downlink(&r, RD, MQTT_CBOR_OP_READ, 77, mqtt_read, sizeof mqtt_read);

  req_init(&r, GW_COAP_GET, "3/0");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  req_query(&r, "depth=2");
  expect_downlink(&r, RD, MQTT_CBOR_OP_DISCOVER, 78, mqtt_discover, sizeof mqtt_discover);

  req_init(&r, GW_COAP_PUT, "3/0/14");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  req_payload(&r, "+02", 3);
  expect_downlink(&r, RD, MQTT_CBOR_OP_WRITE_REPLACE, 79, mqtt_write_replace,
                  sizeof mqtt_write_replace);

  req_init(&r, GW_COAP_POST, "3/0");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  req_payload(&r, one, 1);
  static const uint8_t mqtt_write_partial[] = {0xa5, 0x01, 0x0d, 0x02, 0x01, 0x05,
                                               0x64, 0x2f, 0x33, 0x2f, 0x30, 0x07,
                                               0x41, 0x81, 0x13, 0x18, 0x70};
  expect_downlink(&r, RD, MQTT_CBOR_OP_WRITE_PARTIAL, 1, mqtt_write_partial,
                  sizeof mqtt_write_partial);

  req_init(&r, GW_COAP_POST, "3/0/4");
  req_payload(&r, "0='x'", 5);
  expect_downlink(&r, RD, MQTT_CBOR_OP_EXECUTE, 81, mqtt_execute, sizeof mqtt_execute);

  req_init(&r, GW_COAP_POST, "3");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  req_payload(&r, one, 1);
  expect_downlink(&r, RD, MQTT_CBOR_OP_CREATE, 82, mqtt_create, sizeof mqtt_create);

  req_init(&r, GW_COAP_DELETE, "3/0");
  expect_downlink(&r, RD, MQTT_CBOR_OP_DELETE, 83, mqtt_delete, sizeof mqtt_delete);

  /* Composites: paths = body, its Content-Format (322) describes paths, so no ct. */
  req_init(&r, GW_COAP_FETCH, "");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 322);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 112);
  req_payload(&r, etch_paths, sizeof etch_paths);
  expect_downlink(&r, RD, MQTT_CBOR_OP_READ_COMPOSITE, 84, mqtt_read_composite,
                  sizeof mqtt_read_composite);
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  expect_downlink(&r, RD, MQTT_CBOR_OP_OBSERVE_COMPOSITE, 85, mqtt_observe_composite,
                  sizeof mqtt_observe_composite);
  req_init(&r, GW_COAP_IPATCH, "");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  req_payload(&r, one, 1);
  expect_downlink(&r, RD, MQTT_CBOR_OP_WRITE_COMPOSITE, 86, mqtt_write_composite,
                  sizeof mqtt_write_composite);

  /* Cancel-Observe carries the operation and the observation's token only. */
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 1);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 112);
  expect_downlink(&r, RD, MQTT_CBOR_OP_CANCEL_OBSERVE, 87, mqtt_cancel, sizeof mqtt_cancel);
  /* Observe keeps the uri only. */
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  req_query(&r, "pmin=10");
  static const uint8_t mqtt_observe[] = {0xa3, 0x01, 0x14, 0x02, 0x01, 0x05, 0x66,
                                         0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x31};
  expect_downlink(&r, RD, MQTT_CBOR_OP_OBSERVE, 1, mqtt_observe, sizeof mqtt_observe);

  /* Mandatory ct missing (Transport 6.4.4: the Content-Format MUST be given): 4.00. */
  req_init(&r, GW_COAP_PUT, "3/0/14");
  req_payload(&r, "+02", 3);
  assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  req_init(&r, GW_COAP_POST, "3");
  req_payload(&r, one, 1);
  assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  /* An empty Write still has its (empty) payload key. */
  req_init(&r, GW_COAP_PUT, "3/0/14");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  static const uint8_t mqtt_empty_write[] = {0xa5, 0x01, 0x0c, 0x02, 0x01, 0x05, 0x67,
                                             0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x31, 0x34,
                                             0x07, 0x40, 0x13, 0x00};
  expect_downlink(&r, RD, MQTT_CBOR_OP_WRITE_REPLACE, 1, mqtt_empty_write,
                  sizeof mqtt_empty_write);
}

static void test_downlink_request_bootstrap(void **state) {
  (void)state;
  static const uint8_t one[] = {0x81};
  test_req_t r;
  req_init(&r, GW_COAP_PUT, "1/0");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  req_payload(&r, one, 1);
  expect_downlink(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_WRITE, 88, mqtt_bs_write, sizeof mqtt_bs_write);
  req_init(&r, GW_COAP_POST, "bs");
  expect_downlink(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_FINISH, 89, mqtt_bs_finish,
                  sizeof mqtt_bs_finish);
  /* "/" as the uri of a root Bootstrap-Delete: { 1:3, 2:1, 5:"/" }. */
  req_init(&r, GW_COAP_DELETE, "");
  static const uint8_t mqtt_bs_delete_root[] = {0xa3, 0x01, 0x03, 0x02, 0x01, 0x05, 0x61, 0x2f};
  expect_downlink(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DELETE, 1, mqtt_bs_delete_root,
                  sizeof mqtt_bs_delete_root);
  req_init(&r, GW_COAP_GET, "1");
  static const uint8_t mqtt_bs_read[] = {0xa3, 0x01, 0x02, 0x02, 0x01, 0x05, 0x62, 0x2f, 0x31};
  expect_downlink(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_READ, 1, mqtt_bs_read, sizeof mqtt_bs_read);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  static const uint8_t mqtt_bs_discover[] = {0xa3, 0x01, 0x04, 0x02, 0x01,
                                             0x05, 0x62, 0x2f, 0x31};
  expect_downlink(&r, BS, MQTT_CBOR_OP_BOOTSTRAP_DISCOVER, 1, mqtt_bs_discover,
                  sizeof mqtt_bs_discover);
}

/* A Write-Attributes PUT /3/0/9 with one query argument: the answer of downlink_request. */
static int write_attribute(const char *arg) {
  test_req_t r;
  req_init(&r, GW_COAP_PUT, "3/0/9");
  req_query(&r, arg);
  return request_error(&r, RD);
}

static void test_write_attributes(void **state) {
  (void)state;
  test_req_t r;
  req_init(&r, GW_COAP_PUT, "3/0/9");
  static const char *const args[] = {"pmin=1",  "pmax=60",   "gt=20.5", "st=0.1",
                                     "epmin=2", "epmax=030", "edge=1",  "hqmax=10"};
  for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
    req_query(&r, args[i]);
  expect_downlink(&r, RD, MQTT_CBOR_OP_WRITE_ATTRIBUTES, 80, mqtt_write_attrs,
                  sizeof mqtt_write_attrs);
  /* gt / st survive encode -> decode exactly; the encoder chose the widths. */
  mqtt_cbor_msg_t back = decode_ok(mqtt_write_attrs, sizeof mqtt_write_attrs, RD);
  assert_true(back.gt.value == 20.5);
  assert_int_equal(back.gt.width, 2);
  assert_true(back.st.value == 0.1);
  assert_int_equal(back.st.width, 8);

  /* Other float spellings and integer edges. */
  static const struct {
    const char *arg;
    double gt;
  } floats[] = {{"gt=-3.25e2", -325.0}, {"gt=0", 0.0},     {"gt=1E3", 1000.0},
                {"gt=.5", 0.5},         {"gt=7.", 7.0},    {"gt=1e-400", 0.0},
                {"gt=123456789.123", 123456789.123}};
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
    uint64_t op;
    req_init(&r, GW_COAP_PUT, "3/0/9");
    req_query(&r, floats[i].arg);
    assert_int_equal(mqtt_coap_downlink_op(&r.msg, RD, &op), 0);
    mqtt_coap_scratch_t scratch = {.used = 0};
    mqtt_cbor_msg_t out;
    assert_int_equal(mqtt_coap_downlink_request(&r.msg, op, 1, &out, &scratch), 0);
    assert_true(out.gt.value == floats[i].gt);
    assert_int_equal(out.gt.width, 0);
    uint8_t buf[64];
    long n = mqtt_cbor_encode(&out, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(mqtt_cbor_decode(buf, (size_t)n, &back), MQTT_CBOR_OK);
    assert_true(back.gt.value == floats[i].gt);
  }
  assert_int_equal(write_attribute("pmin=18446744073709551615"), 0);
  assert_int_equal(write_attribute("edge=0"), 0);

  /* Attributes table 8.7-1 cannot carry: 5.01. */
  assert_int_equal(write_attribute("lt=5"), GW_COAP_CODE(5, 1));
  assert_int_equal(write_attribute("lt"), GW_COAP_CODE(5, 1));
  assert_int_equal(write_attribute("con=1"), GW_COAP_CODE(5, 1));
  assert_int_equal(write_attribute("pmin"), GW_COAP_CODE(5, 1)); /* would unset pmin */
  assert_int_equal(write_attribute("gt"), GW_COAP_CODE(5, 1));
  /* Malformed values and unknown attributes: 4.00. */
  static const char *const bad[] = {
      "pmin=",      "pmin=-1",   "pmin=+1",    "pmin= 1",   "pmin=1x",   "pmin=0x10",
      "pmin=18446744073709551616",             "edge=2",    "edge=01a",  "gt=abc",
      "gt=inf",     "gt=nan",    "gt=1e999",   "gt=0x10",   "gt= 1",     "gt=1 ",
      "gt=",        "gt=1..2",   "gt=-",       "gt=e5",     "foo=1",     "=1",
      "",           "PMIN=1",    "depth=1",    "gt=1e",     "edge=1.0",  "hqmax=1e3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(write_attribute(bad[i]), GW_COAP_CODE(4, 0));
  }
  /* An embedded NUL inside an option value (not NUL-terminated in CoAP). */
  req_init(&r, GW_COAP_PUT, "3/0/9");
  assert_int_equal(
      gw_coap_add_option(&r.msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"gt=1\0", 5), 0);
  assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  /* A value is read only within its option: "pmin=1" cut to "pmin=" is malformed. */
  req_init(&r, GW_COAP_PUT, "3/0/9");
  assert_int_equal(
      gw_coap_add_option(&r.msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"pmin=1", 5), 0);
  assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  /* The same attribute twice. */
  req_init(&r, GW_COAP_PUT, "3/0/9");
  req_query(&r, "pmin=1");
  req_query(&r, "pmin=2");
  assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  /* A long float text. */
  char longf[80] = "gt=1";
  memset(longf + 4, '0', 70);
  longf[74] = '\0';
  assert_int_equal(write_attribute(longf), GW_COAP_CODE(4, 0));

  /* Discover depth: 0..3, strict. */
  static const char *const depths_bad[] = {"depth=4", "depth=-1", "depth", "depth=", "pmin=1"};
  for (size_t i = 0; i < sizeof depths_bad / sizeof depths_bad[0]; i++) {
    req_init(&r, GW_COAP_GET, "3/0");
    req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
    req_query(&r, depths_bad[i]);
    assert_int_equal(request_error(&r, RD), GW_COAP_CODE(4, 0));
  }
  req_init(&r, GW_COAP_GET, "3/0");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  req_query(&r, "depth=0");
  assert_int_equal(request_error(&r, RD), 0);
}

static void test_downlink_request_errors(void **state) {
  (void)state;
  test_req_t r;
  req_init(&r, GW_COAP_GET, "3/0/1");
  mqtt_coap_scratch_t scratch = {.used = 0};
  mqtt_cbor_msg_t out;
  /* Codes mqtt_coap_downlink_op never returns: an internal error. */
  static const uint64_t not_downlink[] = {0, 6, 7, 8, 19, 23, 24, 25, 1000};
  for (size_t i = 0; i < sizeof not_downlink / sizeof not_downlink[0]; i++)
    assert_int_equal(mqtt_coap_downlink_request(&r.msg, not_downlink[i], 1, &out, &scratch),
                     GW_COAP_CODE(5, 0));
  /* A path downlink_op would refuse is refused here too. */
  req_init(&r, GW_COAP_GET, "x");
  assert_int_equal(mqtt_coap_downlink_request(&r.msg, MQTT_CBOR_OP_READ, 1, &out, &scratch),
                   GW_COAP_CODE(4, 5));
  /* Scratch full: the uri cannot be built. */
  req_init(&r, GW_COAP_GET, "3/0/1");
  scratch.used = sizeof scratch.buf - 3;
  assert_int_equal(mqtt_coap_downlink_request(&r.msg, MQTT_CBOR_OP_READ, 1, &out, &scratch),
                   GW_COAP_CODE(5, 0));
  scratch.used = sizeof scratch.buf - 6; /* "/3/0/1" fits, its terminating NUL does not */
  assert_int_equal(mqtt_coap_downlink_request(&r.msg, MQTT_CBOR_OP_READ, 1, &out, &scratch),
                   GW_COAP_CODE(5, 0));
  scratch.used = sizeof scratch.buf - 7;
  assert_int_equal(mqtt_coap_downlink_request(&r.msg, MQTT_CBOR_OP_READ, 1, &out, &scratch), 0);
  assert_int_equal(scratch.used, sizeof scratch.buf);
  assert_bytes_str(&out.uri, "/3/0/1");
}

/* ---- the device's 8.4 response -> CoAP answer to the server ----------------------------- */

/* { 2:77, 7:h'81A102182A', 18:205, 19:112 } */
static const uint8_t mqtt_resp_205[] = {0xa4, 0x02, 0x18, 0x4d, 0x07, 0x45, 0x81, 0xa1, 0x02,
                                        0x18, 0x2a, 0x12, 0x18, 0xcd, 0x13, 0x18, 0x70};
/* ACK 2.05 mid 0x4321 token 01 02 03, [Observe 7,] Content-Format 112, payload. */
static const uint8_t coap_resp_205_observe[] = {0x63, 0x45, 0x43, 0x21, 0x01, 0x02,
                                                0x03, 0x61, 0x07, 0x61, 0x70, 0xff,
                                                0x81, 0xa1, 0x02, 0x18, 0x2a};
static const uint8_t coap_resp_205[] = {0x63, 0x45, 0x43, 0x21, 0x01, 0x02, 0x03, 0xc1,
                                        0x70, 0xff, 0x81, 0xa1, 0x02, 0x18, 0x2a};
static const uint8_t coap_resp_500[] = {0x63, 0xa0, 0x43, 0x21, 0x01, 0x02, 0x03};

static void test_response_from_mqtt(void **state) {
  (void)state;
  static const uint8_t token[] = {1, 2, 3};
  mqtt_cbor_msg_t msg = decode_ok(mqtt_resp_205, sizeof mqtt_resp_205, RD);
  mqtt_coap_scratch_t scratch = {.used = 0};
  gw_coap_msg_t out;
  uint32_t seq = 7;
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, &seq, &out, &scratch),
                   0);
  assert_coap_bytes(&out, coap_resp_205_observe, sizeof coap_resp_205_observe);
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, NULL, &out, &scratch),
                   0);
  assert_coap_bytes(&out, coap_resp_205, sizeof coap_resp_205);

  /* An error result: no Observe even with a sequence number (RFC 7641 4.1). */
  msg.result = 404;
  msg.present &= ~(BIT(CT) | BIT(PAYLOAD));
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, &seq, &out, &scratch),
                   0);
  assert_int_equal(out.code, GW_COAP_NOT_FOUND);
  assert_int_equal(out.type, GW_COAP_ACK);
  assert_int_equal(out.option_count, 0);
  /* 2.04 / 2.01 / 2.02 are 2.xx: Observe is added when asked. */
  msg.result = 204;
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, &seq, &out, &scratch),
                   0);
  assert_non_null(gw_coap_find_option(&out, GW_COAP_OPT_OBSERVE));

  /* Results outside tables 8.5: a bare 5.00, and the caller is told. */
  msg = decode_ok(mqtt_resp_205, sizeof mqtt_resp_205, RD);
  static const uint64_t unlisted[] = {0, 200, 299, 418, 502, 65536 + 205};
  for (size_t i = 0; i < sizeof unlisted / sizeof unlisted[0]; i++) {
    msg.result = unlisted[i];
    assert_int_equal(
        mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, &seq, &out, &scratch),
        MQTT_CBOR_ERR_RESULT);
    assert_coap_bytes(&out, coap_resp_500, sizeof coap_resp_500);
  }
  msg.present &= ~BIT(RESULT); /* a request is no response */
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, NULL, &out, &scratch),
                   MQTT_CBOR_ERR_RESULT);
  assert_coap_bytes(&out, coap_resp_500, sizeof coap_resp_500);

  /* What cannot be built: a ct beyond Content-Format, a full scratch. */
  msg = decode_ok(mqtt_resp_205, sizeof mqtt_resp_205, RD);
  msg.ct = 65536;
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, NULL, &out, &scratch),
                   MQTT_CBOR_ERR_VALUE);
  assert_coap_bytes(&out, coap_resp_500, sizeof coap_resp_500);
  msg.ct = 112;
  scratch.used = sizeof scratch.buf;
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, NULL, &out, &scratch),
                   MQTT_CBOR_ERR_VALUE);
  assert_coap_bytes(&out, coap_resp_500, sizeof coap_resp_500);
  /* ct 65535 is the largest Content-Format. */
  scratch.used = 0;
  msg.ct = 65535;
  assert_int_equal(mqtt_coap_response_from_mqtt(&msg, 0x4321, token, 3, NULL, &out, &scratch),
                   0);
  assert_int_equal(gw_coap_option_uint(gw_coap_find_option(&out, GW_COAP_OPT_CONTENT_FORMAT)),
                   65535);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_topic_parse),
      cmocka_unit_test(test_topic_build),
      cmocka_unit_test(test_uplink_register),
      cmocka_unit_test(test_uplink_update_deregister),
      cmocka_unit_test(test_uplink_send_and_bootstrap),
      cmocka_unit_test(test_uplink_errors),
      cmocka_unit_test(test_notification),
      cmocka_unit_test(test_response_to_mqtt),
      cmocka_unit_test(test_downlink_op_rd),
      cmocka_unit_test(test_downlink_op_bs),
      cmocka_unit_test(test_downlink_request_dm),
      cmocka_unit_test(test_downlink_request_bootstrap),
      cmocka_unit_test(test_write_attributes),
      cmocka_unit_test(test_downlink_request_errors),
      cmocka_unit_test(test_response_from_mqtt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
