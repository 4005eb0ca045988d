/* lwm2m-gw: ChirpStack v4 and The Things Stack v3 MQTT messages <-> gw_ns_event_t. See
 * ns_event.h for the sources; the comments below name the file a rule comes from. */
#include "ns_event.h"

#include <stdio.h>
#include <string.h>

#include "gw_error.h"
#include "gw_json.h"
#include "gw_random.h"
#include "gw_text.h"
#include "region.h"

/* JSON nesting: GW_JSON_DEPTH. The deepest field read here is TTS
 * uplink_message.settings.data_rate.lora.spreading_factor (5 levels); the rest of the depth is
 * for what a payload formatter puts in decoded_payload, which is not read but must parse. */
/* Longest application id taken (a TTS "app@tenant" is at most 73 characters). It keeps every
 * topic written here within GW_NS_TOPIC_MAX. */
#define APP_MAX 100
#define TOPIC_LEVELS 8

typedef struct {
  const char *s;
  size_t len;
} level_t;

/* ---- small helpers ---------------------------------------------------------------------- */

static bool level_is(const level_t *l, const char *s) {
  return l->len == strlen(s) && memcmp(l->s, s, l->len) == 0;
}

/* Splits topic at '/' into at most max levels; returns the count, or max + 1 when there are
 * more. */
static size_t split_topic(const char *topic, level_t *lv, size_t max) {
  size_t n = 0;
  const char *p = topic;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (n == max)
      return max + 1;
    lv[n].s = p;
    lv[n].len = len;
    n++;
    if (!slash)
      return n;
    p = slash + 1;
  }
}

/* An application id the gateway may put in a topic: printable ASCII, no space, no '/', and no
 * MQTT wildcard (MQTT 3.1.1 4.7.1). */
static bool app_ok(const char *app) {
  size_t n = app ? strnlen(app, APP_MAX + 1) : 0;
  if (n == 0 || n > APP_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (app[i] <= 0x20 || app[i] >= 0x7f || app[i] == '/' || app[i] == '+' || app[i] == '#')
      return false;
  return true;
}

/* TTS identifiers: two characters are let through too, as early v3 releases allowed them
 * (api/identifiers.proto: ^[a-z0-9](?:[-]?[a-z0-9]){1,35}$). */
static bool tts_id_ok(const char *s, size_t len) { return gw_is_tts_id(s, len, 2); }

/* An item id as it travels: 1..GW_NS_ITEM_ID_MAX printable ASCII characters, no space. */
static bool item_id_ok(const char *s, size_t len) {
  if (len == 0 || len > GW_NS_ITEM_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] <= 0x20 || s[i] >= 0x7f)
      return false;
  return true;
}

