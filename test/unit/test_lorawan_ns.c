/* Unit tests of the LoRaWAN network-server codec (lorawan/ns_event.h) and the regional payload
 * sizes (lorawan/region.h).
 *
 * Vectors: the JSON examples of chirpstack-docs src/chirpstack/integrations/events.md (up,
 * txack, ack, log) and of lorawan-stack-docs integrations/data-formats (uplink, downlink events,
 * down/failed application_downlink_too_long), with the fields ChirpStack's downlink/data.rs puts
 * in a log event's context; see shared/reference/lorawan-and-t8.md PART 1. Every refusal has a
 * case. Downlinks the codec writes are read back with json-c, field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "gw_error.h"
#include "gw_text.h"
#include "json_read.h"
#include "ns_event.h"
#include "region.h"

#define CS_APP "17c82e96-be03-4f38-aef3-f83d48582d97"
#define CS_TOPIC(dev, ev) "application/" CS_APP "/device/" dev "/event/" ev
/* deviceInfo as in events.md. */
#define CS_INFO(eui)                                                                              \
  "\"deviceInfo\": {\"tenantId\": \"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\", \"tenantName\": "    \
  "\"ChirpStack\", \"applicationId\": \"" CS_APP "\", \"applicationName\": \"Test "              \
  "application\", \"deviceProfileId\": \"14855bf7-d10d-4aee-b618-ebfcb64dc7ad\", "              \
  "\"deviceProfileName\": \"Test device-profile\", \"deviceName\": \"Test device\", \"devEui\": " \
  "\"" eui "\", \"tags\": {\"key\": \"value\"}}"

static int parse(gw_ns_format_t fmt, const char *app, const char *topic, const char *json,
                 gw_ns_event_t *ev, const char **why) {
  return gw_ns_parse(fmt, app, topic, (const uint8_t *)json, strlen(json), ev, why);
}

static void expect_ok(gw_ns_format_t fmt, const char *app, const char *topic, const char *json,
                      gw_ns_event_kind_t kind, gw_ns_event_t *ev) {
  const char *why = "unset";
  int rc = parse(fmt, app, topic, json, ev, &why);
  if (rc != GW_OK)
    fail_msg("%s: %s", topic, why ? why : "(no reason)");
  assert_null(why);
  assert_int_equal(ev->kind, kind);
}

static void expect_reject(gw_ns_format_t fmt, const char *app, const char *topic,
                          const char *json, const char *reason) {
  gw_ns_event_t ev;
  const char *why = NULL;
  int rc = parse(fmt, app, topic, json, &ev, &why);
  if (rc == GW_OK)
    fail_msg("accepted (%s): %s", gw_ns_event_kind_name(ev.kind), json);
  assert_int_equal(rc, GW_ERR_INVAL);
  assert_non_null(why);
  if (strcmp(why, reason) != 0)
    fail_msg("expected \"%s\", got \"%s\" for %s", reason, why, json);
  assert_int_equal(ev.kind, GW_NS_EV_OTHER);
  assert_int_equal(ev.data_len, 0);
  assert_string_equal(ev.item_id, "");
}

static const uint8_t eui_01[8] = {1, 1, 1, 1, 1, 1, 1, 1};

/* ---- ChirpStack v4 ---------------------------------------------------------------------- */

/* events.md "up": no fCnt (0), no confirmed (false) in the docs' example. */
static const char cs_up_docs[] =
    "{\"deduplicationId\": \"3ac7e3c4-4401-4b8d-9386-a5c902f9202d\", \"time\": "
    "\"2022-07-18T09:34:15.775023242+00:00\", " CS_INFO("0101010101010101") ", \"devAddr\": "
    "\"00189440\", \"dr\": 1, \"fPort\": 1, \"data\": \"qg==\", \"rxInfo\": [{\"gatewayId\": "
    "\"0016c001f153a14c\", \"uplinkId\": 4217106255, \"rssi\": -36, \"snr\": 10.5, \"context\": "
    "\"E3OWOQ==\", \"metadata\": {\"region_name\": \"eu868\", \"region_common_name\": "
    "\"EU868\"}}], \"txInfo\": {\"frequency\": 867100000, \"modulation\": {\"lora\": "
    "{\"bandwidth\": 125000, \"spreadingFactor\": 11, \"codeRate\": \"CR_4_5\"}}}}";

static void test_cs_uplink_docs_example(void **state) {
  (void)state;
  gw_ns_event_t ev;
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "up"), cs_up_docs,
            GW_NS_EV_UPLINK, &ev);
  assert_true(ev.has_dev_eui);
  assert_memory_equal(ev.dev_eui, eui_01, 8);
  assert_string_equal(ev.device_id, "0101010101010101");
  assert_int_equal(ev.fport, 1);
  assert_int_equal(ev.fcnt, 0);
  assert_int_equal(ev.dr, 1);
  assert_false(ev.confirmed);
  assert_int_equal(ev.data_len, 1);
  assert_int_equal(ev.data[0], 0xaa);
  assert_string_equal(ev.item_id, "");
}

/* ChirpStack >= 4.1 emits every scalar (emit_fields): fCnt, confirmed, adr are there. */
static void test_cs_uplink_all_fields(void **state) {
  (void)state;
  gw_ns_event_t ev;
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0016c001f000175a", "up"),
            "{" CS_INFO("0016C001F000175A") ", \"devAddr\": \"01020304\", \"adr\": true, "
            "\"dr\": 5, \"fCnt\": 4294967295, \"fPort\": 255, \"confirmed\": true, \"data\": "
            "\"Zm9vYmFy\", \"object\": null, \"joinServerContext\": null, "
            "\"regionConfigId\": \"eu868\"}",
            GW_NS_EV_UPLINK, &ev);
  static const uint8_t eui[8] = {0x00, 0x16, 0xc0, 0x01, 0xf0, 0x00, 0x17, 0x5a};
  assert_memory_equal(ev.dev_eui, eui, 8);
  assert_int_equal(ev.fport, 255);
  assert_int_equal(ev.fcnt, 4294967295u);
  assert_int_equal(ev.dr, 5);
  assert_true(ev.confirmed);
  assert_int_equal(ev.data_len, 6);
  assert_memory_equal(ev.data, "foobar", 6);

  /* No dr: unknown. An empty data: a frame with FPort and no FRMPayload. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "up"),
            "{\"fPort\": 3, \"data\": \"\"}", GW_NS_EV_UPLINK, &ev);
  assert_int_equal(ev.dr, -1);
  assert_int_equal(ev.data_len, 0);
  assert_true(ev.has_dev_eui); /* from the topic */

  /* 255 bytes, the most a FRMPayload carries. */
  uint8_t bin[255];
  memset(bin, 0x5a, sizeof bin);
  char json[512], b64[GW_BASE64_LEN(255) + 1];
  gw_base64_encode(bin, sizeof bin, b64, sizeof b64);
  snprintf(json, sizeof json, "{\"fPort\": 1, \"data\": \"%s\"}", b64);
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "up"), json, GW_NS_EV_UPLINK,
            &ev);
  assert_int_equal(ev.data_len, 255);
  assert_memory_equal(ev.data, bin, 255);
}

