/* libFuzzer target for the LwM2M-over-MQTT CBOR codec: every MQTT message a device publishes on
 * {prefix}/lwm2m/{bs,rd}/{ep} reaches mqtt_cbor_decode() first.
 *
 * Checks beyond "no crash": borrowed strings lie inside the input; a decoded message encodes
 * (never longer than the input when it had no extensions, since the encoder writes the shortest
 * heads and keeps float widths), the encoding re-decodes to an equal message and re-encodes to
 * the same bytes, and does not fit one byte less. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lwm2m_cbor.h"

static void check(bool ok) {
  if (!ok)
    abort();
}


static bool msgs_equal(const mqtt_cbor_msg_t *a, const mqtt_cbor_msg_t *b) {
  if (a->present != b->present)
    return false;
  for (unsigned k = 1; k <= MQTT_CBOR_KEY_MAX; k++) {
    const mqtt_cbor_bytes_t *x = mqtt_cbor_string_field(a, k), *y = mqtt_cbor_string_field(b, k);
    if (x && (a->present & MQTT_CBOR_BIT(k)) &&
        (x->len != y->len || (x->len && memcmp(x->ptr, y->ptr, x->len) != 0)))
      return false;
  }
  return a->operation == b->operation && a->token == b->token && a->pct == b->pct &&
         a->lifetime == b->lifetime && a->pmin == b->pmin && a->pmax == b->pmax &&
         a->epmin == b->epmin && a->epmax == b->epmax && a->result == b->result &&
         a->ct == b->ct && a->edge == b->edge && a->hqmax == b->hqmax && a->depth == b->depth &&
         a->gt.value == b->gt.value && a->gt.width == b->gt.width &&
         a->st.value == b->st.value && a->st.width == b->st.width;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mqtt_cbor_msg_t msg;
  int err = mqtt_cbor_decode(data, size, &msg);
  check(mqtt_cbor_strerror(err) != NULL);
  for (unsigned k = 1; k <= MQTT_CBOR_KEY_MAX; k++) {
    const mqtt_cbor_bytes_t *s = mqtt_cbor_string_field(&msg, k);
    if (s && (msg.present & MQTT_CBOR_BIT(k)))
      check(s->len <= size && s->ptr >= data && s->ptr + s->len <= data + size);
  }
  if (err != MQTT_CBOR_OK) {
    check(mqtt_cbor_err_result(err) == 400);
    return 0;
  }
  for (int iface = 0; iface < 2; iface++) {
    uint32_t missing;
    int v = mqtt_cbor_validate(&msg, (mqtt_cbor_iface_t)iface, &missing);
    check(v == MQTT_CBOR_OK || v == MQTT_CBOR_ERR_MISSING || v == MQTT_CBOR_ERR_UNKNOWN_OP ||
          v == MQTT_CBOR_ERR_AMBIGUOUS);
    check((v == MQTT_CBOR_ERR_MISSING) == (missing != 0 && v != MQTT_CBOR_ERR_UNKNOWN_OP));
    (void)mqtt_cbor_op_name((mqtt_cbor_iface_t)iface, msg.operation);
    (void)mqtt_cbor_result_allowed((mqtt_cbor_iface_t)iface, msg.operation, msg.result);
  }
  uint8_t coap;
  if (mqtt_cbor_result_to_coap(msg.result, &coap) == MQTT_CBOR_OK) {
    uint16_t back;
    check(mqtt_cbor_result_from_coap(coap, &back) == MQTT_CBOR_OK && back == msg.result);
  }

  long need = mqtt_cbor_encode(&msg, NULL, 0);
  check(need > 0);
  if (msg.unknown_keys == 0)
    check((size_t)need <= size);
  uint8_t *out = malloc((size_t)need);
  check(out != NULL);
  check(mqtt_cbor_encode(&msg, out, (size_t)need) == need);
  check(mqtt_cbor_encode(&msg, out, (size_t)need - 1) == MQTT_CBOR_ERR_TOO_SMALL);
  mqtt_cbor_msg_t again;
  check(mqtt_cbor_decode(out, (size_t)need, &again) == MQTT_CBOR_OK);
  check(again.unknown_keys == 0);
  check(msgs_equal(&msg, &again));
  uint8_t *out2 = malloc((size_t)need);
  check(out2 != NULL);
  check(mqtt_cbor_encode(&again, out2, (size_t)need) == need);
  check(memcmp(out, out2, (size_t)need) == 0);
  free(out2);
  free(out);
  return 0;
}