static void copy_text(char *dst, size_t dst_size, const char *src, size_t len) {
  if (len >= dst_size)
    len = dst_size - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

int gw_eui64_parse(const char *hex, uint8_t out[8]) {
  size_t n = 0;
  if (!hex || strnlen(hex, 17) != 16)
    return GW_ERR_INVAL;
  return gw_hex_decode(hex, 16, out, 8, &n) == GW_OK ? GW_OK : GW_ERR_INVAL;
}

void gw_eui64_format(const uint8_t eui[8], bool upper, char out[17]) {
  static const char lower_digits[] = "0123456789abcdef", upper_digits[] = "0123456789ABCDEF";
  const char *d = upper ? upper_digits : lower_digits;
  for (size_t i = 0; i < 8; i++) {
    out[2 * i] = d[eui[i] >> 4];
    out[2 * i + 1] = d[eui[i] & 15];
  }
  out[16] = '\0';
}

const char *gw_ns_event_kind_name(gw_ns_event_kind_t kind) {
  switch (kind) {
  case GW_NS_EV_UPLINK: return "uplink";
  case GW_NS_EV_QUEUED: return "queued";
  case GW_NS_EV_SENT: return "sent";
  case GW_NS_EV_ACKED: return "acked";
  case GW_NS_EV_NACKED: return "nacked";
  case GW_NS_EV_FAILED: return "failed";
  case GW_NS_EV_TOO_LARGE: return "too large";
  case GW_NS_EV_TX_ERROR: return "tx error";
  case GW_NS_EV_OTHER: return "other";
  }
  return "?";
}

/* ---- reading JSON ----------------------------------------------------------------------- */

/* base64 FRMPayload into out->data. */
static int take_payload(const char *b64, size_t len, gw_ns_event_t *out, const char **why) {
  int rc = gw_base64_decode(b64, len, out->data, GW_NS_DATA_MAX, &out->data_len);
  if (rc == GW_ERR_TOOBIG)
    *why = "data longer than 255 bytes";
  else if (rc != GW_OK)
    *why = "bad base64";
  return rc == GW_OK ? GW_OK : GW_ERR_INVAL;
}

/* take_frame's answer for a frame without FPort. */
#define NO_FPORT 1

/* FPort, FCnt and the confirmed flag of an uplink, under either network server's names; FCnt
 * and confirmed default to 0 and false. A missing FPort is 0 (TTS leaves zeros out, ChirpStack
 * before 4.1 too). FPort 0 (MAC commands only) or none (an empty frame, which a class A device
 * sends to open its receive windows) are valid uplinks with nothing for the application:
 * ChirpStack still sends them as up events (uplink/data.rs: f_port: f_port.unwrap_or(0)). For
 * those NO_FPORT, with the reason in out->reason; otherwise GW_OK or GW_ERR_INVAL. */
static int take_frame(json_object *o, const char *fport_key, const char *fcnt_key,
                      gw_ns_event_t *out, const char **why) {
  uint64_t fport = 0, fcnt = 0;
  bool present;
  if (gw_json_get_uint(o, fport_key, UINT32_MAX, &fport, &present) < 0) {
    *why = "fPort not an integer";
    return GW_ERR_INVAL;
  }
  if (fport == 0) {
    snprintf(out->reason, sizeof out->reason, "uplink without FPort (MAC commands or empty)");
    return NO_FPORT;
  }
  if (fport > 255) {
    *why = "fPort out of range";
    return GW_ERR_INVAL;
  }
  out->fport = (uint8_t)fport;
  if (gw_json_get_uint(o, fcnt_key, UINT32_MAX, &fcnt, &present) < 0) {
    *why = "fCnt not a 32-bit unsigned integer";
    return GW_ERR_INVAL;
  }
  out->fcnt = (uint32_t)fcnt;
  if (gw_json_get_bool(o, "confirmed", &out->confirmed) < 0) {
    *why = "confirmed not a boolean";
    return GW_ERR_INVAL;
  }
  return GW_OK;
}

/* ---- ChirpStack v4 ---------------------------------------------------------------------- */

/* deviceInfo (every event of integration.proto has one): when present, its devEui and
 * applicationId must be the topic's. ChirpStack writes both from the same device record. */
static int cs_check_device_info(json_object *root, const char *app, const gw_ns_event_t *out,
                                const char **why) {
  json_object *info;
  const char *s;
  size_t len;
  uint8_t eui[8];
  if (gw_json_get_object(root, "deviceInfo", &info) < 0) {
    *why = "deviceInfo not an object";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(info, "devEui", &s, &len) < 0 || (s && gw_eui64_parse(s, eui) != GW_OK)) {
    *why = "devEui not 16 hex digits";
    return GW_ERR_INVAL;
  }
  if (s && memcmp(eui, out->dev_eui, 8) != 0) {
    *why = "devEui does not match the topic";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(info, "applicationId", &s, &len) < 0 || (s && strcmp(s, app) != 0)) {
    *why = "applicationId does not match the topic";
    return GW_ERR_INVAL;
  }
  return GW_OK;
}

/* UplinkEvent. pbjson emits default values since ChirpStack 4.1 (emit_fields); earlier ones
 * and the docs' example leave out fCnt 0 and confirmed false, so only fPort and data are
 * required. */
static int cs_uplink(json_object *root, gw_ns_event_t *out, const char **why) {
  json_object *jsc;
  uint64_t v = 0;
  bool present;
  const char *s;
  size_t len;
  /* A non-empty joinServerContext: ChirpStack has no AppSKey and data is still encrypted
   * (integration.proto UplinkEvent.join_server_context). */
  if (gw_json_get_object(root, "joinServerContext", &jsc) < 0 ||
      (jsc && json_object_object_length(jsc) > 0)) {
    *why = "payload encrypted by the join server (joinServerContext)";
    return GW_ERR_INVAL;
  }
  int rc = take_frame(root, "fPort", "fCnt", out, why);
  if (rc != GW_OK)
    return rc == NO_FPORT ? GW_OK : GW_ERR_INVAL;
  if (gw_json_get_uint(root, "dr", UINT32_MAX, &v, &present) < 0 ||
      (present && v >= GW_REGION_DR_COUNT)) {
    *why = "dr out of range";
    return GW_ERR_INVAL;
  }
  out->dr = present ? (int)v : -1;
  if (gw_json_get_string(root, "data", &s, &len) < 0) {
    *why = "data not a string";
    return GW_ERR_INVAL;
  }
  if (!s) {
    *why = "missing field data";
    return GW_ERR_INVAL;
  }
  if (take_payload(s, len, out, why) != GW_OK)
    return GW_ERR_INVAL;
  out->kind = GW_NS_EV_UPLINK;
  return GW_OK;
}

/* queueItemId of TxAckEvent and AckEvent: the id the gateway gave in DownlinkCommand.id. */
static int cs_item_id(json_object *o, const char *key, gw_ns_event_t *out, const char **why,
                      const char *missing, const char *bad) {
  const char *s;
  size_t len;
  if (gw_json_get_string(o, key, &s, &len) < 0 || (s && !item_id_ok(s, len))) {
    *why = bad;
    return GW_ERR_INVAL;
  }
  if (!s) {
    *why = missing;
    return GW_ERR_INVAL;
  }
  copy_text(out->item_id, sizeof out->item_id, s, len);
  return GW_OK;
}

/* AckEvent: acknowledged true for a device ACK; false (also left out, before 4.1) when the
 * next uplink had no ACK or the class B/C timeout passed (downlink/data.rs). */
static int cs_ack(json_object *root, gw_ns_event_t *out, const char **why) {
  bool acked = false;
  if (cs_item_id(root, "queueItemId", out, why, "missing field queueItemId",
                 "queueItemId not an id") != GW_OK)
    return GW_ERR_INVAL;
  if (gw_json_get_bool(root, "acknowledged", &acked) < 0) {
    *why = "acknowledged not a boolean";
    return GW_ERR_INVAL;
  }
  out->kind = acked ? GW_NS_EV_ACKED : GW_NS_EV_NACKED;
  return GW_OK;
}

/* A decimal string of the LogEvent context (map<string, string>); 0 when it is not one. */
static uint32_t decimal_u32(const char *s) {
  uint64_t v = 0;
  if (!s || !*s)
    return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return 0;
    v = v * 10 + (uint64_t)(*s - '0');
    if (v > UINT32_MAX)
      return 0;
  }
  return (uint32_t)v;
}

