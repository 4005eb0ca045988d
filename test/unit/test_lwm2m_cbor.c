/* Unit tests of the LwM2M-over-MQTT CBOR codec (LwM2M Transport 1.2.1 section 8.3-8.7).
 *
 * The spec text shows its examples in CBOR diagnostic notation only, and of the five examples it
 * announces (8.3.1 Bootstrap-Request, 8.3.2 Register, 8.3.3 Read, 8.3.4 Send, 8.4 response) only
 * the Bootstrap-Request body is printed; the other four bodies are missing from the text. The
 * Bootstrap-Request is hand-encoded below from its diagnostic notation; the other four are
 * hand-encoded from the 8.3/8.4 CDDL tables with values of our own. Every vector is decoded from
 * an exact-size heap copy, so ASan reports any read past the input. */
#include <setjmp.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lwm2m_cbor.h"

#define VEC(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define BIT(k) MQTT_CBOR_BIT(MQTT_CBOR_KEY_##k)

static int decode_copy(const uint8_t *data, size_t len, mqtt_cbor_msg_t *out_msg) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len)
    memcpy(copy, data, len);
  int err = mqtt_cbor_decode(copy, len, out_msg);
  free(copy); /* out_msg strings dangle now: callers only look at scalars */
  return err;
}

/* Decodes, checks validate() against `iface`, re-encodes and compares byte for byte; also checks
 * that every shorter output buffer is refused and every shorter input is truncated. */
static void round_trip(const uint8_t *data, size_t len, mqtt_cbor_iface_t iface) {
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(data, len, &msg), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&msg, iface, NULL), MQTT_CBOR_OK);
  uint8_t out[256];
  assert_true(len <= sizeof out);
  assert_int_equal(mqtt_cbor_encode(&msg, NULL, 0), (long)len);
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), (long)len);
  assert_memory_equal(out, data, len);
  for (size_t n = 0; n < len; n++) {
    assert_int_equal(mqtt_cbor_encode(&msg, out, n), MQTT_CBOR_ERR_TOO_SMALL);
    mqtt_cbor_msg_t part;
    assert_int_equal(decode_copy(data, n, &part), MQTT_CBOR_ERR_TRUNCATED);
  }
}

static bool bytes_is(mqtt_cbor_bytes_t b, const char *s) {
  return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

/* 8.3.1: { 1:0, 2:42 } (diagnostic notation in the spec, hand-encoded). */
static void test_spec_bootstrap_request(void **state) {
  (void)state;
  static const uint8_t msg_bytes[] = {0xa2, 0x01, 0x00, 0x02, 0x18, 0x2a};
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(msg_bytes, sizeof msg_bytes, &msg), MQTT_CBOR_OK);
  assert_int_equal(msg.present, BIT(OPERATION) | BIT(TOKEN));
  assert_int_equal(msg.operation, MQTT_CBOR_OP_BOOTSTRAP_REQUEST);
  assert_int_equal(msg.token, 42);
  assert_string_equal(mqtt_cbor_op_name(MQTT_CBOR_IFACE_BS, msg.operation), "Bootstrap-Request");
  round_trip(msg_bytes, sizeof msg_bytes, MQTT_CBOR_IFACE_BS);
  /* Operation 0 does not exist on the "rd" topic. */
  assert_int_equal(mqtt_cbor_validate(&msg, MQTT_CBOR_IFACE_RD, NULL), MQTT_CBOR_ERR_UNKNOWN_OP);
}

/* 8.3.2 Register (body missing in the spec text): { 1:6, 2:43, 7:h'3C2F312F303E' ("</1/0>"),
 * 8:3600, 9:"1.2", 10:"UQ" }. */
static const uint8_t ex_register[] = {0xa6, 0x01, 0x06, 0x02, 0x18, 0x2b, 0x07, 0x46, 0x3c,
                                      0x2f, 0x31, 0x2f, 0x30, 0x3e, 0x08, 0x19, 0x0e, 0x10, 0x09,
                                      0x63, 0x31, 0x2e, 0x32, 0x0a, 0x62, 0x55, 0x51};
/* 8.3.3 Read (body missing): { 1:9, 2:44, 5:"/3/0/0" }. */
static const uint8_t ex_read[] = {0xa3, 0x01, 0x09, 0x02, 0x18, 0x2c, 0x05, 0x66,
                                  0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x30};
/* 8.3.4 Send (body missing): { 1:24, 2:45, 7:h'010203', 19:112 (SenML CBOR) }. */
static const uint8_t ex_send[] = {0xa4, 0x01, 0x18, 0x18, 0x02, 0x18, 0x2d, 0x07,
                                  0x43, 0x01, 0x02, 0x03, 0x13, 0x18, 0x70};
/* 8.4 response (body missing): { 2:44, 7:h'AABB', 18:205, 19:112 }. */
static const uint8_t ex_response[] = {0xa4, 0x02, 0x18, 0x2c, 0x07, 0x42, 0xaa,
                                      0xbb, 0x12, 0x18, 0xcd, 0x13, 0x18, 0x70};

