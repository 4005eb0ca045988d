/* libFuzzer target for the LwM2M-over-MQTT <-> CoAP translation (mqtt/mqtt_coap.h): device
 * messages from the broker, server requests from upstream and topic names all reach it.
 *
 * The first byte picks what the rest is:
 *  0: an MQTT message (CBOR). Uplink translation for both interfaces, with and without a
 *     registration location, notification and response_from_mqtt. Every CoAP message produced
 *     must serialize and parse again, and its response_to_mqtt must encode and decode.
 *  1: a CoAP message. downlink_op + downlink_request for both interfaces; every MQTT message
 *     produced must validate, encode and decode again.
 *  2: a topic (NUL-terminated at the first NUL) against the prefixes "", "t" and "a/b"; a
 *     parsed topic must build back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_coap.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static uint8_t wire[64 * 1024];

/* An MQTT message must encode, and its encoding decode. */
static void check_mqtt_round_trip(const mqtt_cbor_msg_t *msg) {
  long need = mqtt_cbor_encode(msg, NULL, 0);
  check(need > 0);
  uint8_t *buf = malloc((size_t)need);
  check(buf != NULL);
  check(mqtt_cbor_encode(msg, buf, (size_t)need) == need);
  mqtt_cbor_msg_t back;
  check(mqtt_cbor_decode(buf, (size_t)need, &back) == MQTT_CBOR_OK);
  check(back.present == msg->present);
  free(buf);
}

/* A produced CoAP message must serialize and parse; its answer maps back to an 8.4 response. */
static void check_coap_round_trip(const gw_coap_msg_t *msg) {
  size_t n = gw_coap_serialize(msg, wire, sizeof wire);
  if (n == 0) {
    check(msg->payload_len > sizeof wire / 2); /* only a huge payload may not fit */
    return;
  }
  gw_coap_msg_t back;
  check(gw_coap_parse(wire, n, &back) == GW_COAP_PARSE_OK);
  check(back.code == msg->code && back.option_count == msg->option_count &&
        back.payload_len == msg->payload_len);
  mqtt_cbor_msg_t resp;
  int err = mqtt_coap_response_to_mqtt(&back, 1, &resp);
  check(err == 0 || (err == MQTT_CBOR_ERR_RESULT && resp.result == 500));
  check_mqtt_round_trip(&resp);
}

static void fuzz_uplink(const uint8_t *data, size_t size) {
  mqtt_cbor_msg_t msg;
  if (mqtt_cbor_decode(data, size, &msg) != MQTT_CBOR_OK)
    return;
  static const char *const locations[] = {NULL, "/rd/5a3f"};
  gw_coap_msg_t out;
  for (int iface = 0; iface < 2; iface++) {
    int valid = mqtt_cbor_validate(&msg, (mqtt_cbor_iface_t)iface, NULL);
    for (size_t l = 0; l < 2; l++) {
      mqtt_coap_scratch_t scratch = {.used = 0};
      mqtt_coap_uplink_ctx_t ctx = {"node-1", locations[l]};
      int rc = mqtt_coap_uplink_request(&msg, (mqtt_cbor_iface_t)iface, &ctx, 7, &out, &scratch);
      check(rc == 0 || rc == 400 || rc == 404 || rc == 501);
      check(scratch.used <= sizeof scratch.buf);
      if (valid == MQTT_CBOR_ERR_UNKNOWN_OP)
        check(rc == 501);
      if (rc == 0)
        check_coap_round_trip(&out);
    }
  }
  static const uint8_t token[] = {0xa1, 0xb2, 0xc3};
  mqtt_coap_scratch_t scratch = {.used = 0};
  if (mqtt_coap_notification(&msg, token, sizeof token, 0x1234567, 9, &out, &scratch) == 0)
    check_coap_round_trip(&out);
  uint32_t seq = 3;
  for (int observe = 0; observe < 2; observe++) {
    scratch.used = 0;
    int err = mqtt_coap_response_from_mqtt(&msg, 9, token, sizeof token, observe ? &seq : NULL,
                                           &out, &scratch);
    check(err == 0 || err == MQTT_CBOR_ERR_RESULT || err == MQTT_CBOR_ERR_VALUE);
    check(err == 0 || out.code == GW_COAP_INTERNAL_ERROR);
    check_coap_round_trip(&out);
  }
}

static void fuzz_downlink(const uint8_t *data, size_t size) {
  gw_coap_msg_t req;
  if (gw_coap_parse(data, size, &req) != GW_COAP_PARSE_OK)
    return;
  for (int iface = 0; iface < 2; iface++) {
    uint64_t op;
    if (mqtt_coap_downlink_op(&req, (mqtt_cbor_iface_t)iface, &op) != 0)
      continue;
    check(mqtt_cbor_op_name((mqtt_cbor_iface_t)iface, op) != NULL);
    mqtt_coap_scratch_t scratch = {.used = 0};
    mqtt_cbor_msg_t out;
    int rc = mqtt_coap_downlink_request(&req, op, 0x0102030405060708u, &out, &scratch);
    check(rc == 0 || rc == GW_COAP_CODE(4, 0) || rc == GW_COAP_CODE(5, 1));
    if (rc != 0)
      continue;
    check(mqtt_cbor_validate(&out, (mqtt_cbor_iface_t)iface, NULL) == MQTT_CBOR_OK);
    check_mqtt_round_trip(&out);
  }
}

static void fuzz_topic(const uint8_t *data, size_t size) {
  char *topic = malloc(size + 1);
  check(topic != NULL);
  memcpy(topic, data, size);
  topic[size] = '\0';
  static const char *const prefixes[] = {"", "t", "a/b"};
  size_t idx, ep_len;
  mqtt_cbor_iface_t iface;
  const char *ep;
  int rc = mqtt_topic_parse(topic, prefixes, 3, &idx, &iface, &ep, &ep_len);
  check(rc == 0 || rc == -1 || rc == -2);
  if (rc == 0) {
    size_t len = strlen(topic);
    check(idx < 3 && ep_len >= 1 && ep_len <= MQTT_EP_MAX);
    check(ep >= topic && ep + ep_len == topic + len);
    char built[512];
    check(mqtt_topic_build(prefixes[idx], iface, ep, built, sizeof built) == len);
    check(strcmp(built, topic) == 0);
    check(mqtt_topic_filter(prefixes[idx], iface, built, sizeof built) > 0);
  }
  free(topic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  switch (data[0] % 3) {
  case 0: fuzz_uplink(data + 1, size - 1); break;
  case 1: fuzz_downlink(data + 1, size - 1); break;
  default: fuzz_topic(data + 1, size - 1); break;
  }
  return 0;
}