/* LogEvent: the codes that tell a queue item's fate (downlink/data.rs, downlink/tx_ack.rs).
 * DOWNLINK_PAYLOAD_SIZE, EXPIRED and F_CNT_DOWN delete the item and name it in
 * context.queue_item_id; DOWNLINK_GATEWAY names no item, which stays queued. */
static int cs_log(json_object *root, gw_ns_event_t *out, const char **why) {
  const char *code, *desc, *s;
  size_t code_len, desc_len, len;
  json_object *ctx;
  if (gw_json_get_string(root, "code", &code, &code_len) < 0) {
    *why = "code not a string";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(root, "description", &desc, &desc_len) < 0) {
    *why = "description not a string";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_object(root, "context", &ctx) < 0) {
    *why = "context not an object";
    return GW_ERR_INVAL;
  }
  if (!code)
    code = "UNKNOWN"; /* LogCode 0, left out before 4.1 */
  snprintf(out->reason, sizeof out->reason, "%s%s%s", code, desc ? ": " : "", desc ? desc : "");
  if (gw_json_get_string(ctx, "queue_item_id", &s, &len) < 0 || (s && !item_id_ok(s, len))) {
    *why = "context queue_item_id not an id";
    return GW_ERR_INVAL;
  }
  bool has_item = s != NULL;
  if (has_item)
    copy_text(out->item_id, sizeof out->item_id, s, len);
  out->kind = GW_NS_EV_OTHER;
  if (strcmp(code, "DOWNLINK_GATEWAY") == 0) {
    out->kind = GW_NS_EV_TX_ERROR;
  } else if (has_item && strcmp(code, "DOWNLINK_PAYLOAD_SIZE") == 0) {
    out->kind = GW_NS_EV_TOO_LARGE;
    if (gw_json_get_string(ctx, "max_payload_size", &s, &len) == 0)
      out->max_payload = decimal_u32(s);
  } else if (has_item) {
    out->kind = GW_NS_EV_FAILED;
  }
  return GW_OK;
}