static void test_cs_txack_and_ack(void **state) {
  (void)state;
  gw_ns_event_t ev;
  /* events.md "txack". */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "txack"),
            "{\"downlinkId\": 3461958127, \"time\": \"2022-07-18T09:37:48.929184085+00:00\", "
            CS_INFO("0101010101010101") ", \"queueItemId\": "
            "\"42cb6459-a640-46ec-9623-bdff39dc4736\", \"fCntDown\": 2, \"gatewayId\": "
            "\"0016c001f153a14c\", \"txInfo\": {\"frequency\": 867900000, \"power\": 14, "
            "\"modulation\": {\"lora\": {\"bandwidth\": 125000, \"spreadingFactor\": 7, "
            "\"codeRate\": \"CR_4_5\", \"polarizationInversion\": true}}, \"timing\": {\"delay\": "
            "{\"delay\": \"1s\"}}, \"context\": \"ICYVGw==\"}}",
            GW_NS_EV_SENT, &ev);
  assert_string_equal(ev.item_id, "42cb6459-a640-46ec-9623-bdff39dc4736");
  assert_memory_equal(ev.dev_eui, eui_01, 8);

  /* events.md "ack". */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
            "{\"deduplicationId\": \"856a03e7-80f6-4c26-b971-9dcb34a59c2e\", \"time\": "
            "\"2022-07-18T09:38:49.235700766+00:00\", " CS_INFO("0101010101010101") ", "
            "\"queueItemId\": \"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\", \"acknowledged\": true, "
            "\"fCntDown\": 3}",
            GW_NS_EV_ACKED, &ev);
  assert_string_equal(ev.item_id, "1bbcab1d-6ec6-4136-b3f5-d63be1dc08de");

  /* downlink/data.rs: a pending item past its chance, acknowledged false. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
            "{\"deduplicationId\": \"\", " CS_INFO("0101010101010101") ", \"queueItemId\": "
            "\"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\", \"acknowledged\": false, \"fCntDown\": 3}",
            GW_NS_EV_NACKED, &ev);
  assert_string_equal(ev.item_id, "1bbcab1d-6ec6-4136-b3f5-d63be1dc08de");
  /* Before 4.1 a false acknowledged was left out. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
            "{\"queueItemId\": \"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\"}", GW_NS_EV_NACKED, &ev);
}

static void test_cs_log_events(void **state) {
  (void)state;
  gw_ns_event_t ev;
  /* downlink/data.rs: the item did not fit the data rate of the downlink opportunity. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"time\": \"2022-07-18T09:39:57.311414029+00:00\", " CS_INFO("0101010101010101")
            ", \"level\": \"ERROR\", \"code\": \"DOWNLINK_PAYLOAD_SIZE\", \"description\": "
            "\"Device queue-item discarded because it exceeds the max. payload size\", "
            "\"context\": {\"max_payload_size\": \"51\", \"item_size\": \"64\", "
            "\"queue_item_id\": \"9f1b2f3e-0c43-4a8e-8d5e-3b7c1f2a4d60\"}}",
            GW_NS_EV_TOO_LARGE, &ev);
  assert_string_equal(ev.item_id, "9f1b2f3e-0c43-4a8e-8d5e-3b7c1f2a4d60");
  assert_int_equal(ev.max_payload, 51);
  assert_string_equal(ev.reason, "DOWNLINK_PAYLOAD_SIZE: Device queue-item discarded because it "
                                 "exceeds the max. payload size");
  /* A size that is not a number: the limit is unknown, the event still counts. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"code\": \"DOWNLINK_PAYLOAD_SIZE\", \"context\": {\"max_payload_size\": \"5x\", "
            "\"queue_item_id\": \"9f1b2f3e-0c43-4a8e-8d5e-3b7c1f2a4d60\"}}",
            GW_NS_EV_TOO_LARGE, &ev);
  assert_int_equal(ev.max_payload, 0);
  assert_string_equal(ev.reason, "DOWNLINK_PAYLOAD_SIZE");

  /* EXPIRED and F_CNT_DOWN name the item they deleted. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"level\": \"ERROR\", \"code\": \"EXPIRED\", \"description\": \"Device queue-item "
            "discarded because it has expired\", \"context\": {\"queue_item_id\": "
            "\"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\"}}",
            GW_NS_EV_FAILED, &ev);
  assert_string_equal(ev.item_id, "1bbcab1d-6ec6-4136-b3f5-d63be1dc08de");
  assert_string_equal(ev.reason,
                      "EXPIRED: Device queue-item discarded because it has expired");
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"code\": \"F_CNT_DOWN\", \"description\": \"Device queue-item discarded because "
            "the frame-counter is invalid\", \"context\": {\"device_f_cnt_down\": \"7\", "
            "\"queue_item_f_cnt_down\": \"5\", \"queue_item_id\": "
            "\"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\"}}",
            GW_NS_EV_FAILED, &ev);

  /* tx_ack.rs log_tx_ack_error: no item id, the item stays queued. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{" CS_INFO("0101010101010101") ", \"level\": \"ERROR\", \"code\": "
            "\"DOWNLINK_GATEWAY\", \"description\": \"TOO_LATE\", \"context\": {}}",
            GW_NS_EV_TX_ERROR, &ev);
  assert_string_equal(ev.item_id, "");
  assert_string_equal(ev.reason, "DOWNLINK_GATEWAY: TOO_LATE");

  /* events.md "log": a MIC error is nothing the gateway acts on, but its text is kept. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"time\": \"2022-07-18T09:39:57.311414029+00:00\", " CS_INFO("0101010101010101")
            ", \"level\": \"ERROR\", \"code\": \"UPLINK_MIC\", \"description\": \"MIC of "
            "join-request is invalid, make sure keys are correct\", \"context\": "
            "{\"deduplication_id\": \"4e91db13-5ce3-4c8c-ab0f-dfc626cf0771\"}}",
            GW_NS_EV_OTHER, &ev);
  assert_string_equal(ev.item_id, "");
  assert_true(strncmp(ev.reason, "UPLINK_MIC: MIC of join-request", 31) == 0);
  /* A payload-size log without an item cannot be matched to one. */
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
            "{\"code\": \"DOWNLINK_PAYLOAD_SIZE\"}", GW_NS_EV_OTHER, &ev);
  /* A long description is cut, not refused. */
  char json[600];
  snprintf(json, sizeof json,
           "{\"code\": \"EXPIRED\", \"description\": \"%0300d\", \"context\": "
           "{\"queue_item_id\": \"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\"}}",
           0);
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"), json,
            GW_NS_EV_FAILED, &ev);
  assert_int_equal(strlen(ev.reason), sizeof ev.reason - 1);
}

/* join, status, location, integration, events still to come, and the gateway's own
 * command/down: valid, not for the gateway, the payload not even read. */
static void test_cs_other_events(void **state) {
  (void)state;
  static const char *const topics[] = {
      CS_TOPIC("0101010101010101", "join"), CS_TOPIC("0101010101010101", "status"),
      CS_TOPIC("0101010101010101", "location"), CS_TOPIC("0101010101010101", "integration"),
      CS_TOPIC("0101010101010101", "future-event"),
      "application/" CS_APP "/device/0101010101010101/command/down"};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
    gw_ns_event_t ev;
    expect_ok(GW_NS_CHIRPSTACK, CS_APP, topics[i], "not even JSON", GW_NS_EV_OTHER, &ev);
    assert_true(ev.has_dev_eui);
    assert_memory_equal(ev.dev_eui, eui_01, 8);
  }
}

