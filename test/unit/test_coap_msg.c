/* Unit tests of the CoAP codec against byte vectors from RFC 7252 (Appendix A style) and LwM2M
 * Core 1.2 6.2.1. Every vector is parsed from an exact-size heap copy, so ASan reports any read
 * past the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coap_msg.h"

#define VEC(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* RFC 7252 A (Figure 16 style): CON GET /temperature, MID 0x7d34, no token. */
static const uint8_t rfc_get_temperature[] = {0x40, 0x01, 0x7d, 0x34, 0xbb, 't', 'e', 'm',
                                              'p',  'e',  'r',  'a',  't',  'u', 'r', 'e'};
/* Its piggybacked 2.05 Content answer with payload "22.3 C". */
static const uint8_t rfc_ack_content[] = {0x60, 0x45, 0x7d, 0x34, 0xff, 0x32,
                                          0x32, 0x2e, 0x33, 0x20, 0x43};
/* LwM2M Core 1.2 6.2.1: CON POST /rd?ep=node-1&lt=300&lwm2m=1.2&b=UQ, token 4 bytes,
 * Content-Format 40 (application/link-format), payload "</1/0>,</3/0>". */
static const uint8_t lwm2m_register[] = {
    0x44, 0x02, 0x12, 0x34, 0xa1, 0xb2, 0xc3, 0xd4,             /* header, token */
    0xb2, 'r',  'd',                                            /* Uri-Path 11 "rd" */
    0x11, 0x28,                                                 /* Content-Format 12 = 40 */
    0x39, 'e',  'p',  '=',  'n',  'o',  'd',  'e',  '-',  '1',  /* Uri-Query 15 */
    0x06, 'l',  't',  '=',  '3',  '0',  '0',                    /* Uri-Query */
    0x09, 'l',  'w',  'm',  '2',  'm',  '=',  '1',  '.',  '2',  /* Uri-Query */
    0x04, 'b',  '=',  'U',  'Q',                                /* Uri-Query */
    0xff, '<',  '/',  '1',  '/',  '0',  '>',  ',',  '<',  '/',  '3', '/', '0', '>'};
/* RFC 7641 4.2: NON 2.05 notification, Observe 0x0a0b, Content-Format 112 (SenML CBOR). */
static const uint8_t observe_notification[] = {0x52, 0x45, 0x00, 0x07, 0x5e, 0x11, 0x62,
                                               0x0a, 0x0b, 0x61, 0x70, 0xff, 0x81, 0xa1,
                                               0x02, 0x18, 0x2a};
/* RFC 7967 2: No-Response 258 after Uri-Path 11 needs delta 247, the 13 encoding (247 - 13). */
static const uint8_t no_response_get[] = {0x40, 0x01, 0x00, 0x01, 0xb1, 'x', 0xd1, 0xea, 0x1a};
/* RFC 9175 3.2: Request-Tag 292 is the first delta above 268, the 14 encoding (292 - 269). */
static const uint8_t request_tag_post[] = {0x40, 0x02, 0x00, 0x02, 0xe1, 0x00, 0x17, 0x07};
static const uint8_t empty_ack[] = {0x60, 0x00, 0x7d, 0x34};
static const uint8_t reset[] = {0x70, 0x00, 0x7d, 0x34};

static gw_coap_parse_result_t parse_exact(const uint8_t *bytes, size_t len, gw_coap_msg_t *out,
                                          uint8_t **out_copy) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len)
    memcpy(copy, bytes, len);
  gw_coap_parse_result_t res = gw_coap_parse(copy, len, out);
  *out_copy = copy; /* the message borrows it */
  return res;
}

static gw_coap_parse_result_t parse_result(const uint8_t *bytes, size_t len) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  gw_coap_parse_result_t res = parse_exact(bytes, len, &msg, &copy);
  free(copy);
  return res;
}

static void assert_option(const gw_coap_option_t *opt, uint16_t number, const void *value,
                          size_t len) {
  assert_int_equal(opt->number, number);
  assert_int_equal(opt->length, len);
  assert_memory_equal(opt->value, value, len);
}