/* Topic: application/{application_id}/device/{dev_eui}/event/{event} (mqtt.rs event_topic;
 * dev_eui lower-case hex, lrwn/src/eui64.rs). */
static int parse_chirpstack(const char *app, const level_t *lv, size_t n,
                            const uint8_t *payload, size_t len, gw_ns_event_t *out,
                            const char **why) {
  if (n < 2 || !level_is(&lv[0], "application")) {
    *why = "not a ChirpStack topic";
    return GW_ERR_INVAL;
  }
  if (!level_is(&lv[1], app)) {
    *why = "topic not of this application";
    return GW_ERR_INVAL;
  }
  if (n != 6 || !level_is(&lv[2], "device") ||
      !(level_is(&lv[4], "event") || level_is(&lv[4], "command"))) {
    *why = "not a ChirpStack device event topic";
    return GW_ERR_INVAL;
  }
  char eui_text[17];
  if (lv[3].len != 16) {
    *why = "devEui in the topic not 16 hex digits";
    return GW_ERR_INVAL;
  }
  copy_text(eui_text, sizeof eui_text, lv[3].s, 16);
  if (gw_eui64_parse(eui_text, out->dev_eui) != GW_OK) {
    *why = "devEui in the topic not 16 hex digits";
    return GW_ERR_INVAL;
  }
  out->has_dev_eui = true;
  copy_text(out->device_id, sizeof out->device_id, eui_text, 16);

  /* command/down is the gateway's own downlink, seen by a wider subscription; join, status,
   * location, integration and events still to come are not the gateway's business. */
  enum { UP, TXACK, ACK, LOG, OTHER } ev = OTHER;
  if (level_is(&lv[4], "event")) {
    ev = level_is(&lv[5], "up") ? UP : level_is(&lv[5], "txack") ? TXACK
       : level_is(&lv[5], "ack") ? ACK : level_is(&lv[5], "log") ? LOG : OTHER;
  }
  if (ev == OTHER)
    return GW_OK;

  json_object *root;
  int rc = gw_json_parse_object(payload, len, GW_NS_PAYLOAD_MAX, &root, why);
  if (rc != GW_OK)
    return rc;
  rc = cs_check_device_info(root, app, out, why);
  if (rc == GW_OK) {
    switch (ev) {
    case UP: rc = cs_uplink(root, out, why); break;
    case TXACK:
      rc = cs_item_id(root, "queueItemId", out, why, "missing field queueItemId",
                      "queueItemId not an id");
      if (rc == GW_OK)
        out->kind = GW_NS_EV_SENT;
      break;
    case ACK: rc = cs_ack(root, out, why); break;
    default: rc = cs_log(root, out, why); break;
    }
  }
  json_object_put(root);
  return rc;
}

/* ---- The Things Stack v3 ---------------------------------------------------------------- */

/* end_device_ids (ApplicationUp): device_id and application_ids.application_id, when present,
 * must be the topic's; dev_eui (upper-case hex) is taken when present (an ABP device may have
 * none). */
static int tts_check_ids(json_object *root, const char *app, gw_ns_event_t *out,
                         const char **why) {
  json_object *ids, *app_ids;
  const char *s;
  size_t len;
  if (gw_json_get_object(root, "end_device_ids", &ids) < 0) {
    *why = "end_device_ids not an object";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(ids, "device_id", &s, &len) < 0 || (s && strcmp(s, out->device_id) != 0)) {
    *why = "device_id does not match the topic";
    return GW_ERR_INVAL;
  }
  /* The topic says "app@tenant" (or "app" on TTS Open Source), the payload "app". */
  size_t app_len = strcspn(app, "@");
  if (gw_json_get_object(ids, "application_ids", &app_ids) < 0 ||
      gw_json_get_string(app_ids, "application_id", &s, &len) < 0 ||
      (s && (len != app_len || memcmp(s, app, app_len) != 0))) {
    *why = "application_id does not match the topic";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(ids, "dev_eui", &s, &len) < 0 ||
      (s && gw_eui64_parse(s, out->dev_eui) != GW_OK)) {
    *why = "dev_eui not 16 hex digits";
    return GW_ERR_INVAL;
  }
  out->has_dev_eui = s != NULL;
  return GW_OK;
}