static void test_cs_rejections(void **state) {
  (void)state;
  const char *up = CS_TOPIC("0101010101010101", "up");
  /* Topics. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP,
                "application/52f14cd4-c6f1-4fbd-8f87-4025e1d49242/device/0101010101010101/event/up",
                cs_up_docs, "topic not of this application");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, "application", cs_up_docs,
                "not a ChirpStack topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, "v3/app1/devices/dev1/up", cs_up_docs,
                "not a ChirpStack topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, "application/" CS_APP "/device/0101010101010101/up",
                cs_up_docs, "not a ChirpStack device event topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "up/x"), cs_up_docs,
                "not a ChirpStack device event topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("01010101010101", "up"), cs_up_docs,
                "devEui in the topic not 16 hex digits");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("010101010101010g", "up"), cs_up_docs,
                "devEui in the topic not 16 hex digits");
  expect_reject(GW_NS_CHIRPSTACK, "bad/app", up, cs_up_docs,
                "application id not usable in a topic");
  expect_reject(GW_NS_CHIRPSTACK, "", up, cs_up_docs, "application id not usable in a topic");
  /* The payload names another device or application than the topic. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0202020202020202", "up"), cs_up_docs,
                "devEui does not match the topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"deviceInfo\": {\"devEui\": \"01010101\"}, \"fPort\": 1, \"data\": \"\"}",
                "devEui not 16 hex digits");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"deviceInfo\": {\"applicationId\": \"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\"}, "
                "\"fPort\": 1, \"data\": \"\"}",
                "applicationId does not match the topic");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"deviceInfo\": \"0101010101010101\"}",
                "deviceInfo not an object");
  /* Not JSON, or not an object. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "", "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "hello", "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\"", "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\"} x",
                "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\"}{}",
                "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\",}",
                "not JSON");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"\xc3\x28\"}",
                "not JSON"); /* not UTF-8 */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "[{\"fPort\": 1, \"data\": \"qg==\"}]",
                "not a JSON object");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "\"qg==\"", "not a JSON object");
  /* Fields. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg=\"}", "bad base64");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg\"}", "bad base64");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"q!==\"}", "bad base64");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"q-_A\"}", "bad base64");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 256, \"data\": \"qg==\"}",
                "fPort out of range");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": -1, \"data\": \"qg==\"}",
                "fPort not an integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": \"1\", \"data\": \"qg==\"}",
                "fPort not an integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1.0, \"data\": \"qg==\"}",
                "fPort not an integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1}", "missing field data");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": 170}",
                "data not a string");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": [\"qg==\"]}",
                "data not a string");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\\u0000\"}",
                "data not a string");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1, \"data\": \"qg==\", \"confirmed\": \"true\"}",
                "confirmed not a boolean");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1, \"data\": \"qg==\", \"confirmed\": 1}", "confirmed not a boolean");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, "{\"fPort\": 1, \"data\": \"qg==\", \"dr\": 16}",
                "dr out of range");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1, \"data\": \"qg==\", \"joinServerContext\": {\"sessionKeyId\": "
                "\"01020304\"}}",
                "payload encrypted by the join server (joinServerContext)");
  /* Huge numbers: json-c clamps them; none passes a range check. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1, \"data\": \"qg==\", \"fCnt\": 4294967296}",
                "fCnt not a 32-bit unsigned integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1, \"data\": \"qg==\", \"fCnt\": 1e400}",
                "fCnt not a 32-bit unsigned integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 18446744073709551617, \"data\": \"qg==\"}", "fPort not an integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": 1000000000000000000000000000000000000001, \"data\": \"qg==\"}",
                "fPort not an integer");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up,
                "{\"fPort\": -9223372036854775809, \"data\": \"qg==\"}", "fPort not an integer");
  /* The events of a downlink's fate name their item. */
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "txack"),
                "{\"downlinkId\": 1}", "missing field queueItemId");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
                "{\"queueItemId\": 5, \"acknowledged\": true}", "queueItemId not an id");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
                "{\"queueItemId\": \"\", \"acknowledged\": true}", "queueItemId not an id");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
                "{\"queueItemId\": \"a b\", \"acknowledged\": true}", "queueItemId not an id");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "ack"),
                "{\"queueItemId\": \"1bbcab1d-6ec6-4136-b3f5-d63be1dc08de\", \"acknowledged\": "
                "\"yes\"}",
                "acknowledged not a boolean");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
                "{\"code\": 1}", "code not a string");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
                "{\"code\": \"EXPIRED\", \"context\": [\"queue_item_id\"]}",
                "context not an object");
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "log"),
                "{\"code\": \"EXPIRED\", \"context\": {\"queue_item_id\": 7}}",
                "context queue_item_id not an id");
}

/* More than 255 bytes, nesting bombs, a message above the size limit. */
static void test_cs_oversized_and_bombs(void **state) {
  (void)state;
  const char *up = CS_TOPIC("0101010101010101", "up");
  uint8_t bin[256];
  memset(bin, 0xa5, sizeof bin);
  char b64[GW_BASE64_LEN(256) + 1], json[512];
  gw_base64_encode(bin, sizeof bin, b64, sizeof b64);
  snprintf(json, sizeof json, "{\"fPort\": 1, \"data\": \"%s\"}", b64);
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, json, "data longer than 255 bytes");

  /* 60000 brackets (within the size limit), in a field the gateway never reads: the
   * tokenizer's depth limit stops it. */
  size_t depth = 60000;
  char *bomb = malloc(depth * 2 + 64);
  assert_non_null(bomb);
  size_t n = (size_t)sprintf(bomb, "{\"fPort\": 1, \"data\": \"qg==\", \"object\": ");
  memset(bomb + n, '[', depth);
  bomb[n + depth] = '\0';
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, bomb, "JSON nested too deep");
  /* Nesting the tokenizer takes: 30 levels in an ignored field are fine. */
  n = (size_t)sprintf(bomb, "{\"fPort\": 1, \"data\": \"qg==\", \"object\": ");
  for (int i = 0; i < 30; i++)
    n += (size_t)sprintf(bomb + n, "{\"a\":");
  n += (size_t)sprintf(bomb + n, "1");
  for (int i = 0; i < 30; i++)
    bomb[n++] = '}';
  strcpy(bomb + n, "}");
  gw_ns_event_t ev;
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, up, bomb, GW_NS_EV_UPLINK, &ev);
  free(bomb);

  /* Above GW_NS_PAYLOAD_MAX, even if it were valid JSON. */
  size_t big_len = GW_NS_PAYLOAD_MAX + 1;
  char *big = malloc(big_len + 1);
  assert_non_null(big);
  memset(big, ' ', big_len);
  memcpy(big, "{\"fPort\": 1, \"data\": \"qg==\"}", 28);
  big[big_len] = '\0';
  expect_reject(GW_NS_CHIRPSTACK, CS_APP, up, big, "message too large");
  /* Trailing white space up to the limit is fine. */
  big[big_len - 1] = '\0';
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, up, big, GW_NS_EV_UPLINK, &ev);
  free(big);
}

/* ---- The Things Stack v3 ---------------------------------------------------------------- */