static void assert_round_trip(const uint8_t *bytes, size_t len) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(bytes, len, &msg, &copy), GW_COAP_PARSE_OK);
  uint8_t out[2048];
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), len);
  assert_memory_equal(out, bytes, len);
  free(copy);
}

/* ---- parsing the standard vectors -------------------------------------------------------- */

static void test_parse_rfc_get(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(rfc_get_temperature, sizeof(rfc_get_temperature), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_int_equal(msg.type, GW_COAP_CON);
  assert_int_equal(msg.code, GW_COAP_GET);
  assert_int_equal(msg.mid, 0x7d34);
  assert_int_equal(msg.token_len, 0);
  assert_int_equal(msg.option_count, 1);
  assert_option(&msg.options[0], GW_COAP_OPT_URI_PATH, "temperature", 11);
  assert_null(msg.payload);
  assert_int_equal(msg.payload_len, 0);
  assert_true(gw_coap_is_request(&msg));
  char path[32];
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, path, sizeof(path)),
                      "/temperature");
  free(copy);
}

static void test_parse_rfc_ack_with_payload(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(rfc_ack_content, sizeof(rfc_ack_content), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_int_equal(msg.type, GW_COAP_ACK);
  assert_int_equal(msg.code, GW_COAP_CONTENT);
  assert_int_equal(msg.mid, 0x7d34);
  assert_int_equal(msg.option_count, 0);
  assert_int_equal(msg.payload_len, 6);
  assert_memory_equal(msg.payload, "22.3 C", 6);
  assert_true(gw_coap_is_response(&msg));
  free(copy);
}

static void test_parse_lwm2m_register(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(lwm2m_register, sizeof(lwm2m_register), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_int_equal(msg.code, GW_COAP_POST);
  assert_int_equal(msg.token_len, 4);
  assert_memory_equal(msg.token, ((uint8_t[]){0xa1, 0xb2, 0xc3, 0xd4}), 4);
  assert_int_equal(msg.option_count, 6);
  assert_option(&msg.options[0], GW_COAP_OPT_URI_PATH, "rd", 2);
  assert_int_equal(gw_coap_option_uint(&msg.options[1]), 40);
  assert_option(&msg.options[2], GW_COAP_OPT_URI_QUERY, "ep=node-1", 9);
  assert_option(&msg.options[3], GW_COAP_OPT_URI_QUERY, "lt=300", 6);
  assert_option(&msg.options[4], GW_COAP_OPT_URI_QUERY, "lwm2m=1.2", 9);
  assert_option(&msg.options[5], GW_COAP_OPT_URI_QUERY, "b=UQ", 4);
  assert_int_equal(msg.payload_len, 13);
  assert_memory_equal(msg.payload, "</1/0>,</3/0>", 13);
  char path[16];
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, path, sizeof(path)), "/rd");
  free(copy);
}

static void test_parse_observe_notification(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(
      parse_exact(observe_notification, sizeof(observe_notification), &msg, &copy),
      GW_COAP_PARSE_OK);
  assert_int_equal(msg.type, GW_COAP_NON);
  assert_int_equal(msg.token_len, 2);
  assert_int_equal(gw_coap_option_uint(gw_coap_find_option(&msg, GW_COAP_OPT_OBSERVE)), 0x0a0b);
  assert_int_equal(gw_coap_option_uint(gw_coap_find_option(&msg, GW_COAP_OPT_CONTENT_FORMAT)),
                   112);
  assert_int_equal(msg.payload_len, 5);
  free(copy);
}