/* settings.data_rate of an uplink: TTS gives the modulation, not the index. Only sizes depend
 * on it and -1 (unknown) is the safe answer, so a malformed one reads as unknown. */
static int tts_data_rate(json_object *settings) {
  json_object *rate, *lora, *fsk;
  uint64_t sf = 0, bw = 0, bit_rate = 0;
  bool p1, p2;
  if (gw_json_get_object(settings, "data_rate", &rate) < 0 || !rate)
    return -1;
  if (gw_json_get_object(rate, "lora", &lora) == 0 && lora &&
      gw_json_get_uint(lora, "spreading_factor", 12, &sf, &p1) == 0 &&
      gw_json_get_uint(lora, "bandwidth", UINT32_MAX, &bw, &p2) == 0)
    return gw_region_eu868_lora_dr((unsigned)sf, (uint32_t)bw);
  if (gw_json_get_object(rate, "fsk", &fsk) == 0 && fsk &&
      gw_json_get_uint(fsk, "bit_rate", UINT32_MAX, &bit_rate, &p1) == 0)
    return gw_region_eu868_fsk_dr((uint32_t)bit_rate);
  return -1;
}

/* ApplicationUplink. Empty fields are left out (data-formats: "if a certain field has a value of
 * "", 0 or false it will not be present"): no f_port is FPort 0, no frm_payload an empty one. */
static int tts_uplink(json_object *root, gw_ns_event_t *out, const char **why) {
  json_object *up, *settings;
  const char *s;
  size_t len;
  if (gw_json_get_object(root, "uplink_message", &up) < 0 || !up) {
    *why = "missing field uplink_message";
    return GW_ERR_INVAL;
  }
  int rc = take_frame(up, "f_port", "f_cnt", out, why);
  if (rc != GW_OK)
    return rc == NO_FPORT ? GW_OK : GW_ERR_INVAL;
  if (gw_json_get_string(up, "frm_payload", &s, &len) < 0) {
    *why = "frm_payload not a string";
    return GW_ERR_INVAL;
  }
  if (s && take_payload(s, len, out, why) != GW_OK)
    return GW_ERR_INVAL;
  out->dr = gw_json_get_object(up, "settings", &settings) == 0 ? tts_data_rate(settings) : -1;
  out->kind = GW_NS_EV_UPLINK;
  return GW_OK;
}

/* The first of correlation_ids that starts with GW_NS_ITEM_PREFIX: the id the gateway pushed.
 * Returns 1 when found, 0 when not, -1 when correlation_ids is not an array. */
static int tts_find_item(json_object *o, gw_ns_event_t *out) {
  json_object *ids = gw_json_field(o, "correlation_ids");
  if (!ids)
    return 0;
  if (!json_object_is_type(ids, json_type_array))
    return -1;
  size_t n = json_object_array_length(ids), prefix_len = strlen(GW_NS_ITEM_PREFIX);
  for (size_t i = 0; i < n; i++) {
    json_object *id = json_object_array_get_idx(ids, i);
    if (!id || !json_object_is_type(id, json_type_string))
      continue;
    const char *s = json_object_get_string(id);
    size_t len = (size_t)json_object_get_string_len(id);
    if (len > prefix_len && strncmp(s, GW_NS_ITEM_PREFIX, prefix_len) == 0 &&
        strlen(s) == len && item_id_ok(s, len)) {
      copy_text(out->item_id, sizeof out->item_id, s, len);
      return 1;
    }
  }
  return 0;
}

/* An error attribute that is a count of bytes (a google.protobuf.Struct number: int or
 * double); 0 when absent or not one. */