static void test_examples_round_trip(void **state) {
  (void)state;
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(ex_register, sizeof ex_register, &msg), MQTT_CBOR_OK);
  assert_int_equal(msg.operation, MQTT_CBOR_OP_REGISTER);
  assert_int_equal(msg.lifetime, 3600);
  assert_true(bytes_is(msg.version, "1.2"));
  assert_true(bytes_is(msg.binding, "UQ"));
  assert_true(bytes_is(msg.payload, "</1/0>"));
  /* Borrowed, not copied. */
  assert_ptr_equal(msg.payload.ptr, ex_register + 8);
  assert_string_equal(mqtt_cbor_op_name(MQTT_CBOR_IFACE_RD, 6), "Register");
  assert_string_equal(mqtt_cbor_op_name(MQTT_CBOR_IFACE_BS, 6), "Bootstrap-Pack-Request");
  round_trip(ex_register, sizeof ex_register, MQTT_CBOR_IFACE_RD);

  assert_int_equal(mqtt_cbor_decode(ex_read, sizeof ex_read, &msg), MQTT_CBOR_OK);
  assert_true(bytes_is(msg.uri, "/3/0/0"));
  round_trip(ex_read, sizeof ex_read, MQTT_CBOR_IFACE_RD);

  assert_int_equal(mqtt_cbor_decode(ex_send, sizeof ex_send, &msg), MQTT_CBOR_OK);
  assert_int_equal(msg.operation, MQTT_CBOR_OP_SEND);
  assert_int_equal(msg.ct, 112);
  round_trip(ex_send, sizeof ex_send, MQTT_CBOR_IFACE_RD);

  assert_int_equal(mqtt_cbor_decode(ex_response, sizeof ex_response, &msg), MQTT_CBOR_OK);
  assert_int_equal(msg.result, 205);
  assert_false(msg.present & BIT(OPERATION));
  round_trip(ex_response, sizeof ex_response, MQTT_CBOR_IFACE_RD);
  round_trip(ex_response, sizeof ex_response, MQTT_CBOR_IFACE_BS);
}

/* Fills every key an operation may carry per its 8.3 table row (mandatory and optional). */
static const uint8_t paths_cbor[] = {0x81, 0xa1, 0x00, 0x64, '/', '3', '/', '0'};
static const uint8_t value_cbor[] = {0x81, 0xa2, 0x00, 0x66, '/', '3', '/', '0',
                                     '/', '0', 0x03, 0x61, 'x'};

static void fill_all(mqtt_cbor_msg_t *m, uint32_t keys) {
  m->present = keys;
  m->ep = (mqtt_cbor_bytes_t){(const uint8_t *)"node-1", 6};
  m->pct = 112;
  m->uri = (mqtt_cbor_bytes_t){(const uint8_t *)"/3/0", 4};
  m->paths = (mqtt_cbor_bytes_t){paths_cbor, sizeof paths_cbor};
  m->payload = (mqtt_cbor_bytes_t){value_cbor, sizeof value_cbor};
  m->lifetime = 86400;
  m->version = (mqtt_cbor_bytes_t){(const uint8_t *)"1.2", 3};
  m->binding = (mqtt_cbor_bytes_t){(const uint8_t *)"MQ", 2};
  m->sms = (mqtt_cbor_bytes_t){(const uint8_t *)"+15551234567", 12};
  m->pmin = 10;
  m->pmax = 300;
  m->gt = (mqtt_cbor_float_t){25.5, 0};
  m->st = (mqtt_cbor_float_t){0.1, 0};
  m->epmin = 1;
  m->epmax = 65536;
  m->ct = 11542;
  m->edge = 1;
  m->hqmax = 4294967296u;
  m->depth = 3;
}