static void test_parse_extended_delta(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(no_response_get, sizeof(no_response_get), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_int_equal(msg.option_count, 2);
  assert_option(&msg.options[1], GW_COAP_OPT_NO_RESPONSE, "\x1a", 1);
  free(copy);

  assert_int_equal(parse_exact(request_tag_post, sizeof(request_tag_post), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_int_equal(msg.option_count, 1);
  assert_option(&msg.options[0], 292, "\x07", 1);
  free(copy);
}

/* Option lengths 13 (1 extended byte) and 300 (2 extended bytes, 300 - 269 = 0x001f). */
static void test_parse_extended_length(void **state) {
  uint8_t bytes[4 + 4 + 300];
  memcpy(bytes, "\x40\x01\x00\x03", 4);
  bytes[4] = 0xde; /* Proxy-Uri 35: delta nibble 13, length nibble 14 */
  bytes[5] = 35 - 13;
  bytes[6] = 0x00;
  bytes[7] = 300 - 269;
  memset(bytes + 8, 'p', 300);
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(bytes, sizeof(bytes), &msg, &copy), GW_COAP_PARSE_OK);
  assert_int_equal(msg.options[0].number, GW_COAP_OPT_PROXY_URI);
  assert_int_equal(msg.options[0].length, 300);
  assert_ptr_equal(msg.options[0].value, copy + 8);
  free(copy);
  assert_round_trip(bytes, sizeof(bytes));

  static const uint8_t len13[] = {0x40, 0x01, 0x00, 0x04, 0xbd, 0x00, 'a', 'b', 'c', 'd',
                                  'e',  'f',  'g',  'h',  'i',  'j',  'k', 'l', 'm'};
  assert_int_equal(parse_exact(len13, sizeof(len13), &msg, &copy), GW_COAP_PARSE_OK);
  assert_option(&msg.options[0], GW_COAP_OPT_URI_PATH, "abcdefghijklm", 13);
  free(copy);
}

static void test_parse_empty_ack_and_reset(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(empty_ack, sizeof(empty_ack), &msg, &copy), GW_COAP_PARSE_OK);
  assert_true(gw_coap_is_empty(&msg));
  assert_int_equal(msg.type, GW_COAP_ACK);
  free(copy);
  assert_int_equal(parse_exact(reset, sizeof(reset), &msg, &copy), GW_COAP_PARSE_OK);
  assert_int_equal(msg.type, GW_COAP_RST);
  assert_int_equal(msg.mid, 0x7d34);
  free(copy);
}

/* ---- every parse error ------------------------------------------------------------------- */

static void test_parse_short(void **state) {
  assert_int_equal(parse_result(NULL, 0), GW_COAP_PARSE_SHORT);
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x7d)), GW_COAP_PARSE_SHORT);
  /* TKL 4, two token bytes present */
  assert_int_equal(parse_result(VEC(0x44, 0x01, 0x00, 0x01, 0xaa, 0xbb)), GW_COAP_PARSE_SHORT);
  /* delta nibble 13 without its extended byte */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xd0)), GW_COAP_PARSE_SHORT);
  /* length nibble 14 with one of its two extended bytes */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xbe, 0x00)), GW_COAP_PARSE_SHORT);
  /* Uri-Path of 5 bytes with 3 present */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xb5, 'a', 'b', 'c')),
                   GW_COAP_PARSE_SHORT);
}

/* Every prefix of a valid message is refused cleanly or is itself a valid message. */
static void test_parse_every_truncation(void **state) {
  for (size_t len = 0; len < sizeof(lwm2m_register); len++) {
    gw_coap_parse_result_t res = parse_result(lwm2m_register, len);
    assert_true(res == GW_COAP_PARSE_OK || res == GW_COAP_PARSE_SHORT ||
                res == GW_COAP_PARSE_PAYLOAD_MARKER);
  }
}

static void test_parse_version(void **state) {
  assert_int_equal(parse_result(VEC(0x00, 0x01, 0x00, 0x01)), GW_COAP_PARSE_VERSION);
  assert_int_equal(parse_result(VEC(0x80, 0x01, 0x00, 0x01)), GW_COAP_PARSE_VERSION);
  assert_int_equal(parse_result(VEC(0xc0, 0x00, 0x00, 0x01)), GW_COAP_PARSE_VERSION);
}