static uint32_t tts_attribute_u32(json_object *error, const char *key) {
  json_object *attrs, *v;
  if (gw_json_get_object(error, "attributes", &attrs) < 0 || !(v = gw_json_field(attrs, key)))
    return 0;
  if (json_object_is_type(v, json_type_int)) {
    int64_t i = json_object_get_int64(v);
    return i > 0 && i <= UINT32_MAX ? (uint32_t)i : 0;
  }
  if (json_object_is_type(v, json_type_double)) {
    double d = json_object_get_double(v);
    return d >= 1 && d <= UINT32_MAX && d == (double)(uint32_t)d ? (uint32_t)d : 0;
  }
  return 0;
}

static const struct {
  const char *topic, *field, *missing;
  gw_ns_event_kind_t kind;
} tts_down_events[] = {
    {"queued", "downlink_queued", "missing field downlink_queued", GW_NS_EV_QUEUED},
    {"sent", "downlink_sent", "missing field downlink_sent", GW_NS_EV_SENT},
    {"ack", "downlink_ack", "missing field downlink_ack", GW_NS_EV_ACKED},
    {"nack", "downlink_nack", "missing field downlink_nack", GW_NS_EV_NACKED},
    {"failed", "downlink_failed", "missing field downlink_failed", GW_NS_EV_FAILED},
};

/* down/queued|sent|ack|nack carry the ApplicationDownlink with its correlation_ids, ours among
 * them; down/failed carries {downlink, error} (data-formats "Downlink Events Messages"). */
static int tts_down(json_object *root, size_t ev, gw_ns_event_t *out, const char **why) {
  json_object *body, *down = NULL, *error = NULL;
  if (gw_json_get_object(root, tts_down_events[ev].field, &body) < 0 || !body) {
    *why = tts_down_events[ev].missing;
    return GW_ERR_INVAL;
  }
  bool failed = tts_down_events[ev].kind == GW_NS_EV_FAILED;
  if (failed && (gw_json_get_object(body, "downlink", &down) < 0 ||
                 gw_json_get_object(body, "error", &error) < 0)) {
    *why = "downlink_failed not {downlink, error}";
    return GW_ERR_INVAL;
  }
  if (!failed)
    down = body;
  int found = tts_find_item(down, out);
  if (found == 0)
    found = tts_find_item(root, out);
  if (found < 0) {
    *why = "correlation_ids not an array";
    return GW_ERR_INVAL;
  }
  out->kind = found ? tts_down_events[ev].kind : GW_NS_EV_OTHER; /* not pushed by the gateway */
  if (failed) {
    const char *name, *msg;
    size_t name_len, msg_len;
    if (gw_json_get_string(error, "name", &name, &name_len) < 0 ||
        gw_json_get_string(error, "message_format", &msg, &msg_len) < 0) {
      *why = "error name or message_format not a string";
      return GW_ERR_INVAL;
    }
    snprintf(out->reason, sizeof out->reason, "%s%s%s", name ? name : "unknown error",
             msg ? ": " : "", msg ? msg : "");
    /* pkg/networkserver: application_downlink_too_long, "application downlink payload length
     * `{length}` exceeds maximum '{max}'". */
    if (found && name && strcmp(name, "application_downlink_too_long") == 0) {
      out->kind = GW_NS_EV_TOO_LARGE;
      out->max_payload = tts_attribute_u32(error, "max");
    }
  }
  return GW_OK;
}

/* Topics: v3/{application id[@tenant id]}/devices/{device id}/... (topics/v3.go). */
static int parse_tts(const char *app, const level_t *lv, size_t n, const uint8_t *payload,
                     size_t len, gw_ns_event_t *out, const char **why) {
  if (n < 2 || !level_is(&lv[0], "v3")) {
    *why = "not a TTS topic";
    return GW_ERR_INVAL;
  }
  if (!level_is(&lv[1], app)) {
    *why = "topic not of this application";
    return GW_ERR_INVAL;
  }
  if (n < 5 || !level_is(&lv[2], "devices")) {
    *why = "not a TTS device topic";
    return GW_ERR_INVAL;
  }
  if (!tts_id_ok(lv[3].s, lv[3].len)) {
    *why = "device ID in the topic not a TTS ID";
    return GW_ERR_INVAL;
  }
  copy_text(out->device_id, sizeof out->device_id, lv[3].s, lv[3].len);

  bool up = n == 5 && level_is(&lv[4], "up");
  size_t ev = sizeof tts_down_events / sizeof tts_down_events[0];
  if (n == 6 && level_is(&lv[4], "down"))
    for (ev = 0; ev < sizeof tts_down_events / sizeof tts_down_events[0]; ev++)
      if (level_is(&lv[5], tts_down_events[ev].topic))
        break;
  /* join, down/push and down/replace (the gateway's own), down/invalidated, location/solved,
   * service/data: nothing the gateway acts on. */
  if (!up && ev == sizeof tts_down_events / sizeof tts_down_events[0])
    return GW_OK;

  json_object *root;
  int rc = gw_json_parse_object(payload, len, GW_NS_PAYLOAD_MAX, &root, why);
  if (rc != GW_OK)
    return rc;
  rc = tts_check_ids(root, app, out, why);
  if (rc == GW_OK)
    rc = up ? tts_uplink(root, out, why) : tts_down(root, ev, out, why);
  json_object_put(root);
  return rc;
}