#define TTS_IDS                                                                                  \
  "\"end_device_ids\": {\"device_id\": \"dev1\", \"application_ids\": {\"application_id\": "   \
  "\"app1\"}, \"dev_eui\": \"0004A30B001C0530\", \"join_eui\": \"800000000000000C\", "          \
  "\"dev_addr\": \"00BCB929\"}"

/* data-formats "Uplink Messages", with f_port 1 and no f_cnt or confirmed (0 and false are left
 * out: "Empty fields are omitted from payloads"). */
static const char tts_up_docs[] =
    "{" TTS_IDS ", \"correlation_ids\": [\"as:up:01E0WZGT6Y7657CPFPE5WEYDSQ\", "
    "\"gs:conn:01E0WDEC6T5T4XXBAX7S1VMFKE\", \"gs:uplink:01E0WZGSZWT07NE5TS2APTV1Z9\", "
    "\"ns:uplink:01E0WZGSZXZXZS8RFAWZX0F2FY\", "
    "\"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01E0WZGSZXGE1KS577PFBWRJEE\"], \"received_at\": "
    "\"2020-02-12T15:15:46.014773143Z\", \"uplink_message\": {\"session_key_id\": "
    "\"AXA50tHUGUucuzS/bCGMNw==\", \"f_port\": 1, \"frm_payload\": \"gkHe\", "
    "\"decoded_payload\": {\"temperature\": 1.0, \"luminosity\": 0.64}, \"rx_metadata\": "
    "[{\"gateway_ids\": {\"gateway_id\": \"gtw1\", \"eui\": \"9C5C8E00001A05C4\"}, \"time\": "
    "\"2020-02-12T15:15:45.787Z\", \"timestamp\": 2463457000, \"rssi\": -35, \"channel_rssi\": "
    "-35, \"snr\": 5, \"uplink_token\": \"ChIKEAoEZ3R3MRIInFyOAAAaBcQQ6L3Vlgk=\", "
    "\"channel_index\": 2}], \"settings\": {\"data_rate\": {\"lora\": {\"bandwidth\": 125000, "
    "\"spreading_factor\": 7}}, \"coding_rate\": \"4/6\", \"frequency\": \"868300000\", "
    "\"timestamp\": 2463457000, \"time\": \"2020-02-12T15:15:45.787Z\"}, \"consumed_airtime\": "
    "\"0.056576s\", \"received_at\": \"2020-02-12T15:15:45.789585559Z\"}}";

static void test_tts_uplink(void **state) {
  (void)state;
  gw_ns_event_t ev;
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/up", tts_up_docs, GW_NS_EV_UPLINK, &ev);
  static const uint8_t eui[8] = {0x00, 0x04, 0xa3, 0x0b, 0x00, 0x1c, 0x05, 0x30};
  assert_true(ev.has_dev_eui);
  assert_memory_equal(ev.dev_eui, eui, 8);
  assert_string_equal(ev.device_id, "dev1");
  assert_int_equal(ev.fport, 1);
  assert_int_equal(ev.fcnt, 0);
  assert_false(ev.confirmed);
  assert_int_equal(ev.dr, 5); /* SF7/125 kHz */
  assert_int_equal(ev.data_len, 3);
  assert_memory_equal(ev.data, "\x82\x41\xde", 3);

  /* A tenant in the topic ("app@tenant"), not in the payload's application_id. */
  expect_ok(GW_NS_TTS, "app1@tenant-7", "v3/app1@tenant-7/devices/dev1/up", tts_up_docs,
            GW_NS_EV_UPLINK, &ev);

  /* Confirmed, a frame counter, SF12; no frm_payload (empty), no dev_eui (ABP). */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/meter-17/up",
            "{\"end_device_ids\": {\"device_id\": \"meter-17\", \"application_ids\": "
            "{\"application_id\": \"app1\"}}, \"uplink_message\": {\"f_port\": 2, \"f_cnt\": 42, "
            "\"confirmed\": true, \"settings\": {\"data_rate\": {\"lora\": {\"bandwidth\": 125000, "
            "\"spreading_factor\": 12}}}}}",
            GW_NS_EV_UPLINK, &ev);
  assert_false(ev.has_dev_eui);
  assert_string_equal(ev.device_id, "meter-17");
  assert_int_equal(ev.fport, 2);
  assert_int_equal(ev.fcnt, 42);
  assert_true(ev.confirmed);
  assert_int_equal(ev.dr, 0);
  assert_int_equal(ev.data_len, 0);

  static const struct {
    const char *rate;
    int dr;
  } rates[] = {
      {"{\"lora\": {\"bandwidth\": 250000, \"spreading_factor\": 7}}", 6},
      {"{\"lora\": {\"bandwidth\": 125000, \"spreading_factor\": 9}}", 3},
      {"{\"fsk\": {\"bit_rate\": 50000}}", 7},
      {"{\"lora\": {\"bandwidth\": 500000, \"spreading_factor\": 8}}", -1}, /* US915 DR4 */
      {"{\"lora\": {\"bandwidth\": \"125000\", \"spreading_factor\": 7}}", -1},
      {"{\"lrfhss\": {\"modulation_type\": 0, \"operating_channel_width\": 137000}}", -1},
      {"null", -1},
  };
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"uplink_message\": {\"f_port\": 2, \"frm_payload\": \"AA==\", \"settings\": "
             "{\"data_rate\": %s}}}",
             rates[i].rate);
    expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/up", json, GW_NS_EV_UPLINK, &ev);
    assert_int_equal(ev.dr, rates[i].dr);
  }
}

/* data-formats "Downlink Events Messages": the ApplicationDownlink comes back with the custom
 * correlation id the gateway pushed, beside TTS's own (as:downlink:...). */
#define TTS_DOWN(field, ids)                                                                     \
  "{" TTS_IDS ", \"correlation_ids\": [\"as:downlink:01E19B99501X84X6CV471TVSZ1\", "            \
  "\"as:up:01E19B9J8ED6HZW5CC41KPGHVD\"], \"received_at\": \"2020-02-17T10:32:24.590413417Z\", " \
  "\"" field "\": {\"session_key_id\": \"AXBSp8v2brG0jqkri+sIkw==\", \"f_port\": 15, "          \
  "\"f_cnt\": 1, \"frm_payload\": \"vu8=\", \"confirmed\": true, \"priority\": \"NORMAL\", "    \
  "\"correlation_ids\": " ids "}}"
#define OUR_ID "lwm2m-gw:0b8a1f6e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"