static void assert_msgs_equal(const mqtt_cbor_msg_t *a, const mqtt_cbor_msg_t *b) {
  assert_int_equal(a->present, b->present);
  for (unsigned k = 1; k <= MQTT_CBOR_KEY_MAX; k++) {
    if (!(a->present & MQTT_CBOR_BIT(k)))
      continue;
    switch (k) {
    case MQTT_CBOR_KEY_OPERATION: assert_int_equal(a->operation, b->operation); break;
    case MQTT_CBOR_KEY_TOKEN: assert_int_equal(a->token, b->token); break;
    case MQTT_CBOR_KEY_PCT: assert_int_equal(a->pct, b->pct); break;
    case MQTT_CBOR_KEY_LIFETIME: assert_int_equal(a->lifetime, b->lifetime); break;
    case MQTT_CBOR_KEY_PMIN: assert_int_equal(a->pmin, b->pmin); break;
    case MQTT_CBOR_KEY_PMAX: assert_int_equal(a->pmax, b->pmax); break;
    case MQTT_CBOR_KEY_EPMIN: assert_int_equal(a->epmin, b->epmin); break;
    case MQTT_CBOR_KEY_EPMAX: assert_int_equal(a->epmax, b->epmax); break;
    case MQTT_CBOR_KEY_RESULT: assert_int_equal(a->result, b->result); break;
    case MQTT_CBOR_KEY_CT: assert_int_equal(a->ct, b->ct); break;
    case MQTT_CBOR_KEY_HQMAX: assert_int_equal(a->hqmax, b->hqmax); break;
    case MQTT_CBOR_KEY_EDGE: assert_int_equal(a->edge, b->edge); break;
    case MQTT_CBOR_KEY_DEPTH: assert_int_equal(a->depth, b->depth); break;
    case MQTT_CBOR_KEY_GT: assert_true(a->gt.value == b->gt.value); break;
    case MQTT_CBOR_KEY_ST: assert_true(a->st.value == b->st.value); break;
    default: {
      const mqtt_cbor_bytes_t *x = k == MQTT_CBOR_KEY_EP        ? &a->ep
                                   : k == MQTT_CBOR_KEY_URI     ? &a->uri
                                   : k == MQTT_CBOR_KEY_PATHS   ? &a->paths
                                   : k == MQTT_CBOR_KEY_PAYLOAD ? &a->payload
                                   : k == MQTT_CBOR_KEY_VERSION ? &a->version
                                   : k == MQTT_CBOR_KEY_BINDING ? &a->binding
                                                                : &a->sms;
      const mqtt_cbor_bytes_t *y = k == MQTT_CBOR_KEY_EP        ? &b->ep
                                   : k == MQTT_CBOR_KEY_URI     ? &b->uri
                                   : k == MQTT_CBOR_KEY_PATHS   ? &b->paths
                                   : k == MQTT_CBOR_KEY_PAYLOAD ? &b->payload
                                   : k == MQTT_CBOR_KEY_VERSION ? &b->version
                                   : k == MQTT_CBOR_KEY_BINDING ? &b->binding
                                                                : &b->sms;
      assert_int_equal(x->len, y->len);
      assert_memory_equal(x->ptr, y->ptr, x->len);
    }
    }
  }
}

/* Optional keys of each operation's 8.3 table row. */
static uint32_t optional_keys(mqtt_cbor_iface_t iface, unsigned op) {
  if (iface == MQTT_CBOR_IFACE_BS) {
    switch (op) {
    case 0: return BIT(PCT);
    case 1: return BIT(URI);
    case 6: return BIT(PAYLOAD);
    default: return 0;
    }
  }
  switch (op) {
  case 6:
  case 7: return BIT(BINDING) | BIT(SMS) | BIT(PAYLOAD) | (op == 7 ? BIT(LIFETIME) : 0);
  case 11: return BIT(DEPTH);
  case 14:
    return BIT(PMIN) | BIT(PMAX) | BIT(GT) | BIT(ST) | BIT(EPMIN) | BIT(EPMAX) | BIT(EDGE) |
           BIT(HQMAX);
  case 16: return BIT(PAYLOAD);
  default: return 0;
  }
}

static void encode_decode(const mqtt_cbor_msg_t *msg, mqtt_cbor_iface_t iface) {
  uint8_t buf[512];
  long n = mqtt_cbor_encode(msg, buf, sizeof buf);
  assert_true(n > 0);
  mqtt_cbor_msg_t back;
  assert_int_equal(mqtt_cbor_decode(buf, (size_t)n, &back), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&back, iface, NULL), MQTT_CBOR_OK);
  assert_msgs_equal(msg, &back);
  uint8_t again[512];
  assert_int_equal(mqtt_cbor_encode(&back, again, sizeof again), n);
  assert_memory_equal(buf, again, (size_t)n);
}