int gw_ns_parse(gw_ns_format_t fmt, const char *app, const char *topic, const uint8_t *payload,
                size_t len, gw_ns_event_t *out, const char **why) {
  static const char *unused;
  if (!why)
    why = &unused;
  *why = NULL;
  memset(out, 0, sizeof *out);
  out->kind = GW_NS_EV_OTHER;
  out->dr = -1;
  if (!app_ok(app)) {
    *why = "application id not usable in a topic";
    return GW_ERR_INVAL;
  }
  if (!topic || (!payload && len > 0)) {
    *why = "no topic or payload";
    return GW_ERR_INVAL;
  }
  level_t lv[TOPIC_LEVELS];
  size_t n = split_topic(topic, lv, TOPIC_LEVELS);
  int rc;
  if (fmt == GW_NS_CHIRPSTACK)
    rc = parse_chirpstack(app, lv, n, payload, len, out, why);
  else if (fmt == GW_NS_TTS)
    rc = parse_tts(app, lv, n, payload, len, out, why);
  else {
    *why = "unknown network-server format";
    rc = GW_ERR_INVAL;
  }
  if (rc != GW_OK) {
    /* Keep only who it was about, for the log line. */
    gw_ns_event_t who = *out;
    memset(out, 0, sizeof *out);
    out->kind = GW_NS_EV_OTHER;
    out->dr = -1;
    memcpy(out->dev_eui, who.dev_eui, sizeof out->dev_eui);
    out->has_dev_eui = who.has_dev_eui;
    memcpy(out->device_id, who.device_id, sizeof out->device_id);
  }
  return rc;
}

/* ---- toward the network server ---------------------------------------------------------- */

size_t gw_ns_subscriptions(gw_ns_format_t fmt, const char *app, char out[][GW_NS_TOPIC_MAX],
                           size_t max) {
  static const char *const tts_suffixes[] = {"up", "down/queued", "down/sent", "down/ack",
                                             "down/nack", "down/failed"};
  if (!app_ok(app))
    return 0;
  if (fmt == GW_NS_CHIRPSTACK) {
    if (max > 0)
      snprintf(out[0], GW_NS_TOPIC_MAX, "application/%s/device/+/event/+", app);
    return 1;
  }
  if (fmt != GW_NS_TTS)
    return 0;
  size_t count = sizeof tts_suffixes / sizeof tts_suffixes[0];
  for (size_t i = 0; i < count && i < max; i++)
    snprintf(out[i], GW_NS_TOPIC_MAX, "v3/%s/devices/+/%s", app, tts_suffixes[i]);
  return count;
}

/* DownlinkCommand (integration.proto) as ChirpStack's pbjson reads it. */
static json_object *cs_command(const char *eui_text, bool confirmed, uint8_t fport,
                               const char *item_id, const char *b64) {
  json_object *o = json_object_new_object();
  if (o && gw_json_add(o, "id", json_object_new_string(item_id)) &&
      gw_json_add(o, "devEui", json_object_new_string(eui_text)) &&
      gw_json_add(o, "confirmed", json_object_new_boolean(confirmed)) &&
      gw_json_add(o, "fPort", json_object_new_int(fport)) &&
      gw_json_add(o, "data", json_object_new_string(b64)))
    return o;
  json_object_put(o);
  return NULL;
}