static void test_parse_token_len_reserved(void **state) {
  for (uint8_t tkl = 9; tkl <= 15; tkl++) {
    uint8_t bytes[4 + 15] = {(uint8_t)(0x40 | tkl), 0x01, 0x00, 0x01};
    assert_int_equal(parse_result(bytes, sizeof(bytes)), GW_COAP_PARSE_TOKEN_LEN);
  }
}

static void test_parse_option_errors(void **state) {
  /* delta nibble 15 that is not the payload marker */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xf0, 0x00)), GW_COAP_PARSE_OPTION);
  /* length nibble 15 */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0x0f, 0x00)), GW_COAP_PARSE_OPTION);
  /* option 65535 (269 + 0xfef2), then delta 1 overflows 16 bits */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2, 0x10)),
                   GW_COAP_PARSE_OPTION);
  /* a single delta of 269 + 0xffff */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xe0, 0xff, 0xff)),
                   GW_COAP_PARSE_OPTION);
  /* length 269 + 0xffff does not fit 16 bits */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0x0e, 0xff, 0xff)),
                   GW_COAP_PARSE_OPTION);
  /* option 65535 itself is fine */
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2)),
                   GW_COAP_PARSE_OK);
}

static void test_parse_too_many_options(void **state) {
  uint8_t bytes[4 + GW_COAP_MAX_OPTIONS + 1];
  memset(bytes, 0, sizeof(bytes)); /* options of delta 0, length 0 */
  memcpy(bytes, "\x40\x01\x00\x01", 4);
  bytes[4] = 0xb0;
  assert_int_equal(parse_result(bytes, sizeof(bytes) - 1), GW_COAP_PARSE_OK);
  assert_int_equal(parse_result(bytes, sizeof(bytes)), GW_COAP_PARSE_TOO_MANY_OPTIONS);
}

static void test_parse_payload_marker_without_payload(void **state) {
  assert_int_equal(parse_result(VEC(0x60, 0x45, 0x7d, 0x34, 0xff)), GW_COAP_PARSE_PAYLOAD_MARKER);
  assert_int_equal(parse_result(VEC(0x40, 0x01, 0x00, 0x01, 0xb1, 'x', 0xff)),
                   GW_COAP_PARSE_PAYLOAD_MARKER);
}

static void test_parse_empty_not_empty(void **state) {
  assert_int_equal(parse_result(VEC(0x41, 0x00, 0x00, 0x01, 0xaa)), GW_COAP_PARSE_EMPTY_NOT_EMPTY);
  assert_int_equal(parse_result(VEC(0x60, 0x00, 0x00, 0x01, 0xb1, 'x')),
                   GW_COAP_PARSE_EMPTY_NOT_EMPTY);
  assert_int_equal(parse_result(VEC(0x60, 0x00, 0x00, 0x01, 0xff, 0x01)),
                   GW_COAP_PARSE_EMPTY_NOT_EMPTY);
}

static void test_parse_failure_leaves_output_alone(void **state) {
  gw_coap_msg_t msg;
  memset(&msg, 0xa5, sizeof(msg));
  gw_coap_msg_t before = msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(VEC(0x40, 0x01, 0x00, 0x01, 0xb1, 'x', 0xff), &msg, &copy),
                   GW_COAP_PARSE_PAYLOAD_MARKER);
  assert_memory_equal(&msg, &before, sizeof(msg));
  free(copy);
}

static void test_parse_result_str(void **state) {
  for (int r = GW_COAP_PARSE_OK; r <= GW_COAP_PARSE_EMPTY_NOT_EMPTY; r++)
    assert_non_null(gw_coap_parse_result_str((gw_coap_parse_result_t)r));
  assert_string_equal(gw_coap_parse_result_str(GW_COAP_PARSE_TOKEN_LEN), "reserved token length");
}

/* ---- serialising ------------------------------------------------------------------------- */