static void test_every_operation(void **state) {
  (void)state;
  unsigned known = 0;
  for (int i = 0; i < 2; i++) {
    mqtt_cbor_iface_t iface = i ? MQTT_CBOR_IFACE_RD : MQTT_CBOR_IFACE_BS;
    for (unsigned op = 0; op <= 25; op++) {
      uint32_t need = mqtt_cbor_mandatory_keys(iface, op);
      mqtt_cbor_msg_t msg;
      memset(&msg, 0, sizeof msg);
      uint32_t missing;
      bool defined = iface == MQTT_CBOR_IFACE_BS ? op <= 6 : (op >= 6 && op <= 24 && op != 19);
      if (!defined) {
        assert_int_equal(need, 0);
        assert_null(mqtt_cbor_op_name(iface, op));
        fill_all(&msg, BIT(OPERATION) | BIT(TOKEN));
        msg.operation = op;
        assert_int_equal(mqtt_cbor_validate(&msg, iface, &missing), MQTT_CBOR_ERR_UNKNOWN_OP);
        assert_int_equal(missing, 0);
        assert_int_equal(mqtt_cbor_err_result(MQTT_CBOR_ERR_UNKNOWN_OP), 501);
        continue;
      }
      known++;
      assert_non_null(mqtt_cbor_op_name(iface, op));
      assert_true(need & BIT(OPERATION));
      assert_true(need & BIT(TOKEN));
      /* Mandatory only, then with every optional key. */
      fill_all(&msg, need);
      msg.operation = op;
      msg.token = 0x0102030405060708u + op;
      encode_decode(&msg, iface);
      fill_all(&msg, need | optional_keys(iface, op));
      msg.operation = op;
      encode_decode(&msg, iface);
      /* Each mandatory key left out in turn is reported. */
      for (unsigned k = 1; k <= MQTT_CBOR_KEY_MAX; k++) {
        if (!(need & MQTT_CBOR_BIT(k)) || k == MQTT_CBOR_KEY_OPERATION)
          continue;
        msg.present = need & ~MQTT_CBOR_BIT(k);
        assert_int_equal(mqtt_cbor_validate(&msg, iface, &missing), MQTT_CBOR_ERR_MISSING);
        assert_int_equal(missing, MQTT_CBOR_BIT(k));
        assert_int_equal(mqtt_cbor_err_result(MQTT_CBOR_ERR_MISSING), 400);
      }
    }
  }
  assert_int_equal(known, 7 + 18); /* 8.3.1: 7, 8.3.2-8.3.4: 3 + 10 + 5 */

  /* The 8.3 table specifics. */
  assert_int_equal(mqtt_cbor_mandatory_keys(MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_REGISTER),
                   BIT(OPERATION) | BIT(TOKEN) | BIT(LIFETIME) | BIT(VERSION));
  assert_int_equal(mqtt_cbor_mandatory_keys(MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_READ_COMPOSITE),
                   BIT(OPERATION) | BIT(TOKEN) | BIT(PATHS));
  assert_int_equal(mqtt_cbor_mandatory_keys(MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_CREATE),
                   BIT(OPERATION) | BIT(TOKEN) | BIT(URI) | BIT(CT) | BIT(PAYLOAD));
  assert_int_equal(mqtt_cbor_mandatory_keys(MQTT_CBOR_IFACE_BS, MQTT_CBOR_OP_BOOTSTRAP_WRITE),
                   BIT(OPERATION) | BIT(TOKEN) | BIT(CT) | BIT(PAYLOAD));

  /* Generic response (8.4). */
  mqtt_cbor_msg_t resp;
  memset(&resp, 0, sizeof resp);
  fill_all(&resp, BIT(RESULT) | BIT(TOKEN) | BIT(CT) | BIT(PAYLOAD));
  resp.result = 205;
  encode_decode(&resp, MQTT_CBOR_IFACE_RD);
  uint32_t missing;
  resp.present = BIT(RESULT);
  assert_int_equal(mqtt_cbor_validate(&resp, MQTT_CBOR_IFACE_RD, &missing),
                   MQTT_CBOR_ERR_MISSING);
  assert_int_equal(missing, BIT(TOKEN));
  resp.present = BIT(RESULT) | BIT(OPERATION) | BIT(TOKEN);
  assert_int_equal(mqtt_cbor_validate(&resp, MQTT_CBOR_IFACE_RD, NULL), MQTT_CBOR_ERR_AMBIGUOUS);
  resp.present = BIT(TOKEN);
  assert_int_equal(mqtt_cbor_validate(&resp, MQTT_CBOR_IFACE_RD, NULL), MQTT_CBOR_ERR_AMBIGUOUS);
}

/* Every row of tables 8.5-1..8.5-5: interface, operation, result, CoAP code. */
typedef struct {
  mqtt_cbor_iface_t iface;
  unsigned op;
  uint16_t result;
} result_row_t;

#define BS MQTT_CBOR_IFACE_BS
#define RD MQTT_CBOR_IFACE_RD
static const result_row_t result_rows[] = {
    /* 8.5-1 Bootstrap */
    {BS, 0, 204}, {BS, 0, 400}, {BS, 0, 415},
    {BS, 2, 205}, {BS, 2, 400}, {BS, 2, 401}, {BS, 2, 404}, {BS, 2, 405}, {BS, 2, 406},
    {BS, 1, 204}, {BS, 1, 400}, {BS, 1, 415},
    {BS, 4, 205}, {BS, 4, 400}, {BS, 4, 404},
    {BS, 3, 202}, {BS, 3, 400},
    {BS, 5, 204}, {BS, 5, 400}, {BS, 5, 406},
    {BS, 6, 205}, {BS, 6, 400}, {BS, 6, 401}, {BS, 6, 404}, {BS, 6, 405}, {BS, 6, 406},
    {BS, 6, 501},
    /* 8.5-2 Registration */
    {RD, 6, 201}, {RD, 6, 400}, {RD, 6, 403}, {RD, 6, 409}, {RD, 6, 412},
    {RD, 7, 204}, {RD, 7, 400}, {RD, 7, 404},
    {RD, 8, 202}, {RD, 8, 400}, {RD, 8, 404},
    /* 8.5-3 DM & SE */
    {RD, 17, 201}, {RD, 17, 400}, {RD, 17, 401}, {RD, 17, 404}, {RD, 17, 405}, {RD, 17, 406},
    {RD, 17, 415},
    {RD, 9, 205}, {RD, 9, 400}, {RD, 9, 401}, {RD, 9, 404}, {RD, 9, 405}, {RD, 9, 406},
    {RD, 10, 205}, {RD, 10, 400}, {RD, 10, 401}, {RD, 10, 404}, {RD, 10, 405}, {RD, 10, 406},
    {RD, 10, 415},
    {RD, 12, 204}, {RD, 12, 400}, {RD, 12, 401}, {RD, 12, 404}, {RD, 12, 405}, {RD, 12, 406},
    {RD, 12, 408}, {RD, 12, 413}, {RD, 12, 415},
    {RD, 13, 204}, {RD, 13, 400}, {RD, 13, 401}, {RD, 13, 404}, {RD, 13, 405}, {RD, 13, 406},
    {RD, 13, 408}, {RD, 13, 413}, {RD, 13, 415},
    {RD, 15, 204}, {RD, 15, 400}, {RD, 15, 401}, {RD, 15, 404}, {RD, 15, 405}, {RD, 15, 406},
    {RD, 18, 202}, {RD, 18, 400}, {RD, 18, 401}, {RD, 18, 404}, {RD, 18, 405},
    {RD, 16, 204}, {RD, 16, 400}, {RD, 16, 401}, {RD, 16, 404}, {RD, 16, 405},
    {RD, 14, 204}, {RD, 14, 400}, {RD, 14, 401}, {RD, 14, 404}, {RD, 14, 405},
    {RD, 11, 205}, {RD, 11, 400}, {RD, 11, 401}, {RD, 11, 404}, {RD, 11, 405},
    /* 8.5-4 Information Reporting */
    {RD, 20, 205}, {RD, 20, 400}, {RD, 20, 401}, {RD, 20, 404}, {RD, 20, 405}, {RD, 20, 406},
    {RD, 22, 205}, {RD, 22, 400}, {RD, 22, 401}, {RD, 22, 404}, {RD, 22, 405}, {RD, 22, 406},
    {RD, 21, 205}, {RD, 21, 400}, {RD, 21, 401}, {RD, 21, 404}, {RD, 21, 405}, {RD, 21, 406},
    {RD, 21, 415},
    {RD, 23, 205},
    {RD, 24, 204}, {RD, 24, 400}, {RD, 24, 404},
};

