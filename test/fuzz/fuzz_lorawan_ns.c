/* libFuzzer target for the LoRaWAN network-server codec (lorawan/ns_event.h): its MQTT messages
 * come from the network server, or from anyone who may publish on that broker.
 *
 * Byte 0 picks the format (bit 0: ChirpStack or The Things Stack) and, for TTS, the application
 * id with or without a tenant (bit 1). The rest up to the first NUL is the topic; what follows
 * the NUL is the payload. Checks: a refusal has a reason and leaves an OTHER event with no data
 * and no item; an accepted event has its fields in range and its strings NUL-terminated; an
 * uplink's payload, sent back as a downlink to the same device, comes out of the JSON the codec
 * writes (read back with json-c) unchanged, and the codec's own downlink topic, fed back to it,
 * is never taken for an event of the gateway's. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_text.h"
#include "ns_event.h"

#define CS_APP "17c82e96-be03-4f38-aef3-f83d48582d97"
#define CS_ITEM "1bbcab1d-6ec6-4136-b3f5-d63be1dc08de"
#define TTS_ITEM GW_NS_ITEM_PREFIX "0b8a1f6e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"

static void check(bool ok) {
  if (!ok)
    abort();
}

static bool terminated(const char *s, size_t size) { return memchr(s, '\0', size) != NULL; }

static json_object *member(json_object *o, const char *key, json_type type) {
  json_object *v = NULL;
  check(json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type));
  return v;
}

/* The uplink's payload, sent back to the device that sent it. */
static void check_downlink(gw_ns_format_t fmt, const char *app, const gw_ns_event_t *ev) {
  char topic[GW_NS_TOPIC_MAX], json[1024];
  bool tts = fmt == GW_NS_TTS;
  int rc = gw_ns_downlink(fmt, app, ev->has_dev_eui ? ev->dev_eui : NULL, ev->device_id,
                          ev->fport, ev->confirmed, tts ? TTS_ITEM : CS_ITEM, ev->data,
                          ev->data_len, topic, sizeof topic, json, sizeof json);
  if (rc != GW_OK) {
    /* TTS refuses its test port; ChirpStack needs the DevEUI, which its topics always give. */
    check(rc == GW_ERR_INVAL && tts && ev->fport == 224);
    check(topic[0] == '\0' && json[0] == '\0');
    return;
  }
  json_object *root = json_tokener_parse(json);
  check(root && json_object_is_type(root, json_type_object));
  json_object *item = root;
  if (tts) {
    json_object *list = member(root, "downlinks", json_type_array);
    check(json_object_array_length(list) == 1);
    item = json_object_array_get_idx(list, 0);
    check(item && json_object_is_type(item, json_type_object));
  }
  check(json_object_get_int(member(item, tts ? "f_port" : "fPort", json_type_int)) == ev->fport);
  check(json_object_get_boolean(member(item, "confirmed", json_type_boolean)) == ev->confirmed);
  json_object *b64 = member(item, tts ? "frm_payload" : "data", json_type_string);
  uint8_t back[GW_NS_DATA_MAX];
  size_t n = 0;
  check(gw_base64_decode(json_object_get_string(b64), (size_t)json_object_get_string_len(b64),
                         back, sizeof back, &n) == GW_OK);
  check(n == ev->data_len && memcmp(back, ev->data, n) == 0);
  json_object_put(root);

  /* The codec's own publication, seen by a subscription that takes it in, is nothing for it. */
  gw_ns_event_t echo;
  const char *why = NULL;
  check(gw_ns_parse(fmt, app, topic, (const uint8_t *)json, strlen(json), &echo, &why) == GW_OK);
  check(echo.kind == GW_NS_EV_OTHER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  gw_ns_format_t fmt = data[0] & 1 ? GW_NS_TTS : GW_NS_CHIRPSTACK;
  const char *app = fmt == GW_NS_CHIRPSTACK ? CS_APP : data[0] & 2 ? "app1@tenant1" : "app1";
  data++;
  size--;
  const uint8_t *nul = memchr(data, 0, size);
  if (!nul)
    return 0;
  size_t topic_len = (size_t)(nul - data);
  char *topic = malloc(topic_len + 1);
  check(topic != NULL);
  memcpy(topic, data, topic_len);
  topic[topic_len] = '\0';
  const uint8_t *payload = nul + 1;
  size_t payload_len = size - topic_len - 1;

  gw_ns_event_t ev;
  const char *why = NULL;
  int rc = gw_ns_parse(fmt, app, topic, payload, payload_len, &ev, &why);
  free(topic);
  check(terminated(ev.device_id, sizeof ev.device_id) && terminated(ev.item_id, sizeof ev.item_id) &&
        terminated(ev.reason, sizeof ev.reason));
  if (rc != GW_OK) {
    check((rc == GW_ERR_INVAL || rc == GW_ERR_NOMEM) && why && *why);
    check(ev.kind == GW_NS_EV_OTHER && ev.data_len == 0 && ev.item_id[0] == '\0');
    return 0;
  }
  check(why == NULL);
  check(ev.kind >= GW_NS_EV_UPLINK && ev.kind <= GW_NS_EV_OTHER);
  check(ev.data_len <= GW_NS_DATA_MAX);
  check(ev.dr >= -1 && ev.dr < 16);
  check(ev.device_id[0] != '\0');
  check(fmt == GW_NS_TTS || ev.has_dev_eui);
  bool names_item = ev.kind != GW_NS_EV_UPLINK && ev.kind != GW_NS_EV_TX_ERROR &&
                    ev.kind != GW_NS_EV_OTHER;
  check(!names_item || ev.item_id[0] != '\0');
  check(fmt == GW_NS_CHIRPSTACK || !names_item ||
        strncmp(ev.item_id, GW_NS_ITEM_PREFIX, strlen(GW_NS_ITEM_PREFIX)) == 0);
  check(ev.kind == GW_NS_EV_TOO_LARGE || ev.max_payload == 0);
  if (ev.kind != GW_NS_EV_UPLINK) {
    check(ev.data_len == 0 && ev.fport == 0);
    return 0;
  }
  check(ev.fport >= 1 && ev.item_id[0] == '\0');
  check_downlink(fmt, app, &ev);
  return 0;
}