static void test_round_trips(void **state) {
  assert_round_trip(rfc_get_temperature, sizeof(rfc_get_temperature));
  assert_round_trip(rfc_ack_content, sizeof(rfc_ack_content));
  assert_round_trip(lwm2m_register, sizeof(lwm2m_register));
  assert_round_trip(observe_notification, sizeof(observe_notification));
  assert_round_trip(no_response_get, sizeof(no_response_get));
  assert_round_trip(request_tag_post, sizeof(request_tag_post));
  assert_round_trip(empty_ack, sizeof(empty_ack));
  assert_round_trip(reset, sizeof(reset));
  assert_round_trip(VEC(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2));
}

/* Building the RFC 7252 A request from scratch gives its exact bytes. */
static void test_build_rfc_get(void **state) {
  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 0x7d34);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"temperature",
                                      11), 0);
  uint8_t out[64];
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), sizeof(rfc_get_temperature));
  assert_memory_equal(out, rfc_get_temperature, sizeof(rfc_get_temperature));
}

/* RFC 7252 3.1: 0..12 fit the nibble, 13..268 take one byte, 269.. take two. */
static void test_serialize_minimal_encoding(void **state) {
  static const uint8_t value[300];
  static const struct {
    uint16_t number, length;
    uint8_t header[5];
    size_t header_len;
  } cases[] = {
      {12, 12, {0xcc}, 1},
      {13, 13, {0xdd, 0x00, 0x00}, 3},
      {268, 268, {0xdd, 0xff, 0xff}, 3},
      {269, 269, {0xee, 0x00, 0x00, 0x00, 0x00}, 5},
      {65535, 300, {0xee, 0xfe, 0xf2, 0x00, 0x1f}, 5},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    gw_coap_msg_t msg;
    gw_coap_msg_init(&msg, GW_COAP_NON, GW_COAP_GET, 1);
    gw_coap_add_option(&msg, cases[i].number, value, cases[i].length);
    uint8_t out[400];
    assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)),
                     4 + cases[i].header_len + cases[i].length);
    assert_memory_equal(out + 4, cases[i].header, cases[i].header_len);
  }
}

static void test_serialize_buffer_too_small(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(lwm2m_register, sizeof(lwm2m_register), &msg, &copy),
                   GW_COAP_PARSE_OK);
  uint8_t out[sizeof(lwm2m_register)];
  for (size_t size = 0; size < sizeof(out); size++)
    assert_int_equal(gw_coap_serialize(&msg, out, size), 0);
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), sizeof(out));
  free(copy);
}

static void test_serialize_invalid(void **state) {
  gw_coap_msg_t msg;
  uint8_t out[64];
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 1);
  msg.option_count = 2;
  msg.options[0] = (gw_coap_option_t){GW_COAP_OPT_URI_QUERY, 1, (const uint8_t *)"a"};
  msg.options[1] = (gw_coap_option_t){GW_COAP_OPT_URI_PATH, 1, (const uint8_t *)"b"};
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), 0);

  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 1);
  msg.token_len = GW_COAP_MAX_TOKEN + 1;
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), 0);

  /* RFC 7252 4.1: what the parser would refuse as an Empty message with content */
  gw_coap_msg_init(&msg, GW_COAP_ACK, GW_COAP_EMPTY, 1);
  assert_int_equal(gw_coap_set_token(&msg, (const uint8_t *)"t", 1), 0);
  assert_int_equal(gw_coap_serialize(&msg, out, sizeof(out)), 0);
}

/* ---- building and reading ---------------------------------------------------------------- */