static void test_result_mapping(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof result_rows / sizeof result_rows[0]; i++) {
    const result_row_t *row = &result_rows[i];
    uint8_t code = 0;
    uint16_t back = 0;
    assert_int_equal(mqtt_cbor_result_to_coap(row->result, &code), MQTT_CBOR_OK);
    assert_int_equal(code >> 5, row->result / 100);
    assert_int_equal(code & 0x1f, row->result % 100);
    assert_int_equal(mqtt_cbor_result_from_coap(code, &back), MQTT_CBOR_OK);
    assert_int_equal(back, row->result);
    assert_true(mqtt_cbor_result_allowed(row->iface, row->op, row->result));
  }
  /* Spot checks against RFC 7252 12.1.2 code bytes. */
  uint8_t code;
  uint16_t res;
  assert_int_equal(mqtt_cbor_result_to_coap(201, &code), MQTT_CBOR_OK);
  assert_int_equal(code, 0x41); /* 2.01 Created */
  assert_int_equal(mqtt_cbor_result_to_coap(205, &code), MQTT_CBOR_OK);
  assert_int_equal(code, 0x45); /* 2.05 Content */
  assert_int_equal(mqtt_cbor_result_from_coap(0x84, &res), MQTT_CBOR_OK);
  assert_int_equal(res, 404);
  assert_int_equal(mqtt_cbor_result_from_coap(0xa3, &res), MQTT_CBOR_OK);
  assert_int_equal(res, 503);
  /* 8.5-5 generic errors: valid for every defined operation. */
  static const uint16_t generic[] = {500, 501, 503};
  for (size_t g = 0; g < 3; g++) {
    assert_int_equal(mqtt_cbor_result_to_coap(generic[g], &code), MQTT_CBOR_OK);
    assert_int_equal(mqtt_cbor_result_from_coap(code, &res), MQTT_CBOR_OK);
    assert_int_equal(res, generic[g]);
    for (unsigned op = 0; op <= 24; op++) {
      if (mqtt_cbor_op_name(RD, op))
        assert_true(mqtt_cbor_result_allowed(RD, op, generic[g]));
      if (mqtt_cbor_op_name(BS, op))
        assert_true(mqtt_cbor_result_allowed(BS, op, generic[g]));
    }
  }
  /* Values outside the tables. */
  assert_int_equal(mqtt_cbor_result_to_coap(203, &code), MQTT_CBOR_ERR_RESULT);
  assert_int_equal(mqtt_cbor_result_to_coap(0, &code), MQTT_CBOR_ERR_RESULT);
  assert_int_equal(mqtt_cbor_result_to_coap(UINT64_MAX, &code), MQTT_CBOR_ERR_RESULT);
  assert_int_equal(mqtt_cbor_result_from_coap(0x43, &res), MQTT_CBOR_ERR_RESULT); /* 2.03 */
  assert_int_equal(res, 500);
  assert_int_equal(mqtt_cbor_result_from_coap(0xa4, &res), MQTT_CBOR_ERR_RESULT); /* 5.04 */
  assert_int_equal(res, 500);
  assert_int_equal(mqtt_cbor_result_from_coap(0x82, &res), MQTT_CBOR_ERR_RESULT); /* 4.02 */
  assert_int_equal(res, 500);
  /* Results the tables do not list for that operation. */
  assert_false(mqtt_cbor_result_allowed(RD, MQTT_CBOR_OP_REGISTER, 204));
  assert_false(mqtt_cbor_result_allowed(RD, MQTT_CBOR_OP_NOTIFY, 400));
  assert_false(mqtt_cbor_result_allowed(RD, MQTT_CBOR_OP_READ, 201));
  assert_false(mqtt_cbor_result_allowed(BS, MQTT_CBOR_OP_BOOTSTRAP_DELETE, 404));
  assert_false(mqtt_cbor_result_allowed(RD, 19, 205));
  /* Count: every listed value maps, nothing else in 0..1023 does. */
  unsigned listed = 0;
  for (unsigned r = 0; r < 1024; r++)
    listed += mqtt_cbor_result_to_coap(r, NULL) == MQTT_CBOR_OK;
  assert_int_equal(listed, 18);
}