static void test_tts_downlink_events(void **state) {
  (void)state;
  gw_ns_event_t ev;
  static const struct {
    const char *topic, *json;
    gw_ns_event_kind_t kind;
  } v[] = {
      {"v3/app1/devices/dev1/down/queued",
       TTS_DOWN("downlink_queued", "[\"as:downlink:01E19B99501X84X6CV471TVSZ1\", \"" OUR_ID "\"]"),
       GW_NS_EV_QUEUED},
      {"v3/app1/devices/dev1/down/sent",
       TTS_DOWN("downlink_sent", "[\"as:downlink:01E19B99501X84X6CV471TVSZ1\", \"" OUR_ID "\"]"),
       GW_NS_EV_SENT},
      {"v3/app1/devices/dev1/down/ack",
       TTS_DOWN("downlink_ack", "[\"" OUR_ID "\", \"as:downlink:01E19B99501X84X6CV471TVSZ1\"]"),
       GW_NS_EV_ACKED},
      {"v3/app1/devices/dev1/down/nack",
       TTS_DOWN("downlink_nack", "[\"as:downlink:01E19B99501X84X6CV471TVSZ1\", 7, \"" OUR_ID "\"]"),
       GW_NS_EV_NACKED},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    expect_ok(GW_NS_TTS, "app1", v[i].topic, v[i].json, v[i].kind, &ev);
    assert_string_equal(ev.item_id, OUR_ID);
    assert_string_equal(ev.device_id, "dev1");
    assert_true(ev.has_dev_eui);
  }
  /* The id only in the envelope's correlation_ids also counts. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/sent",
            "{\"correlation_ids\": [\"as:downlink:01E19B99501X84X6CV471TVSZ1\", \"" OUR_ID
            "\"], \"downlink_sent\": {\"f_port\": 15}}",
            GW_NS_EV_SENT, &ev);
  assert_string_equal(ev.item_id, OUR_ID);
  /* The docs' example: a downlink someone else pushed. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/ack",
            TTS_DOWN("downlink_ack", "[\"as:downlink:01E19B99501X84X6CV471TVSZ1\"]"),
            GW_NS_EV_OTHER, &ev);
  assert_string_equal(ev.item_id, "");
  /* The prefix alone is not an id. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/ack",
            TTS_DOWN("downlink_ack", "[\"lwm2m-gw:\"]"), GW_NS_EV_OTHER, &ev);
}

/* data-formats "Downlink failed event message example", with the gateway's correlation id. */
#define TTS_FAILED(error)                                                                        \
  "{\"end_device_ids\": {\"device_id\": \"dev1\", \"application_ids\": {\"application_id\": "  \
  "\"app1\"}}, \"correlation_ids\": [\"as:downlink:01E19Z5W3BZBG7CXSJE9C0A3CE\"], "             \
  "\"downlink_failed\": {\"downlink\": {\"f_port\": 15, \"frm_payload\": \"vu8=\", "            \
  "\"confirmed\": true, \"priority\": \"NORMAL\", \"correlation_ids\": "                        \
  "[\"as:downlink:01E19Z5W3BZBG7CXSJE9C0A3CE\", \"" OUR_ID "\"]}, \"error\": " error "}}"

static void test_tts_down_failed(void **state) {
  (void)state;
  gw_ns_event_t ev;
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            TTS_FAILED("{\"namespace\": \"pkg/networkserver\", \"name\": "
                       "\"application_downlink_too_long\", \"message_format\": \"application "
                       "downlink payload is too long\", \"correlation_id\": "
                       "\"2e7f786912e946e597894e381d0ad7b0\", \"code\": 3}"),
            GW_NS_EV_TOO_LARGE, &ev);
  assert_string_equal(ev.item_id, OUR_ID);
  assert_int_equal(ev.max_payload, 0);
  assert_string_equal(ev.reason,
                      "application_downlink_too_long: application downlink payload is too long");
  assert_false(ev.has_dev_eui);
  /* Newer releases name the limit in the error's attributes. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            TTS_FAILED("{\"namespace\": \"pkg/networkserver\", \"name\": "
                       "\"application_downlink_too_long\", \"message_format\": \"application "
                       "downlink payload length `{length}` exceeds maximum '{max}'\", "
                       "\"attributes\": {\"length\": 60, \"max\": 51}, \"code\": 3}"),
            GW_NS_EV_TOO_LARGE, &ev);
  assert_int_equal(ev.max_payload, 51);
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            TTS_FAILED("{\"name\": \"application_downlink_too_long\", \"attributes\": "
                       "{\"max\": 115.0}}"),
            GW_NS_EV_TOO_LARGE, &ev);
  assert_int_equal(ev.max_payload, 115);
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            TTS_FAILED("{\"name\": \"application_downlink_too_long\", \"attributes\": "
                       "{\"max\": 51.5}}"),
            GW_NS_EV_TOO_LARGE, &ev);
  assert_int_equal(ev.max_payload, 0);
  /* Any other error. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            TTS_FAILED("{\"namespace\": \"pkg/networkserver\", \"name\": \"f_cnt_too_low\", "
                       "\"message_format\": \"FCnt too low\", \"code\": 3}"),
            GW_NS_EV_FAILED, &ev);
  assert_string_equal(ev.reason, "f_cnt_too_low: FCnt too low");
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
            "{\"downlink_failed\": {\"downlink\": {\"correlation_ids\": [\"" OUR_ID "\"]}}}",
            GW_NS_EV_FAILED, &ev);
  assert_string_equal(ev.reason, "unknown error");
}

static void test_tts_other_topics(void **state) {
  (void)state;
  static const char *const topics[] = {
      "v3/app1/devices/dev1/join",           "v3/app1/devices/dev1/down/push",
      "v3/app1/devices/dev1/down/replace",   "v3/app1/devices/dev1/down/invalidated",
      "v3/app1/devices/dev1/location/solved", "v3/app1/devices/dev1/service/data",
      "v3/app1/devices/dev1/up/normalized"};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
    gw_ns_event_t ev;
    expect_ok(GW_NS_TTS, "app1", topics[i], "{]", GW_NS_EV_OTHER, &ev);
    assert_string_equal(ev.device_id, "dev1");
  }
}

static void test_tts_rejections(void **state) {
  (void)state;
  const char *up = "v3/app1/devices/dev1/up";
  expect_reject(GW_NS_TTS, "app1", "v3/app2/devices/dev1/up", tts_up_docs,
                "topic not of this application");
  expect_reject(GW_NS_TTS, "app1@tenant", up, tts_up_docs, "topic not of this application");
  expect_reject(GW_NS_TTS, "app1", CS_TOPIC("0101010101010101", "up"), tts_up_docs,
                "not a TTS topic");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/gateways/dev1/up", tts_up_docs,
                "not a TTS device topic");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1", tts_up_docs,
                "not a TTS device topic");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/Dev1/up", tts_up_docs,
                "device ID in the topic not a TTS ID");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev--1/up", tts_up_docs,
                "device ID in the topic not a TTS ID");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/-dev1/up", tts_up_docs,
                "device ID in the topic not a TTS ID");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/a23456789012345678901234567890123456x/up",
                tts_up_docs, "device ID in the topic not a TTS ID");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev2/up", tts_up_docs,
                "device_id does not match the topic");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"end_device_ids\": {\"application_ids\": {\"application_id\": \"app2\"}}, "
                "\"uplink_message\": {\"f_port\": 1}}",
                "application_id does not match the topic");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"end_device_ids\": {\"dev_eui\": \"0004A30B001C05\"}, \"uplink_message\": "
                "{\"f_port\": 1}}",
                "dev_eui not 16 hex digits");
  expect_reject(GW_NS_TTS, "app1", up, "{\"end_device_ids\": []}",
                "end_device_ids not an object");
  expect_reject(GW_NS_TTS, "app1", up, "{" TTS_IDS "}", "missing field uplink_message");
  expect_reject(GW_NS_TTS, "app1", up, "{\"uplink_message\": \"x\"}",
                "missing field uplink_message");
  expect_reject(GW_NS_TTS, "app1", up, "{\"uplink_message\": {\"f_port\": 256}}",
                "fPort out of range");
  expect_reject(GW_NS_TTS, "app1", up, "{\"uplink_message\": {\"f_port\": true}}",
                "fPort not an integer");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"uplink_message\": {\"f_port\": 1, \"frm_payload\": \"gkH\"}}", "bad base64");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"uplink_message\": {\"f_port\": 1, \"frm_payload\": {}}}",
                "frm_payload not a string");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"uplink_message\": {\"f_port\": 1, \"f_cnt\": -5}}",
                "fCnt not a 32-bit unsigned integer");
  expect_reject(GW_NS_TTS, "app1", up,
                "{\"uplink_message\": {\"f_port\": 1, \"confirmed\": \"false\"}}",
                "confirmed not a boolean");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/sent", "{" TTS_IDS "}",
                "missing field downlink_sent");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/sent",
                "{\"downlink_sent\": {\"correlation_ids\": \"" OUR_ID "\"}}",
                "correlation_ids not an array");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
                "{\"downlink_failed\": {\"downlink\": 1, \"error\": {}}}",
                "downlink_failed not {downlink, error}");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/failed",
                TTS_FAILED("{\"name\": 3}"), "error name or message_format not a string");
  expect_reject(GW_NS_TTS, "app1", "v3/app1/devices/dev1/down/ack", "{\"downlink_ack\": ",
                "not JSON");
}

/* A frame without FPort (MAC commands only, or an empty one that opens the device's receive
 * windows) is a valid up event (ChirpStack uplink/data.rs: f_port.unwrap_or(0)) with nothing for
 * the application: OTHER, not a rejection to count. */
static void test_uplink_without_fport(void **state) {
  (void)state;
  static const char *const cs_json[] = {
      "{" CS_INFO("0101010101010101") ", \"dr\": 5, \"fCnt\": 9, \"fPort\": 0, \"confirmed\": "
      "false, \"data\": \"\"}",
      "{\"fPort\": 0, \"data\": \"qg==\"}", /* MAC commands in FRMPayload, as ChirpStack gives */
      "{\"dr\": 5, \"fCnt\": 9}",        /* before 4.1: fPort 0 and "" data left out */
      "{\"fPort\": null}"};
  gw_ns_event_t ev;
  for (size_t i = 0; i < sizeof cs_json / sizeof cs_json[0]; i++) {
    expect_ok(GW_NS_CHIRPSTACK, CS_APP, CS_TOPIC("0101010101010101", "up"), cs_json[i],
              GW_NS_EV_OTHER, &ev);
    assert_int_equal(ev.fport, 0);
    assert_int_equal(ev.data_len, 0);
    assert_true(ev.has_dev_eui);
    assert_string_equal(ev.reason, "uplink without FPort (MAC commands or empty)");
  }
  /* TTS leaves f_port 0 out. */
  expect_ok(GW_NS_TTS, "app1", "v3/app1/devices/dev1/up",
            "{" TTS_IDS ", \"uplink_message\": {\"f_cnt\": 3, \"settings\": {}}}",
            GW_NS_EV_OTHER, &ev);
  assert_string_equal(ev.device_id, "dev1");
  assert_int_equal(ev.data_len, 0);
  assert_string_equal(ev.reason, "uplink without FPort (MAC commands or empty)");
}

static void test_unknown_format(void **state) {
  (void)state;
  expect_reject((gw_ns_format_t)7, "app1", "v3/app1/devices/dev1/up", tts_up_docs,
                "unknown network-server format");
  gw_ns_event_t ev;
  assert_int_equal(gw_ns_parse(GW_NS_TTS, "app1", NULL, NULL, 0, &ev, NULL), GW_ERR_INVAL);
}

/* ---- toward the network server ---------------------------------------------------------- */

static void test_subscriptions(void **state) {
  (void)state;
  char out[8][GW_NS_TOPIC_MAX];
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, CS_APP, out, 8), 1);
  assert_string_equal(out[0], "application/" CS_APP "/device/+/event/+");
  assert_int_equal(gw_ns_subscriptions(GW_NS_TTS, "app1@tenant", out, 8), 6);
  assert_string_equal(out[0], "v3/app1@tenant/devices/+/up");
  assert_string_equal(out[1], "v3/app1@tenant/devices/+/down/queued");
  assert_string_equal(out[2], "v3/app1@tenant/devices/+/down/sent");
  assert_string_equal(out[3], "v3/app1@tenant/devices/+/down/ack");
  assert_string_equal(out[4], "v3/app1@tenant/devices/+/down/nack");
  assert_string_equal(out[5], "v3/app1@tenant/devices/+/down/failed");
  /* Fewer slots: the count still says how many there are. */
  memset(out, 0, sizeof out);
  assert_int_equal(gw_ns_subscriptions(GW_NS_TTS, "app1", out, 2), 6);
  assert_string_equal(out[1], "v3/app1/devices/+/down/queued");
  assert_string_equal(out[2], "");
  assert_int_equal(gw_ns_subscriptions(GW_NS_TTS, "app/1", out, 8), 0);
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, "#", out, 8), 0);
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, "a+", out, 8), 0);
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, "a b", out, 8), 0);
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, NULL, out, 8), 0);
  char long_app[102];
  memset(long_app, 'a', 101);
  long_app[101] = '\0';
  assert_int_equal(gw_ns_subscriptions(GW_NS_CHIRPSTACK, long_app, out, 8), 0);
  long_app[100] = '\0'; /* 100 characters: the longest taken, and it fits */
  assert_int_equal(gw_ns_subscriptions(GW_NS_TTS, long_app, out, 8), 6);
  assert_int_equal(strlen(out[1]), 3 + 100 + 22);
}