static void test_add_option_keeps_order(void **state) {
  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_POST, 1);
  const uint8_t *v = (const uint8_t *)"abcdef";
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_QUERY, v + 0, 1), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, v + 1, 1), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, v + 2, 1), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_CONTENT_FORMAT, NULL, 0), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_QUERY, v + 3, 1), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_OBSERVE, NULL, 0), 0);
  static const struct {
    uint16_t number;
    char value;
  } expected[] = {{GW_COAP_OPT_OBSERVE, 0},  {GW_COAP_OPT_URI_PATH, 'b'},
                  {GW_COAP_OPT_URI_PATH, 'c'}, {GW_COAP_OPT_CONTENT_FORMAT, 0},
                  {GW_COAP_OPT_URI_QUERY, 'a'}, {GW_COAP_OPT_URI_QUERY, 'd'}};
  assert_int_equal(msg.option_count, 6);
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(msg.options[i].number, expected[i].number);
    if (expected[i].value)
      assert_int_equal(msg.options[i].value[0], expected[i].value);
  }
  char path[16];
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, path, sizeof(path)), "/b/c");
}

static void test_add_option_full(void **state) {
  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 1);
  for (int i = 0; i < GW_COAP_MAX_OPTIONS; i++)
    assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, NULL, 0), 0);
  assert_int_equal(gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, NULL, 0), -1);
  assert_int_equal(msg.option_count, GW_COAP_MAX_OPTIONS);
}

static void test_remove_and_find(void **state) {
  gw_coap_msg_t msg;
  uint8_t *copy;
  assert_int_equal(parse_exact(lwm2m_register, sizeof(lwm2m_register), &msg, &copy),
                   GW_COAP_PARSE_OK);
  assert_option(gw_coap_find_option(&msg, GW_COAP_OPT_URI_QUERY), GW_COAP_OPT_URI_QUERY,
                "ep=node-1", 9);
  assert_int_equal(gw_coap_remove_options(&msg, GW_COAP_OPT_URI_QUERY), 4);
  assert_null(gw_coap_find_option(&msg, GW_COAP_OPT_URI_QUERY));
  assert_int_equal(gw_coap_remove_options(&msg, GW_COAP_OPT_URI_QUERY), 0);
  assert_int_equal(msg.option_count, 2);
  assert_int_equal(msg.options[1].number, GW_COAP_OPT_CONTENT_FORMAT);
  free(copy);
}

static void test_set_token(void **state) {
  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 1);
  assert_int_equal(gw_coap_set_token(&msg, (const uint8_t *)"12345678", 8), 0);
  assert_int_equal(msg.token_len, 8);
  assert_int_equal(gw_coap_set_token(&msg, (const uint8_t *)"123456789", 9), -1);
  assert_int_equal(msg.token_len, 8);
}

static void test_uint_options(void **state) {
  static const struct {
    uint32_t v;
    size_t len;
  } cases[] = {{0, 0}, {1, 1}, {0xff, 1}, {0x100, 2}, {0xffff, 2}, {0x10000, 3},
               {0x1000000, 4}, {0xffffffff, 4}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint8_t buf[4];
    size_t len = gw_coap_encode_uint(buf, cases[i].v);
    assert_int_equal(len, cases[i].len);
    gw_coap_option_t opt = {GW_COAP_OPT_OBSERVE, (uint16_t)len, buf};
    assert_int_equal(gw_coap_option_uint(&opt), cases[i].v);
  }
  gw_coap_option_t too_long = {GW_COAP_OPT_MAX_AGE, 5, (const uint8_t *)"\1\2\3\4\5"};
  assert_int_equal(gw_coap_option_uint(&too_long), 0);
  assert_int_equal(gw_coap_option_uint(NULL), 0);
}

/* ---- text for logs ----------------------------------------------------------------------- */

static void test_path_str(void **state) {
  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, GW_COAP_CON, GW_COAP_GET, 1);
  char out[32];
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, out, sizeof(out)), "/");
  gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"3", 1);
  gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"0", 1);
  gw_coap_add_option(&msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"13", 2);
  gw_coap_add_option(&msg, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)"rd", 2);
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, out, sizeof(out)), "/3/0/13");
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_LOCATION_PATH, out, sizeof(out)), "/rd");
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, out, 5), "/3/0");
  assert_string_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, out, 1), "");
  out[0] = 'x';
  assert_ptr_equal(gw_coap_path_str(&msg, GW_COAP_OPT_URI_PATH, out, 0), out);
  assert_int_equal(out[0], 'x');
}