static void expect(int want, const uint8_t *data, size_t len) {
  mqtt_cbor_msg_t msg;
  int got = decode_copy(data, len, &msg);
  if (got != want)
    fail_msg("want %d (%s) got %d (%s)", want, mqtt_cbor_strerror(want), got,
             mqtt_cbor_strerror(got));
}

static void test_malformed(void **state) {
  (void)state;
  /* Not a map / empty. */
  expect(MQTT_CBOR_ERR_TRUNCATED, VEC(0xa2));
  expect(MQTT_CBOR_ERR_NOT_MAP, VEC(0x82, 0x01, 0x02));
  expect(MQTT_CBOR_ERR_NOT_MAP, VEC(0x01));
  mqtt_cbor_msg_t msg;
  assert_int_equal(mqtt_cbor_decode(NULL, 0, &msg), MQTT_CBOR_ERR_TRUNCATED);
  /* Wrong major types for each kind of key. */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x01, 0x20));             /* operation -1 */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x02, 0x41, 0x01));       /* token as bstr */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x05, 0x41, 0x2f));       /* uri as bstr */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x07, 0x61, 0x2f));       /* payload as tstr */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x06, 0x80));             /* paths as array */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x0e, 0x05));             /* gt as int */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x0f, 0xf5));             /* st as true */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x14, 0xf4));             /* edge as false */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x02, 0xc1, 0x01));       /* tagged token */
  expect(MQTT_CBOR_ERR_TYPE, VEC(0xa1, 0x12, 0xa0));             /* result as map */
  /* Values out of range. */
  expect(MQTT_CBOR_ERR_VALUE, VEC(0xa1, 0x14, 0x02));            /* edge 2 */
  expect(MQTT_CBOR_ERR_VALUE, VEC(0xa1, 0x16, 0x04));            /* depth 4 */
  expect(MQTT_CBOR_ERR_VALUE, VEC(0xa1, 0x0e, 0xf9, 0x7e, 0x00)); /* gt NaN */
  expect(MQTT_CBOR_ERR_VALUE, VEC(0xa1, 0x0f, 0xfa, 0x7f, 0x80, 0x00, 0x00)); /* st +inf */
  /* Oversized lengths and counts. */
  expect(MQTT_CBOR_ERR_TRUNCATED,
         VEC(0xa1, 0x07, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  expect(MQTT_CBOR_ERR_TRUNCATED, VEC(0xa1, 0x05, 0x7a, 0x80, 0x00, 0x00, 0x00, 0x61));
  expect(MQTT_CBOR_ERR_TRUNCATED,
         VEC(0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00));
  expect(MQTT_CBOR_ERR_TRUNCATED,
         VEC(0xa1, 0x18, 0x63, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  expect(MQTT_CBOR_ERR_TRUNCATED, VEC(0xa1, 0x18, 0x63, 0xba, 0x7f, 0xff, 0xff, 0xff, 0x00));
  /* Duplicates. */
  expect(MQTT_CBOR_ERR_DUPLICATE, VEC(0xa3, 0x01, 0x00, 0x02, 0x01, 0x01, 0x00));
  expect(MQTT_CBOR_ERR_DUPLICATE, VEC(0xa2, 0x05, 0x61, 0x2f, 0x05, 0x61, 0x2f));
  /* Ill-formed CBOR. */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa1, 0x01, 0x1c));        /* reserved info 28 */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa1, 0x01, 0x1f));        /* indefinite uint */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa2, 0x01, 0x00, 0xff));  /* break in definite map */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xbf, 0x01, 0xff));        /* break between key/value */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa1, 0x18, 0x63, 0xf8, 0x10)); /* simple 16, 2 bytes */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa1, 0x18, 0x63, 0x5f, 0x61, 0x41, 0xff)); /* tstr chunk */
  expect(MQTT_CBOR_ERR_MALFORMED, VEC(0xa1, 0x18, 0x63, 0x82, 0x01, 0xff));
  expect(MQTT_CBOR_ERR_INDEFINITE, VEC(0xa1, 0x07, 0x5f, 0x41, 0x01, 0xff));
  expect(MQTT_CBOR_ERR_UTF8, VEC(0xa1, 0x05, 0x62, 0xc0, 0xaf)); /* overlong '/' */
  expect(MQTT_CBOR_ERR_UTF8, VEC(0xa1, 0x05, 0x63, 0xed, 0xa0, 0x80)); /* surrogate */
  expect(MQTT_CBOR_ERR_UTF8, VEC(0xa1, 0x05, 0x62, 0xe2, 0x82));  /* cut sequence */
  expect(MQTT_CBOR_ERR_TRAILING, VEC(0xa1, 0x01, 0x00, 0x00));
  expect(MQTT_CBOR_ERR_TRAILING, VEC(0xbf, 0x01, 0x00, 0xff, 0xff));

  /* Truncation at every length of every example. */
  const struct {
    const uint8_t *d;
    size_t n;
  } full[] = {{ex_register, sizeof ex_register},
              {ex_read, sizeof ex_read},
              {ex_send, sizeof ex_send},
              {ex_response, sizeof ex_response}};
  for (size_t i = 0; i < 4; i++)
    for (size_t n = 0; n < full[i].n; n++)
      expect(MQTT_CBOR_ERR_TRUNCATED, full[i].d, n);

  /* A failed decode still tells the token, for a 400 answer (8.5). */
  assert_int_equal(mqtt_cbor_decode(VEC(0xa3, 0x02, 0x07, 0x01, 0x09, 0x05, 0x41, 0x2f), &msg),
                   MQTT_CBOR_ERR_TYPE);
  assert_true(msg.present & BIT(TOKEN));
  assert_int_equal(msg.token, 7);
  assert_int_equal(mqtt_cbor_err_result(MQTT_CBOR_ERR_TYPE), 400);

  /* Missing mandatory keys and an unknown operation, through decode + validate. */
  uint32_t missing;
  assert_int_equal(mqtt_cbor_decode(VEC(0xa2, 0x01, 0x09, 0x02, 0x01), &msg), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&msg, RD, &missing), MQTT_CBOR_ERR_MISSING);
  assert_int_equal(missing, BIT(URI));
  assert_int_equal(mqtt_cbor_decode(VEC(0xa1, 0x01, 0x06), &msg), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&msg, RD, &missing), MQTT_CBOR_ERR_MISSING);
  assert_int_equal(missing, BIT(TOKEN) | BIT(LIFETIME) | BIT(VERSION));
  assert_int_equal(mqtt_cbor_validate(&msg, BS, &missing), MQTT_CBOR_ERR_MISSING);
  assert_int_equal(missing, BIT(TOKEN));
  assert_int_equal(mqtt_cbor_decode(VEC(0xa2, 0x01, 0x13, 0x02, 0x01), &msg), MQTT_CBOR_OK);
  assert_int_equal(mqtt_cbor_validate(&msg, RD, &missing), MQTT_CBOR_ERR_UNKNOWN_OP);
  assert_int_equal(mqtt_cbor_decode(VEC(0xa2, 0x01, 0x19, 0x03, 0xe8, 0x02, 0x01), &msg),
                   MQTT_CBOR_OK);
  assert_int_equal(msg.operation, 1000);
  assert_int_equal(mqtt_cbor_validate(&msg, RD, NULL), MQTT_CBOR_ERR_UNKNOWN_OP);

  for (int e = 0; e >= -16; e--)
    assert_string_not_equal(mqtt_cbor_strerror(e), "unknown error");
  assert_string_equal(mqtt_cbor_strerror(-99), "unknown error");
}