static void test_cs_downlink_round_trip(void **state) {
  (void)state;
  static const uint8_t eui[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xab};
  char id[GW_NS_ITEM_ID_MAX + 1], topic[GW_NS_TOPIC_MAX], json[1024];
  gw_ns_new_item_id(GW_NS_CHIRPSTACK, id);
  const uint8_t frame[] = {0x44, 0x02, 0x12, 0x34, 0xfb, 0xff}; /* base64 with "+" and "/" */
  assert_int_equal(gw_ns_downlink(GW_NS_CHIRPSTACK, CS_APP, eui, NULL, 10, true, id, frame,
                                  sizeof frame, topic, sizeof topic, json, sizeof json),
                   GW_OK);
  assert_string_equal(topic, "application/" CS_APP "/device/01020304050607ab/command/down");
  json_object *o = read_json(json);
  assert_string_equal(json_object_get_string(member(o, "id", json_type_string)), id);
  /* mqtt.rs compares the payload's devEui with the topic's as strings. */
  assert_string_equal(json_object_get_string(member(o, "devEui", json_type_string)),
                      "01020304050607ab");
  assert_true(json_object_get_boolean(member(o, "confirmed", json_type_boolean)));
  assert_int_equal(json_object_get_int(member(o, "fPort", json_type_int)), 10);
  const char *b64 = json_object_get_string(member(o, "data", json_type_string));
  assert_string_equal(b64, "RAISNPv/");
  assert_int_equal(json_object_object_length(o), 5);
  json_object_put(o);
  assert_non_null(strstr(json, "\"RAISNPv/\"")); /* "/" is not escaped */

  /* What ChirpStack then reports about the item is matched by the same id. */
  char event[512];
  snprintf(event, sizeof event, "{\"queueItemId\": \"%s\", \"acknowledged\": true}", id);
  gw_ns_event_t ev;
  expect_ok(GW_NS_CHIRPSTACK, CS_APP, "application/" CS_APP "/device/01020304050607ab/event/ack",
            event, GW_NS_EV_ACKED, &ev);
  assert_string_equal(ev.item_id, id);
  assert_memory_equal(ev.dev_eui, eui, 8);

  /* Empty payload, unconfirmed. */
  assert_int_equal(gw_ns_downlink(GW_NS_CHIRPSTACK, CS_APP, eui, NULL, 255, false, id, NULL, 0,
                                  topic, sizeof topic, json, sizeof json),
                   GW_OK);
  o = read_json(json);
  assert_false(json_object_get_boolean(member(o, "confirmed", json_type_boolean)));
  assert_string_equal(json_object_get_string(member(o, "data", json_type_string)), "");
  json_object_put(o);
}