/* {"downlinks": [ApplicationDownlink]} (data-formats "Downlink Messages"). NORMAL priority:
 * above the default LOWEST, so a CoAP answer is not held behind other applications' bulk. */
static json_object *tts_push(bool confirmed, uint8_t fport, const char *item_id, const char *b64) {
  /* Each container is handed to its parent as it is made, so one json_object_put of the root
   * frees whatever was built when a step fails. */
  json_object *o = json_object_new_object(), *list, *item, *ids;
  bool ok = o && gw_json_add(o, "downlinks", list = json_object_new_array()) &&
            gw_json_add(list, NULL, item = json_object_new_object()) &&
            gw_json_add(item, "f_port", json_object_new_int(fport)) &&
            gw_json_add(item, "frm_payload", json_object_new_string(b64)) &&
            gw_json_add(item, "confirmed", json_object_new_boolean(confirmed)) &&
            gw_json_add(item, "priority", json_object_new_string("NORMAL")) &&
            gw_json_add(item, "correlation_ids", ids = json_object_new_array()) &&
            gw_json_add(ids, NULL, json_object_new_string(item_id));
  if (ok)
    return o;
  json_object_put(o);
  return NULL;
}

int gw_ns_downlink(gw_ns_format_t fmt, const char *app, const uint8_t dev_eui[8],
                   const char *device_id, uint8_t fport, bool confirmed, const char *item_id,
                   const uint8_t *data, size_t len, char *topic, size_t topic_size, char *json,
                   size_t json_size) {
  if (topic_size)
    topic[0] = '\0';
  if (json_size)
    json[0] = '\0';
  if (!app_ok(app) || fport == 0 || len > GW_NS_DATA_MAX || (!data && len > 0) || !item_id ||
      !item_id_ok(item_id, strnlen(item_id, GW_NS_ITEM_ID_MAX + 1)))
    return GW_ERR_INVAL;
  char b64[GW_BASE64_LEN(GW_NS_DATA_MAX) + 1];
  if (gw_base64_encode(data, len, b64, sizeof b64) != GW_OK)
    return GW_ERR_INVAL;
  json_object *root;
  int n;
  if (fmt == GW_NS_CHIRPSTACK) {
    /* mqtt.rs: "id" must parse as a UUID; devEui must equal the topic's text. */
    if (!dev_eui || !gw_is_uuid(item_id))
      return GW_ERR_INVAL;
    char eui_text[17];
    gw_eui64_format(dev_eui, false, eui_text);
    n = snprintf(topic, topic_size, "application/%s/device/%s/command/down", app, eui_text);
    root = cs_command(eui_text, confirmed, fport, item_id, b64);
  } else if (fmt == GW_NS_TTS) {
    /* ApplicationDownlink.f_port: lte 255, not_in [224] (224 is LoRaWAN's test port). */
    if (!device_id || !tts_id_ok(device_id, strnlen(device_id, GW_NS_DEVICE_ID_MAX + 1)) ||
        fport == 224)
      return GW_ERR_INVAL;
    n = snprintf(topic, topic_size, "v3/%s/devices/%s/down/push", app, device_id);
    root = tts_push(confirmed, fport, item_id, b64);
  } else {
    return GW_ERR_INVAL;
  }
  if (!root) {
    if (topic_size)
      topic[0] = '\0';
    return GW_ERR_NOMEM;
  }
  size_t text_len = 0;
  const char *text = json_object_to_json_string_length(
      root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &text_len);
  int rc = GW_OK;
  if (!text)
    rc = GW_ERR_NOMEM;
  else if (n < 0 || (size_t)n >= topic_size || text_len >= json_size)
    rc = GW_ERR_TOOBIG;
  else
    memcpy(json, text, text_len + 1);
  json_object_put(root);
  if (rc != GW_OK && topic_size)
    topic[0] = '\0';
  return rc;
}

void gw_ns_new_item_id(gw_ns_format_t fmt, char out[GW_NS_ITEM_ID_MAX + 1]) {
  uint8_t b[16];
  gw_random_bytes(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* RFC 4122 4.4: version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* the variant of RFC 4122 4.1.1 */
  snprintf(out, GW_NS_ITEM_ID_MAX + 1,
           "%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           fmt == GW_NS_TTS ? GW_NS_ITEM_PREFIX : "", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
           b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