/* $$extensions: unknown keys of any type are skipped, within the nesting bound. */
static void test_extensions(void **state) {
  (void)state;
  mqtt_cbor_msg_t msg;
  /* {1:0, 2:1, 99:[1,{"a":h'00'}], "x":tag(1, 5), -1:"y", 0:null, 23:1.5(half),
   *  24:(_ [_ 1], (_ h'01' h'02'), {_ 1: 2})} */
  static const uint8_t ext[] = {0xa8, 0x01, 0x00, 0x02, 0x01, 0x18, 0x63, 0x82, 0x01, 0xa1,
                                0x61, 0x61, 0x41, 0x00, 0x61, 0x78, 0xc1, 0x05, 0x20, 0x61,
                                0x79, 0x00, 0xf6, 0x17, 0xf9, 0x3e, 0x00, 0x18, 0x18, 0x9f,
                                0x9f, 0x01, 0xff, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0xbf,
                                0x01, 0x02, 0xff, 0xff};
  expect(MQTT_CBOR_OK, ext, sizeof ext);
  assert_int_equal(mqtt_cbor_decode(ext, sizeof ext, &msg), MQTT_CBOR_OK);
  assert_int_equal(msg.unknown_keys, 6);
  assert_int_equal(msg.present, BIT(OPERATION) | BIT(TOKEN));
  assert_int_equal(mqtt_cbor_validate(&msg, BS, NULL), MQTT_CBOR_OK);
  /* Extensions are dropped on re-encode. */
  uint8_t out[16];
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), 5);
  assert_memory_equal(out, ((const uint8_t[]){0xa2, 0x01, 0x00, 0x02, 0x01}), 5);

  /* Indefinite top-level map is accepted, re-encoded definite. */
  assert_int_equal(mqtt_cbor_decode(VEC(0xbf, 0x01, 0x00, 0x02, 0x01, 0xff), &msg),
                   MQTT_CBOR_OK);
  assert_int_equal(msg.present, BIT(OPERATION) | BIT(TOKEN));

  /* Nesting: 16 levels of arrays are fine, 17 are refused. */
  uint8_t deep[3 + 17 + 1];
  deep[0] = 0xa1;
  deep[1] = 0x18;
  deep[2] = 0x63;
  for (int levels = 16; levels <= 17; levels++) {
    size_t n = 3;
    for (int i = 0; i < levels - 1; i++)
      deep[n++] = 0x81;
    deep[n++] = 0x80;
    expect(levels == 16 ? MQTT_CBOR_OK : MQTT_CBOR_ERR_TOO_DEEP, deep, n);
  }
  /* A tag chain is not nesting and costs one byte a tag. */
  expect(MQTT_CBOR_OK, VEC(0xa1, 0x18, 0x63, 0xc1, 0xc2, 0xc3, 0xc4, 0x01));
}