static void test_code_and_type_str(void **state) {
  static const struct {
    uint8_t code;
    const char *text;
  } cases[] = {{GW_COAP_EMPTY, "0.00"},      {GW_COAP_GET, "GET"},
               {GW_COAP_POST, "POST"},       {GW_COAP_PUT, "PUT"},
               {GW_COAP_DELETE, "DELETE"},   {GW_COAP_FETCH, "FETCH"},
               {GW_COAP_PATCH, "PATCH"},     {GW_COAP_IPATCH, "iPATCH"},
               {8, "0.08"},                  {GW_COAP_CREATED, "2.01"},
               {GW_COAP_CONTENT, "2.05"},    {GW_COAP_CONTINUE, "2.31"},
               {GW_COAP_NOT_FOUND, "4.04"},  {GW_COAP_GATEWAY_TIMEOUT, "5.04"},
               {0xff, "7.31"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[8];
    assert_string_equal(gw_coap_code_str(cases[i].code, buf), cases[i].text);
  }
  assert_string_equal(gw_coap_type_str(GW_COAP_CON), "CON");
  assert_string_equal(gw_coap_type_str(GW_COAP_NON), "NON");
  assert_string_equal(gw_coap_type_str(GW_COAP_ACK), "ACK");
  assert_string_equal(gw_coap_type_str(GW_COAP_RST), "RST");
}

/* ---- tokens ----------------------------------------------------------------------------- */

static void test_tokens(void **state) {
  (void)state;
  uint8_t buf[8];
  static const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  assert_int_equal(gw_coap_token_from_u64(0x0102030405060708u, buf), 8);
  assert_memory_equal(buf, want, 8);
  static const uint64_t values[] = {0, 1, 42, 0xff00, 0x8000000000000000u, UINT64_MAX};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    gw_coap_token_from_u64(values[i], buf);
    assert_true(gw_coap_token_to_u64(buf, 8) == values[i]);
  }
  /* Shorter CoAP tokens (a server's) read big endian; none is 0; longer is no token. */
  assert_int_equal(gw_coap_token_to_u64(want, 2), 0x0102);
  assert_int_equal(gw_coap_token_to_u64(want, 0), 0);
  assert_int_equal(gw_coap_token_to_u64(want, 9), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_rfc_get),
      cmocka_unit_test(test_parse_rfc_ack_with_payload),
      cmocka_unit_test(test_parse_lwm2m_register),
      cmocka_unit_test(test_parse_observe_notification),
      cmocka_unit_test(test_parse_extended_delta),
      cmocka_unit_test(test_parse_extended_length),
      cmocka_unit_test(test_parse_empty_ack_and_reset),
      cmocka_unit_test(test_parse_short),
      cmocka_unit_test(test_parse_every_truncation),
      cmocka_unit_test(test_parse_version),
      cmocka_unit_test(test_parse_token_len_reserved),
      cmocka_unit_test(test_parse_option_errors),
      cmocka_unit_test(test_parse_too_many_options),
      cmocka_unit_test(test_parse_payload_marker_without_payload),
      cmocka_unit_test(test_parse_empty_not_empty),
      cmocka_unit_test(test_parse_failure_leaves_output_alone),
      cmocka_unit_test(test_parse_result_str),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_build_rfc_get),
      cmocka_unit_test(test_serialize_minimal_encoding),
      cmocka_unit_test(test_serialize_buffer_too_small),
      cmocka_unit_test(test_serialize_invalid),
      cmocka_unit_test(test_add_option_keeps_order),
      cmocka_unit_test(test_add_option_full),
      cmocka_unit_test(test_remove_and_find),
      cmocka_unit_test(test_set_token),
      cmocka_unit_test(test_uint_options),
      cmocka_unit_test(test_path_str),
      cmocka_unit_test(test_code_and_type_str),
      cmocka_unit_test(test_tokens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