static void test_tts_downlink_round_trip(void **state) {
  (void)state;
  char id[GW_NS_ITEM_ID_MAX + 1], topic[GW_NS_TOPIC_MAX], json[1024];
  gw_ns_new_item_id(GW_NS_TTS, id);
  uint8_t frame[255];
  for (size_t i = 0; i < sizeof frame; i++)
    frame[i] = (uint8_t)i;
  assert_int_equal(gw_ns_downlink(GW_NS_TTS, "app1@tenant", NULL, "meter-17", 223, false, id,
                                  frame, sizeof frame, topic, sizeof topic, json, sizeof json),
                   GW_OK);
  assert_string_equal(topic, "v3/app1@tenant/devices/meter-17/down/push");
  json_object *o = read_json(json);
  assert_int_equal(json_object_object_length(o), 1);
  json_object *list = member(o, "downlinks", json_type_array);
  assert_int_equal(json_object_array_length(list), 1);
  json_object *item = json_object_array_get_idx(list, 0);
  assert_true(json_object_is_type(item, json_type_object));
  assert_int_equal(json_object_get_int(member(item, "f_port", json_type_int)), 223);
  assert_false(json_object_get_boolean(member(item, "confirmed", json_type_boolean)));
  assert_string_equal(json_object_get_string(member(item, "priority", json_type_string)),
                      "NORMAL");
  json_object *ids = member(item, "correlation_ids", json_type_array);
  assert_int_equal(json_object_array_length(ids), 1);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(ids, 0)), id);
  const char *b64 = json_object_get_string(member(item, "frm_payload", json_type_string));
  uint8_t back[255];
  size_t n = 0;
  assert_int_equal(gw_base64_decode(b64, strlen(b64), back, sizeof back, &n), GW_OK);
  assert_int_equal(n, sizeof frame);
  assert_memory_equal(back, frame, n);
  json_object_put(o);

  /* TTS echoes the id in the down events. */
  char event[512];
  snprintf(event, sizeof event,
           "{\"downlink_sent\": {\"f_port\": 223, \"correlation_ids\": "
           "[\"as:downlink:01E19B99501X84X6CV471TVSZ1\", \"%s\"]}}",
           id);
  gw_ns_event_t ev;
  expect_ok(GW_NS_TTS, "app1@tenant", "v3/app1@tenant/devices/meter-17/down/sent", event,
            GW_NS_EV_SENT, &ev);
  assert_string_equal(ev.item_id, id);
}

static void test_downlink_refusals(void **state) {
  (void)state;
  char topic[GW_NS_TOPIC_MAX], json[1024];
  const char *cs_id = "1bbcab1d-6ec6-4136-b3f5-d63be1dc08de", *tts_id = OUR_ID;
  uint8_t frame[256] = {0};
#define CS_DOWN(app, eui, port, id, data, len, tsize, jsize)                                   \
  gw_ns_downlink(GW_NS_CHIRPSTACK, app, eui, NULL, port, false, id, data, len, topic, tsize,    \
                 json, jsize)
#define TTS_DOWN_(dev, port, id, len, tsize, jsize)                                             \
  gw_ns_downlink(GW_NS_TTS, "app1", NULL, dev, port, false, id, frame, len, topic, tsize, json,  \
                 jsize)
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 255, sizeof topic, sizeof json),
                   GW_OK);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 0, cs_id, frame, 1, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_string_equal(topic, "");
  assert_string_equal(json, "");
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 256, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, NULL, 3, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(CS_DOWN(CS_APP, NULL, 1, cs_id, frame, 1, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  /* ChirpStack refuses an id that is not a UUID. */
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, tts_id, frame, 1, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, "1bbcab1d-6ec6-4136-b3f5-d63be1dc08dx", frame, 1,
                           sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, NULL, frame, 1, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(CS_DOWN("a/b", eui_01, 1, cs_id, frame, 1, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  /* Buffers one byte short. */
  const size_t topic_len = strlen("application/" CS_APP "/device/0101010101010101/command/down");
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 1, topic_len + 1, sizeof json),
                   GW_OK);
  size_t json_len = strlen(json);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 1, topic_len, sizeof json),
                   GW_ERR_TOOBIG);
  assert_string_equal(topic, "");
  assert_string_equal(json, "");
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 1, sizeof topic, json_len + 1),
                   GW_OK);
  assert_int_equal(CS_DOWN(CS_APP, eui_01, 1, cs_id, frame, 1, sizeof topic, json_len),
                   GW_ERR_TOOBIG);
  assert_string_equal(topic, "");
  assert_string_equal(json, "");

  assert_int_equal(TTS_DOWN_("dev1", 1, tts_id, 10, sizeof topic, sizeof json), GW_OK);
  assert_int_equal(TTS_DOWN_("dev1", 1, cs_id, 10, sizeof topic, sizeof json), GW_OK);
  assert_int_equal(TTS_DOWN_("dev1", 224, tts_id, 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev1", 1, tts_id, 256, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_(NULL, 1, tts_id, 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev/1", 1, tts_id, 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev+", 1, tts_id, 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev1", 1, "", 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev1", 1, "has space", 10, sizeof topic, sizeof json),
                   GW_ERR_INVAL);
  char long_id[GW_NS_ITEM_ID_MAX + 2];
  memset(long_id, 'x', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  assert_int_equal(TTS_DOWN_("dev1", 1, long_id, 10, sizeof topic, sizeof json), GW_ERR_INVAL);
  long_id[GW_NS_ITEM_ID_MAX] = '\0';
  assert_int_equal(TTS_DOWN_("dev1", 1, long_id, 10, sizeof topic, sizeof json), GW_OK);
  assert_int_equal(gw_ns_downlink((gw_ns_format_t)5, "app1", eui_01, "dev1", 1, false, cs_id,
                                  frame, 1, topic, sizeof topic, json, sizeof json),
                   GW_ERR_INVAL);
  assert_int_equal(TTS_DOWN_("dev1", 1, tts_id, 10, 0, 0), GW_ERR_TOOBIG);
#undef CS_DOWN
#undef TTS_DOWN_
}

static void test_item_ids(void **state) {
  (void)state;
  char a[GW_NS_ITEM_ID_MAX + 1], b[GW_NS_ITEM_ID_MAX + 1];
  gw_ns_new_item_id(GW_NS_CHIRPSTACK, a);
  gw_ns_new_item_id(GW_NS_CHIRPSTACK, b);
  assert_string_not_equal(a, b);
  /* RFC 4122 4.4: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx, lower case. */
  assert_int_equal(strlen(a), 36);
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      assert_int_equal(a[i], '-');
    else
      assert_non_null(strchr("0123456789abcdef", a[i]));
  }
  assert_int_equal(a[14], '4');
  assert_non_null(strchr("89ab", a[19]));
  gw_ns_new_item_id(GW_NS_TTS, a);
  assert_int_equal(strlen(a), strlen(GW_NS_ITEM_PREFIX) + 36);
  assert_int_equal(strncmp(a, GW_NS_ITEM_PREFIX, strlen(GW_NS_ITEM_PREFIX)), 0);
  assert_int_equal(a[strlen(GW_NS_ITEM_PREFIX) + 14], '4');
}