static void test_floats_and_encode_errors(void **state) {
  (void)state;
  /* gt as half, st as single, then as double: each keeps its width. */
  static const uint8_t half_single[] = {0xa2, 0x0e, 0xf9, 0x3e, 0x00, 0x0f,
                                        0xfa, 0x47, 0xc3, 0x50, 0x00};
  static const uint8_t dbl[] = {0xa1, 0x0e, 0xfb, 0x3f, 0xb9, 0x99, 0x99,
                                0x99, 0x99, 0x99, 0x9a};
  static const uint8_t wide_half[] = {0xa1, 0x0f, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
  static const uint8_t subnormal[] = {0xa1, 0x0e, 0xf9, 0x80, 0x01}; /* -2^-24 */
  mqtt_cbor_msg_t msg;
  uint8_t out[32];
  const struct {
    const uint8_t *d;
    size_t n;
  } vecs[] = {{half_single, sizeof half_single},
              {dbl, sizeof dbl},
              {wide_half, sizeof wide_half},
              {subnormal, sizeof subnormal}};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(mqtt_cbor_decode(vecs[i].d, vecs[i].n, &msg), MQTT_CBOR_OK);
    assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), (long)vecs[i].n);
    assert_memory_equal(out, vecs[i].d, vecs[i].n);
  }
  assert_int_equal(mqtt_cbor_decode(half_single, sizeof half_single, &msg), MQTT_CBOR_OK);
  assert_true(msg.gt.value == 1.5 && msg.gt.width == 2);
  assert_true(msg.st.value == 100000.0 && msg.st.width == 4);
  /* width 0 picks the shortest exact size. */
  memset(&msg, 0, sizeof msg);
  msg.present = BIT(GT);
  msg.gt.value = 1.5;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), 5);
  msg.gt.value = 100000.0;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), 7);
  msg.gt.value = 0.1;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), 11);
  msg.gt.value = -0.0;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), 5);
  assert_int_equal(out[3], 0x80);
  /* A width that cannot hold the value, and non-finite values, are refused. */
  msg.gt = (mqtt_cbor_float_t){0.1, 2};
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_VALUE);
  msg.gt = (mqtt_cbor_float_t){INFINITY, 0};
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_VALUE);
  /* Other encode argument errors. */
  memset(&msg, 0, sizeof msg);
  msg.present = BIT(EDGE);
  msg.edge = 2;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_VALUE);
  msg.present = BIT(DEPTH);
  msg.depth = 4;
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_VALUE);
  msg.present = BIT(URI);
  msg.uri = (mqtt_cbor_bytes_t){NULL, 3};
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_INVAL);
  msg.present = MQTT_CBOR_BIT(23);
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_INVAL);
  msg.present = 1; /* bit 0: no key 0 */
  assert_int_equal(mqtt_cbor_encode(&msg, out, sizeof out), MQTT_CBOR_ERR_INVAL);
  assert_int_equal(mqtt_cbor_encode(NULL, out, sizeof out), MQTT_CBOR_ERR_INVAL);
  assert_int_equal(mqtt_cbor_encode(&msg, NULL, 4), MQTT_CBOR_ERR_INVAL);
  /* Empty message: an empty map. */
  msg.present = 0;
  assert_int_equal(mqtt_cbor_encode(&msg, out, 1), 1);
  assert_int_equal(out[0], 0xa0);
  /* Integer heads at every width boundary. */
  static const uint64_t tokens[] = {0,    23,      24,      255,        256,       65535,
                                    65536, 0xffffffffu, 0x100000000u, UINT64_MAX};
  static const long lens[] = {5, 5, 6, 6, 7, 7, 9, 9, 13, 13};
  for (size_t i = 0; i < 10; i++) {
    msg.present = BIT(TOKEN) | BIT(OPERATION);
    msg.operation = 0;
    msg.token = tokens[i];
    long n = mqtt_cbor_encode(&msg, out, sizeof out);
    assert_int_equal(n, lens[i]);
    mqtt_cbor_msg_t back;
    assert_int_equal(mqtt_cbor_decode(out, (size_t)n, &back), MQTT_CBOR_OK);
    assert_true(back.token == tokens[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_bootstrap_request),
      cmocka_unit_test(test_examples_round_trip),
      cmocka_unit_test(test_every_operation),
      cmocka_unit_test(test_result_mapping),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_extensions),
      cmocka_unit_test(test_floats_and_encode_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