static void test_eui64(void **state) {
  (void)state;
  uint8_t eui[8];
  static const uint8_t want[8] = {0x00, 0x04, 0xa3, 0x0b, 0x00, 0x1c, 0x05, 0x30};
  assert_int_equal(gw_eui64_parse("0004A30B001C0530", eui), GW_OK);
  assert_memory_equal(eui, want, 8);
  assert_int_equal(gw_eui64_parse("0004a30b001c0530", eui), GW_OK);
  assert_memory_equal(eui, want, 8);
  assert_int_equal(gw_eui64_parse("0004a30b001c053", eui), GW_ERR_INVAL);
  assert_int_equal(gw_eui64_parse("0004a30b001c05300", eui), GW_ERR_INVAL);
  assert_int_equal(gw_eui64_parse("0004a30b001c053g", eui), GW_ERR_INVAL);
  assert_int_equal(gw_eui64_parse("00-04-a3-0b-00-1c", eui), GW_ERR_INVAL);
  assert_int_equal(gw_eui64_parse("", eui), GW_ERR_INVAL);
  assert_int_equal(gw_eui64_parse(NULL, eui), GW_ERR_INVAL);
  char text[17];
  gw_eui64_format(want, false, text);
  assert_string_equal(text, "0004a30b001c0530");
  gw_eui64_format(want, true, text);
  assert_string_equal(text, "0004A30B001C0530");
}

/* ---- region ----------------------------------------------------------------------------- */

static void test_region_eu868(void **state) {
  (void)state;
  gw_region_t r;
  gw_region_eu868(&r);
  /* ChirpStack eu868.rs, not repeater compatible. */
  static const size_t n[] = {51, 51, 51, 115, 242, 242, 242, 242, 50, 115, 50, 115};
  for (int dr = 0; dr < 12; dr++)
    assert_int_equal(gw_region_max_payload(&r, dr), n[dr]);
  /* Unknown: the smallest of the table (LR-FHSS DR8 and DR10 carry 50). */
  assert_int_equal(gw_region_min_payload(&r), 50);
  assert_int_equal(gw_region_max_payload(&r, -1), 50);
  assert_int_equal(gw_region_max_payload(&r, 12), 50);
  assert_int_equal(gw_region_max_payload(&r, 15), 50);
  assert_int_equal(gw_region_max_payload(&r, 1000), 50);

  static const unsigned sf[] = {12, 11, 10, 9, 8, 7};
  for (int dr = 0; dr < 6; dr++)
    assert_int_equal(gw_region_eu868_lora_dr(sf[dr], 125000), dr);
  assert_int_equal(gw_region_eu868_lora_dr(7, 250000), 6);
  assert_int_equal(gw_region_eu868_lora_dr(8, 250000), -1);
  assert_int_equal(gw_region_eu868_lora_dr(6, 125000), -1);
  assert_int_equal(gw_region_eu868_lora_dr(13, 125000), -1);
  assert_int_equal(gw_region_eu868_lora_dr(7, 500000), -1);
  assert_int_equal(gw_region_eu868_lora_dr(7, 125), -1); /* kHz is not what the NS writes */
  assert_int_equal(gw_region_eu868_fsk_dr(50000), 7);
  assert_int_equal(gw_region_eu868_fsk_dr(50), -1);
}

static void test_region_table(void **state) {
  (void)state;
  gw_region_t r;
  gw_region_eu868(&r);
  /* The configuration's bindings.lorawan.max_payload. */
  static const unsigned conf[] = {51, 51, 51, 115, 242, 242, 242, 242};
  assert_int_equal(gw_region_set_table(&r, conf, 8), GW_OK);
  assert_int_equal(gw_region_max_payload(&r, 3), 115);
  assert_int_equal(gw_region_max_payload(&r, 7), 242);
  assert_int_equal(gw_region_max_payload(&r, 8), 51); /* not in the table any more */
  assert_int_equal(gw_region_max_payload(&r, -1), 51);
  /* Repeater compatible: 222 from DR4. */
  static const unsigned repeater[] = {51, 51, 51, 115, 222, 222, 222, 222};
  assert_int_equal(gw_region_set_table(&r, repeater, 8), GW_OK);
  assert_int_equal(gw_region_max_payload(&r, 5), 222);

  static const unsigned zero[] = {51, 0}, big[] = {51, 256}, max[] = {255};
  assert_int_equal(gw_region_set_table(&r, zero, 2), GW_ERR_INVAL);
  assert_int_equal(gw_region_set_table(&r, big, 2), GW_ERR_INVAL);
  assert_int_equal(gw_region_set_table(&r, conf, 0), GW_ERR_INVAL);
  unsigned seventeen[17];
  for (size_t i = 0; i < 17; i++)
    seventeen[i] = 51;
  assert_int_equal(gw_region_set_table(&r, seventeen, 17), GW_ERR_INVAL);
  assert_int_equal(gw_region_max_payload(&r, 5), 222); /* unchanged by the refusals */
  assert_int_equal(gw_region_set_table(&r, seventeen, 16), GW_OK);
  assert_int_equal(gw_region_max_payload(&r, 15), 51);
  assert_int_equal(gw_region_set_table(&r, max, 1), GW_OK);
  assert_int_equal(gw_region_max_payload(&r, 0), 255);
  assert_int_equal(gw_region_max_payload(&r, 1), 255);

  gw_region_t empty = {0};
  assert_int_equal(gw_region_min_payload(&empty), 0);
  assert_int_equal(gw_region_max_payload(&empty, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cs_uplink_docs_example),
      cmocka_unit_test(test_cs_uplink_all_fields),
      cmocka_unit_test(test_cs_txack_and_ack),
      cmocka_unit_test(test_cs_log_events),
      cmocka_unit_test(test_cs_other_events),
      cmocka_unit_test(test_cs_rejections),
      cmocka_unit_test(test_cs_oversized_and_bombs),
      cmocka_unit_test(test_tts_uplink),
      cmocka_unit_test(test_tts_downlink_events),
      cmocka_unit_test(test_tts_down_failed),
      cmocka_unit_test(test_tts_other_topics),
      cmocka_unit_test(test_tts_rejections),
      cmocka_unit_test(test_uplink_without_fport),
      cmocka_unit_test(test_unknown_format),
      cmocka_unit_test(test_subscriptions),
      cmocka_unit_test(test_cs_downlink_round_trip),
      cmocka_unit_test(test_tts_downlink_round_trip),
      cmocka_unit_test(test_downlink_refusals),
      cmocka_unit_test(test_item_ids),
      cmocka_unit_test(test_eui64),
      cmocka_unit_test(test_region_eu868),
      cmocka_unit_test(test_region_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
