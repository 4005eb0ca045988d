/* Unit tests of the T8 NIDD JSON layer (ciot/t8.h).
 *
 * Vectors: built from the Rel-17 OpenAPI schemas (shared/reference/3gpp-t8/TS29122_NIDD.yaml:
 * NiddConfiguration, NiddDownlinkDataTransfer, NiddUplinkDataNotification,
 * NiddDownlinkDataDeliveryStatusNotification, NiddConfigurationStatusNotification,
 * NiddDownlinkDataDeliveryFailure, GmdNiddDownlinkDataDeliveryNotification, ManagePortNotification,
 * RdsPort, DeliveryStatus, NiddStatus; ProblemDetails of TS29122_CommonData.yaml), the causes
 * TS 29.122 4.4.5 names (DATA_TOO_LARGE, RDS_PORT_UNKNOWN), and the answer of an operator's SCEF
 * quoted in shared/reference/lorawan-and-t8.md PART 2 (`status` where the schema says
 * `deliveryStatus`; its identifiers are elided there, stand-ins here). Every refusal has a case.
 * Bodies the layer writes are read back with json-c, member by member. */
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
#include "t8.h"

#define CFG_LINK "https://scef.example.net/3gpp-nidd/v1/scs-as-1/configurations/cfg-42"
#define DL_LINK CFG_LINK "/downlink-data-deliveries/365"
#define EXT_ID "meter-17@iot.example.net"
#define NOTIFY_URL "https://gw.example.net:8081/nidd/notifications"
/* A CoAP GET /3/0/0 (CON, MID 0x1234): 40 01 12 34 b1 33 01 30 01 30. */
#define COAP_GET_B64 "QAESNLEzATABMA=="
static const uint8_t coap_get[] = {0x40, 0x01, 0x12, 0x34, 0xb1, 0x33, 0x01, 0x30, 0x01, 0x30};
/* 2023-11-14T22:13:20Z */
#define NOW INT64_C(1700000000)

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

/* The bodies the layer reads, each into its struct. */
typedef enum { CONFIG, DOWNLINK, FAILURE, PROBLEM, NOTE } body_t;

typedef union {
  gw_t8_config_t config;
  gw_t8_downlink_t downlink;
  gw_t8_delivery_failure_t failure;
  gw_t8_problem_t problem;
  gw_t8_notification_t note;
} any_body_t;

static int parse_body(body_t body, const char *json, void *out, const char **why) {
  const uint8_t *b = u8(json);
  size_t len = strlen(json);
  switch (body) {
  case CONFIG: return gw_t8_configuration_parse(b, len, out, why);
  case DOWNLINK: return gw_t8_downlink_parse(b, len, out, why);
  case FAILURE: return gw_t8_delivery_failure_parse(b, len, out, why);
  case PROBLEM: return gw_t8_problem_parse(b, len, out, why);
  case NOTE: return gw_t8_notification_parse(b, len, out, why);
  }
  fail();
  return GW_ERR_INVAL;
}

/* json read into *out without a reason. */
static void expect_parsed(body_t body, const char *json, void *out) {
  const char *why = "unset";
  if (parse_body(body, json, out, &why) != GW_OK)
    fail_msg("refused (%s): %s", why ? why : "(no reason)", json);
  assert_null(why);
}

/* json refused with rc and reason, the output left all zero. */
static void expect_refused(body_t body, int rc, const char *json, const char *reason) {
  static any_body_t out, zero;
  memset(&out, 0x5a, sizeof out);
  const char *why = NULL;
  int got = parse_body(body, json, &out, &why);
  if (got == GW_OK)
    fail_msg("accepted: %s", json);
  assert_int_equal(got, rc);
  assert_non_null(why);
  if (strcmp(why, reason) != 0)
    fail_msg("expected \"%s\", got \"%s\" for %s", reason, why, json);
  size_t size = body == CONFIG     ? sizeof out.config
                : body == DOWNLINK ? sizeof out.downlink
                : body == FAILURE  ? sizeof out.failure
                : body == PROBLEM  ? sizeof out.problem
                                   : sizeof out.note;
  assert_memory_equal(&out, &zero, size);
}

/* ---- reading back what the layer writes --------------------------------------------------- */

static void assert_absent(json_object *o, const char *key) {
  if (json_object_object_get_ex(o, key, NULL))
    fail_msg("member %s should not be there", key);
}

static void assert_member_string(json_object *o, const char *key, const char *value) {
  assert_string_equal(json_object_get_string(member(o, key, json_type_string)), value);
}

static void assert_rds_port(json_object *p, int ue, int scef) {
  assert_int_equal(json_object_object_length(p), 2);
  assert_int_equal(json_object_get_int(member(p, "portUE", json_type_int)), ue);
  assert_int_equal(json_object_get_int(member(p, "portSCEF", json_type_int)), scef);
}

/* readOnly members of NiddConfiguration and NiddDownlinkDataTransfer. */
static void assert_no_read_only(json_object *o) {
  assert_absent(o, "self");
  assert_absent(o, "status");
  assert_absent(o, "deliveryStatus");
  assert_absent(o, "maximumPacketSize");
}

/* ---- NIDD configuration request ----------------------------------------------------------- */

static const gw_t8_rds_port_t two_servers[] = {{.ue = 0, .scef = 1}, {.ue = 0, .scef = 2}};

static gw_t8_config_req_t config_req(void) {
  return (gw_t8_config_req_t){
      .ue = {GW_T8_EXTERNAL_ID, EXT_ID},
      .notification_destination = NOTIFY_URL,
      .duration_s = 86400,
      .reliable_data_service = true,
      .rds_ports = two_servers,
      .rds_port_count = 2,
      .pdn_option = GW_T8_PDN_WAIT_FOR_UE,
  };
}

static void test_configuration_request(void **state) {
  (void)state;
  gw_t8_config_req_t req = config_req();
  char json[1024];
  assert_int_equal(gw_t8_configuration_request(&req, NOW, json, sizeof json), GW_OK);
  assert_string_equal(json,
                      "{\"externalId\":\"" EXT_ID "\",\"notificationDestination\":\"" NOTIFY_URL
                      "\",\"duration\":\"2023-11-15T22:13:20Z\",\"reliableDataService\":true,"
                      "\"rdsPorts\":[{\"portUE\":0,\"portSCEF\":1},{\"portUE\":0,\"portSCEF\":2}],"
                      "\"pdnEstablishmentOption\":\"WAIT_FOR_UE\"}");
  json_object *root = read_json(json);
  assert_member_string(root, "externalId", EXT_ID);
  assert_member_string(root, "notificationDestination", NOTIFY_URL);
  assert_member_string(root, "duration", "2023-11-15T22:13:20Z");
  assert_true(json_object_get_boolean(member(root, "reliableDataService", json_type_boolean)));
  json_object *ports = member(root, "rdsPorts", json_type_array);
  assert_int_equal(json_object_array_length(ports), 2);
  assert_rds_port(json_object_array_get_idx(ports, 0), 0, 1);
  assert_rds_port(json_object_array_get_idx(ports, 1), 0, 2);
  assert_member_string(root, "pdnEstablishmentOption", "WAIT_FOR_UE");
  assert_no_read_only(root);
  assert_absent(root, "requestTestNotification");
  assert_absent(root, "supportedFeatures");
  int64_t t;
  assert_int_equal(gw_t8_datetime_parse("2023-11-15T22:13:20Z", 20, &t), GW_OK);
  assert_true(t == NOW + 86400);
  json_object_put(root);

  /* The least: an MSISDN, no duration (no end), no RDS, the SCEF's own PDN policy. */
  req = (gw_t8_config_req_t){.ue = {GW_T8_MSISDN, "14155550125"},
                             .notification_destination = "http://192.0.2.1:8081/"};
  assert_int_equal(gw_t8_configuration_request(&req, NOW, json, sizeof json), GW_OK);
  assert_string_equal(json, "{\"msisdn\":\"14155550125\",\"notificationDestination\":"
                            "\"http://192.0.2.1:8081/\",\"reliableDataService\":false}");

  /* A group. */
  req.ue = (gw_t8_ue_t){GW_T8_EXTERNAL_GROUP_ID, "meters@iot.example.net"};
  assert_int_equal(gw_t8_configuration_request(&req, NOW, json, sizeof json), GW_OK);
  root = read_json(json);
  assert_member_string(root, "externalGroupId", "meters@iot.example.net");
  assert_absent(root, "externalId");
  assert_absent(root, "msisdn");
  json_object_put(root);

  /* The last second the DateTime writer takes: 9999-12-31T23:59:59Z. */
  req.duration_s = 1;
  assert_int_equal(gw_t8_configuration_request(&req, INT64_C(253402300798), json, sizeof json),
                   GW_OK);
  assert_non_null(strstr(json, "\"duration\":\"9999-12-31T23:59:59Z\""));
}

static void expect_config_req_refused(const gw_t8_config_req_t *req, int64_t now) {
  char json[1024] = "x";
  assert_int_equal(gw_t8_configuration_request(req, now, json, sizeof json), GW_ERR_INVAL);
  assert_string_equal(json, "");
}

static void test_configuration_request_refusals(void **state) {
  (void)state;
  static const char *const bad_external_ids[] = {
      "meter-17", "@iot.example.net", "meter-17@", "a@b@c", "meter 17@iot.example.net",
      "m\xc3\xa9ter@iot.example.net", "",
  };
  for (size_t i = 0; i < sizeof bad_external_ids / sizeof bad_external_ids[0]; i++) {
    gw_t8_config_req_t req = config_req();
    req.ue.id = bad_external_ids[i];
    expect_config_req_refused(&req, NOW);
    req.ue.kind = GW_T8_EXTERNAL_GROUP_ID;
    expect_config_req_refused(&req, NOW);
  }
  char long_id[GW_T8_UE_ID_MAX + 2];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  long_id[10] = '@';
  gw_t8_config_req_t req = config_req();
  req.ue.id = long_id;
  expect_config_req_refused(&req, NOW);
  long_id[GW_T8_UE_ID_MAX] = '\0'; /* GW_T8_UE_ID_MAX characters: taken */
  char json[1024];
  assert_int_equal(gw_t8_configuration_request(&req, NOW, json, sizeof json), GW_OK);

  static const char *const bad_msisdns[] = {"", "+14155550125", "1415555012a",
                                            "1234567890123456"};
  for (size_t i = 0; i < sizeof bad_msisdns / sizeof bad_msisdns[0]; i++) {
    req = config_req();
    req.ue = (gw_t8_ue_t){GW_T8_MSISDN, bad_msisdns[i]};
    expect_config_req_refused(&req, NOW);
  }
  req = config_req();
  req.ue.id = NULL;
  expect_config_req_refused(&req, NOW);
  req = config_req();
  req.ue.kind = (gw_t8_ue_kind_t)7;
  expect_config_req_refused(&req, NOW);

  static const char *const bad_destinations[] = {
      "gw.example.net/nidd", "/nidd", "ftp://gw.example.net/", "https://", "https:///nidd",
      "https://gw.example.net/a b", "https://gw.example.net/?x=1", "https://gw.example.net/#f",
  };
  for (size_t i = 0; i < sizeof bad_destinations / sizeof bad_destinations[0]; i++) {
    req = config_req();
    req.notification_destination = bad_destinations[i];
    expect_config_req_refused(&req, NOW);
  }
  req = config_req();
  req.notification_destination = NULL;
  expect_config_req_refused(&req, NOW);

  /* RDS ports are 0..15; at most GW_T8_RDS_PORTS_MAX of them; a count needs its array. */
  gw_t8_rds_port_t ports[GW_T8_RDS_PORTS_MAX + 1] = {{0}};
  req = config_req();
  req.rds_ports = ports;
  req.rds_port_count = GW_T8_RDS_PORTS_MAX + 1;
  expect_config_req_refused(&req, NOW);
  req.rds_port_count = GW_T8_RDS_PORTS_MAX;
  assert_int_equal(gw_t8_configuration_request(&req, NOW, json, sizeof json), GW_OK);
  ports[3].scef = 16;
  expect_config_req_refused(&req, NOW);
  ports[3] = (gw_t8_rds_port_t){.ue = 16, .scef = 0};
  expect_config_req_refused(&req, NOW);
  req.rds_ports = NULL;
  req.rds_port_count = 1;
  expect_config_req_refused(&req, NOW);

  req = config_req();
  req.pdn_option = (gw_t8_pdn_option_t)4;
  expect_config_req_refused(&req, NOW);

  /* A duration ending after 9999, or counted from before 1970. */
  req = config_req();
  expect_config_req_refused(&req, INT64_C(253402300799));
  expect_config_req_refused(&req, INT64_MAX);
  expect_config_req_refused(&req, -86401);

  /* Too small a buffer. */
  req = config_req();
  char small[64] = "x";
  assert_int_equal(gw_t8_configuration_request(&req, NOW, small, sizeof small), GW_ERR_TOOBIG);
  assert_string_equal(small, "");
}

/* ---- NIDD configuration answer ------------------------------------------------------------- */

static void test_configuration_answer(void **state) {
  (void)state;
  gw_t8_config_t cfg;
  /* A 201 body: the request's members, and self, maximumPacketSize (10864 bits: the 1358-byte
   * Non-IP MTU) and status the SCEF adds; supportedFeatures and an extension member of a later
   * release are ignored. */
  expect_parsed(CONFIG,
                "{\"self\": \"" CFG_LINK "\", \"supportedFeatures\": \"0\", \"externalId\": "
                "\"" EXT_ID "\", \"duration\": \"2023-11-15T22:13:20Z\", \"reliableDataService\": "
                "true, \"rdsPorts\": [{\"portUE\": 0, \"portSCEF\": 1}], "
                "\"pdnEstablishmentOption\": \"WAIT_FOR_UE\", \"notificationDestination\": \""
                NOTIFY_URL "\", "
                "\"maximumPacketSize\": 10864, \"status\": \"ACTIVE\", \"futureMember\": "
                "{\"x\": [1, 2, {\"y\": null}]}}",
                &cfg);
  assert_string_equal(cfg.self, CFG_LINK);
  assert_int_equal(cfg.status, GW_T8_NIDD_ACTIVE);
  assert_true(cfg.has_expiry);
  assert_true(cfg.expiry == NOW + 86400);
  assert_int_equal(cfg.max_packet_bits, 10864);
  assert_true(cfg.has_reliable_data_service);
  assert_true(cfg.reliable_data_service);

  /* The least: the SCEF adds nothing (the 201's Location names it); nulls read as absent. */
  expect_parsed(CONFIG,
                "{\"msisdn\": \"14155550125\", \"notificationDestination\": \"" NOTIFY_URL
                "\", \"self\": null, \"maximumPacketSize\": null}",
                &cfg);
  assert_string_equal(cfg.self, "");
  assert_int_equal(cfg.status, GW_T8_NIDD_UNSET);
  assert_false(cfg.has_expiry);
  assert_int_equal(cfg.max_packet_bits, 0);
  assert_false(cfg.has_reliable_data_service);

  /* Every NiddStatus, and one of a later release. */
  static const struct {
    const char *name;
    gw_t8_nidd_status_t status;
  } statuses[] = {{"ACTIVE", GW_T8_NIDD_ACTIVE},
                  {"TERMINATED_UE_NOT_AUTHORIZED", GW_T8_NIDD_TERMINATED_UE_NOT_AUTHORIZED},
                  {"TERMINATED", GW_T8_NIDD_TERMINATED},
                  {"RDS_PORT_UNKNOWN", GW_T8_NIDD_RDS_PORT_UNKNOWN},
                  {"SUSPENDED", GW_T8_NIDD_OTHER},
                  {"active", GW_T8_NIDD_OTHER}};
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    char json[128];
    snprintf(json, sizeof json, "{\"status\": \"%s\"}", statuses[i].name);
    expect_parsed(CONFIG, json, &cfg);
    assert_int_equal(cfg.status, statuses[i].status);
    if (statuses[i].status != GW_T8_NIDD_OTHER)
      assert_string_equal(gw_t8_nidd_status_name(cfg.status), statuses[i].name);
  }
  assert_string_equal(gw_t8_nidd_status_name(GW_T8_NIDD_OTHER), "(other)");
  assert_string_equal(gw_t8_nidd_status_name(GW_T8_NIDD_UNSET), "(unset)");

  /* maximumPacketSize: 1 up to 32 bits. */
  expect_parsed(CONFIG, "{\"maximumPacketSize\": 1}", &cfg);
  assert_int_equal(cfg.max_packet_bits, 1);
  expect_parsed(CONFIG, "{\"maximumPacketSize\": 4294967295}", &cfg);
  assert_int_equal(cfg.max_packet_bits, 4294967295u);
}

static void test_configuration_answer_refusals(void **state) {
  (void)state;
  static const struct {
    const char *json, *reason;
  } refused[] = {
      {"", "not JSON"},
      {"{\"status\": \"ACTIVE\"", "not JSON"},
      {"{\"status\": \"ACTIVE\"} {}", "not JSON"},
      {"{'status': 'ACTIVE'}", "not JSON"},
      {"[{\"status\": \"ACTIVE\"}]", "not a JSON object"},
      {"{\"s\": \"\xff\"}", "not JSON"},
      {"{\"self\": 42}", "self not a link"},
      {"{\"self\": \"\"}", "self not a link"},
      {"{\"self\": \"/a b\"}", "self not a link"},
      {"{\"self\": \"/a\\u0000b\"}", "self not a link"},
      {"{\"status\": 1}", "status not a string"},
      {"{\"status\": [\"ACTIVE\"]}", "status not a string"},
      {"{\"duration\": \"tomorrow\"}", "duration not an RFC 3339 date-time"},
      {"{\"duration\": 86400}", "duration not an RFC 3339 date-time"},
      {"{\"reliableDataService\": \"true\"}", "reliableDataService not a boolean"},
      {"{\"reliableDataService\": 1}", "reliableDataService not a boolean"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    expect_refused(CONFIG, GW_ERR_INVAL, refused[i].json, refused[i].reason);
  static const char *const bad_sizes[] = {"0", "-8", "1358.0", "1e4", "\"10864\"", "true",
                                          "4294967296", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    char json[128];
    snprintf(json, sizeof json, "{\"maximumPacketSize\": %s}", bad_sizes[i]);
    expect_refused(CONFIG, GW_ERR_INVAL, json, "maximumPacketSize not a positive 32-bit integer");
  }
  /* Nesting beyond GW_JSON_DEPTH (32). */
  char deep[200] = "{\"a\":";
  for (int i = 0; i < 40; i++)
    strcat(deep, "[");
  for (int i = 0; i < 40; i++)
    strcat(deep, "]");
  strcat(deep, "}");
  expect_refused(CONFIG, GW_ERR_INVAL, deep, "JSON nested too deep");
  /* Larger than GW_T8_BODY_MAX. */
  size_t big = GW_T8_BODY_MAX + 1;
  char *huge = malloc(big + 1);
  assert_non_null(huge);
  memset(huge, ' ', big);
  huge[0] = '{';
  huge[big - 1] = '}';
  huge[big] = '\0';
  expect_refused(CONFIG, GW_ERR_INVAL, huge, "message too large");
  huge[big - 2] = '}';
  huge[big - 1] = '\0'; /* GW_T8_BODY_MAX bytes: taken */
  gw_t8_config_t cfg;
  expect_parsed(CONFIG, huge, &cfg);
  free(huge);
  /* A NULL why is allowed. */
  assert_int_equal(gw_t8_configuration_parse(u8("[]"), 2, &cfg, NULL), GW_ERR_INVAL);
}

/* ---- downlink ----------------------------------------------------------------------------- */

static void test_downlink_request(void **state) {
  (void)state;
  gw_t8_downlink_req_t req = {
      .ue = {GW_T8_EXTERNAL_ID, EXT_ID},
      .data = coap_get,
      .len = sizeof coap_get,
      .reliable_data_service = true,
      .has_rds_port = true,
      .rds_port = {.ue = 0, .scef = 2},
      .has_maximum_latency = true,
      .maximum_latency_s = 0,
      .has_priority = true,
      .priority = -3,
      .pdn_option = GW_T8_PDN_SEND_TRIGGER,
  };
  char json[512];
  assert_int_equal(gw_t8_downlink_request(&req, json, sizeof json), GW_OK);
  assert_string_equal(json, "{\"externalId\":\"" EXT_ID "\",\"data\":\"" COAP_GET_B64 "\","
                            "\"reliableDataService\":true,\"rdsPort\":{\"portUE\":0,"
                            "\"portSCEF\":2},\"maximumLatency\":0,\"priority\":-3,"
                            "\"pdnEstablishmentOption\":\"SEND_TRIGGER\"}");
  json_object *root = read_json(json);
  json_object *data = member(root, "data", json_type_string);
  uint8_t back[64];
  size_t n = 0;
  assert_int_equal(gw_base64_decode(json_object_get_string(data),
                                    (size_t)json_object_get_string_len(data), back, sizeof back,
                                    &n),
                   GW_OK);
  assert_int_equal(n, sizeof coap_get);
  assert_memory_equal(back, coap_get, n);
  assert_rds_port(member(root, "rdsPort", json_type_object), 0, 2);
  assert_int_equal(json_object_get_int(member(root, "maximumLatency", json_type_int)), 0);
  assert_no_read_only(root);
  assert_absent(root, "requestedRetransmissionTime");
  json_object_put(root);

  /* The least; an empty datagram. */
  req = (gw_t8_downlink_req_t){.ue = {GW_T8_MSISDN, "14155550125"}};
  assert_int_equal(gw_t8_downlink_request(&req, json, sizeof json), GW_OK);
  assert_string_equal(json,
                      "{\"msisdn\":\"14155550125\",\"data\":\"\",\"reliableDataService\":false}");

  /* GW_T8_DATA_MAX bytes, and the largest maximumLatency. */
  static uint8_t big[GW_T8_DATA_MAX];
  memset(big, 0xa5, sizeof big);
  req = (gw_t8_downlink_req_t){.ue = {GW_T8_EXTERNAL_ID, EXT_ID}, .data = big, .len = sizeof big,
                               .has_maximum_latency = true, .maximum_latency_s = UINT32_MAX};
  static char big_json[GW_BASE64_LEN(GW_T8_DATA_MAX) + 256];
  assert_int_equal(gw_t8_downlink_request(&req, big_json, sizeof big_json), GW_OK);
  root = read_json(big_json);
  assert_int_equal(json_object_get_string_len(member(root, "data", json_type_string)),
                   GW_BASE64_LEN(GW_T8_DATA_MAX));
  assert_true(json_object_get_int64(member(root, "maximumLatency", json_type_int)) ==
              (int64_t)UINT32_MAX);
  json_object_put(root);
}

static void expect_downlink_req_refused(const gw_t8_downlink_req_t *req, int rc) {
  char json[512] = "x";
  assert_int_equal(gw_t8_downlink_request(req, json, sizeof json), rc);
  assert_string_equal(json, "");
}

static void test_downlink_request_refusals(void **state) {
  (void)state;
  static uint8_t big[GW_T8_DATA_MAX + 1];
  gw_t8_downlink_req_t ok = {.ue = {GW_T8_EXTERNAL_ID, EXT_ID}, .data = coap_get,
                             .len = sizeof coap_get};
  gw_t8_downlink_req_t req = ok;
  req.data = big;
  req.len = sizeof big;
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req = ok;
  req.data = NULL;
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req = ok;
  req.ue.id = "meter-17";
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req = ok;
  req.has_rds_port = true;
  req.rds_port = (gw_t8_rds_port_t){.ue = 0, .scef = 16};
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req.rds_port = (gw_t8_rds_port_t){.ue = 200, .scef = 1};
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req = ok;
  req.pdn_option = (gw_t8_pdn_option_t)-1;
  expect_downlink_req_refused(&req, GW_ERR_INVAL);
  req = ok;
  char small[40] = "x";
  assert_int_equal(gw_t8_downlink_request(&req, small, sizeof small), GW_ERR_TOOBIG);
  assert_string_equal(small, "");
}

static void test_downlink_answers(void **state) {
  (void)state;
  gw_t8_downlink_t dl;
  /* 200: delivered; the request's members echoed. */
  expect_parsed(DOWNLINK,
                "{\"self\": \"" DL_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": \""
                COAP_GET_B64 "\", \"reliableDataService\": false, \"deliveryStatus\": "
                "\"SUCCESS\"}",
                &dl);
  assert_string_equal(dl.self, DL_LINK);
  assert_int_equal(dl.status, GW_T8_DS_SUCCESS);
  assert_false(dl.has_retransmission);

  /* 201: pending, buffered; a retransmission time with a fraction and an offset. */
  expect_parsed(DOWNLINK,
                "{\"self\": \"" DL_LINK "\", \"msisdn\": \"14155550125\", \"data\": \"\", "
                "\"deliveryStatus\": \"BUFFERING\", \"requestedRetransmissionTime\": "
                "\"2024-02-29T12:00:00.250+03:00\"}",
                &dl);
  assert_int_equal(dl.status, GW_T8_DS_BUFFERING);
  assert_true(dl.has_retransmission);
  assert_true(dl.retransmission_time == INT64_C(1709197200));

  /* The operator SCEF's answer (reference PART 2): `status`, an absolute path as self, no
   * data. */
  expect_parsed(DOWNLINK,
                "{\"self\":\"/3gpp-nidd/v1/scs-as-1/configurations/cfg-42/"
                "downlink-data-deliveries/365\",\"status\":"
                "\"BUFFERING_TEMPORARILY_NOT_REACHABLE\",\"externalId\":\"123456789@iot.mts.ru"
                "\",\"reliableDataService\":false}",
                &dl);
  assert_int_equal(dl.status, GW_T8_DS_BUFFERING_TEMPORARILY_NOT_REACHABLE);
  assert_string_equal(dl.self, "/3gpp-nidd/v1/scs-as-1/configurations/cfg-42/"
                               "downlink-data-deliveries/365");
  static const struct {
    const char *json;
    gw_t8_delivery_status_t status;
  } statuses[] = {
      /* deliveryStatus wins over status; a status that is no DeliveryStatus is not one. */
      {"{\"deliveryStatus\": \"SENDING\", \"status\": \"SUCCESS\"}", GW_T8_DS_SENDING},
      {"{\"status\": \"ACTIVE\"}", GW_T8_DS_UNSET},
      {"{\"status\": 3}", GW_T8_DS_UNSET},
      /* A DeliveryStatus of a later release. */
      {"{\"deliveryStatus\": \"SUCCESS_VIA_SATELLITE\"}", GW_T8_DS_OTHER},
      {"{}", GW_T8_DS_UNSET},
  };
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    expect_parsed(DOWNLINK, statuses[i].json, &dl);
    assert_int_equal(dl.status, statuses[i].status);
  }

  static const struct {
    const char *json, *reason;
  } refused[] = {
      {"{\"deliveryStatus\": 0}", "deliveryStatus not a string"},
      {"{\"self\": {\"href\": \"" DL_LINK "\"}}", "self not a link"},
      {"{\"deliveryStatus\": \"BUFFERING\", \"requestedRetransmissionTime\": "
       "\"2024-02-30T12:00:00Z\"}",
       "requestedRetransmissionTime not an RFC 3339 date-time"},
      {"[]", "not a JSON object"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    expect_refused(DOWNLINK, GW_ERR_INVAL, refused[i].json, refused[i].reason);
}

static void test_delivery_failure(void **state) {
  (void)state;
  gw_t8_delivery_failure_t f;
  const char *why = "unset";
  /* A 500 with NiddDownlinkDataDeliveryFailure. */
  static const char body[] =
      "{\"problemDetail\": {\"type\": \"https://scef.example.net/problems/not-reachable\", "
      "\"title\": \"UE not reachable\", \"status\": 500, \"detail\": \"the UE is in power "
      "saving mode\", \"instance\": \"" DL_LINK "\", \"cause\": \"UE_NOT_REACHABLE\", "
      "\"invalidParams\": [{\"param\": \"/data\"}]}, \"requestedRetransmissionTime\": "
      "\"2023-11-15T22:13:20Z\"}";
  assert_int_equal(gw_t8_delivery_failure_parse(u8(body), strlen(body), &f, &why), GW_OK);
  assert_null(why);
  assert_int_equal(f.problem.status, 500);
  assert_string_equal(f.problem.title, "UE not reachable");
  assert_string_equal(f.problem.detail, "the UE is in power saving mode");
  assert_string_equal(f.problem.cause, "UE_NOT_REACHABLE");
  assert_true(f.has_retransmission);
  assert_true(f.retransmission_time == NOW + 86400);

  /* An empty problemDetail, no retransmission time. */
  static const char empty[] = "{\"problemDetail\": {}}";
  assert_int_equal(gw_t8_delivery_failure_parse(u8(empty), strlen(empty), &f, &why), GW_OK);
  assert_int_equal(f.problem.status, 0);
  assert_string_equal(f.problem.title, "");
  assert_false(f.has_retransmission);

  static const struct {
    const char *json, *reason;
  } refused[] = {
      {"{}", "missing problemDetail"},
      {"{\"problemDetail\": null, \"requestedRetransmissionTime\": \"2023-11-15T22:13:20Z\"}",
       "missing problemDetail"},
      {"{\"problemDetail\": \"UE not reachable\"}", "problemDetail not an object"},
      {"{\"problemDetail\": {\"status\": 99}}", "status not an HTTP status code"},
      {"{\"problemDetail\": {\"status\": 600}}", "status not an HTTP status code"},
      {"{\"problemDetail\": {\"status\": \"500\"}}", "status not an HTTP status code"},
      {"{\"problemDetail\": {\"title\": 5}}", "title not a string"},
      {"{\"problemDetail\": {\"detail\": false}}", "detail not a string"},
      {"{\"problemDetail\": {\"cause\": {}}}", "cause not a string"},
      {"{\"problemDetail\": {}, \"requestedRetransmissionTime\": \"2023-11-15\"}",
       "requestedRetransmissionTime not an RFC 3339 date-time"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    expect_refused(FAILURE, GW_ERR_INVAL, refused[i].json, refused[i].reason);
}

static void test_problem(void **state) {
  (void)state;
  gw_t8_problem_t p;
  const char *why = "unset";
  /* TS 29.122 4.4.5: a downlink larger than maximumPacketSize is a 403 with DATA_TOO_LARGE. */
  static const char too_large[] = "{\"title\": \"Forbidden\", \"status\": 403, \"detail\": "
                                  "\"non-IP packet larger than maximumPacketSize\", \"cause\": "
                                  "\"DATA_TOO_LARGE\"}";
  assert_int_equal(gw_t8_problem_parse(u8(too_large), strlen(too_large), &p, &why), GW_OK);
  assert_null(why);
  assert_int_equal(p.status, 403);
  assert_string_equal(p.cause, "DATA_TOO_LARGE");
  assert_string_equal(p.detail, "non-IP packet larger than maximumPacketSize");

  /* Texts for a log line: control characters replaced, cut on a UTF-8 boundary. */
  char json[512];
  char title[200] = "";
  for (int i = 0; i < 47; i++)
    strcat(title, "\xc3\xa9"); /* 94 bytes of é, then a 3-byte € that does not fit */
  strcat(title, "\xe2\x82\xac tail");
  snprintf(json, sizeof json, "{\"title\": \"%s\", \"detail\": \"line 1\\nline 2\\u007f\"}",
           title);
  assert_int_equal(gw_t8_problem_parse(u8(json), strlen(json), &p, &why), GW_OK);
  assert_int_equal(strlen(p.title), 94);
  assert_memory_equal(p.title, title, 94);
  assert_string_equal(p.detail, "line 1?line 2?");

  why = NULL;
  assert_int_equal(gw_t8_problem_parse(u8("{\"status\": 403.0}"), 17, &p, &why), GW_ERR_INVAL);
  assert_string_equal(why, "status not an HTTP status code");
}

static void test_problem_details_writer(void **state) {
  (void)state;
  char json[256];
  size_t n = gw_t8_problem_details(400, "Bad notification", "missing deliveryStatus", json,
                                   sizeof json);
  assert_string_equal(json, "{\"title\":\"Bad notification\",\"status\":400,\"detail\":"
                            "\"missing deliveryStatus\"}");
  assert_int_equal(n, strlen(json));
  json_object *root = read_json(json);
  assert_int_equal(json_object_get_int(member(root, "status", json_type_int)), 400);
  json_object_put(root);
  /* It reads back as a ProblemDetails. */
  gw_t8_problem_t p;
  assert_int_equal(gw_t8_problem_parse(u8(json), n, &p, NULL), GW_OK);
  assert_int_equal(p.status, 400);
  assert_string_equal(p.title, "Bad notification");
  assert_string_equal(p.detail, "missing deliveryStatus");

  n = gw_t8_problem_details(415, NULL, NULL, json, sizeof json);
  assert_string_equal(json, "{\"status\":415}");
  assert_int_equal(n, 14);
  /* Quotes and control characters are escaped. */
  n = gw_t8_problem_details(400, "a \"b\"\n", NULL, json, sizeof json);
  assert_string_equal(json, "{\"title\":\"a \\\"b\\\"\\n\",\"status\":400}");

  strcpy(json, "x");
  assert_int_equal(gw_t8_problem_details(99, "t", "d", json, sizeof json), 0);
  assert_string_equal(json, "");
  strcpy(json, "x");
  assert_int_equal(gw_t8_problem_details(600, "t", "d", json, sizeof json), 0);
  assert_string_equal(json, "");
  char small[14] = "x"; /* {"status":415} needs 15 */
  assert_int_equal(gw_t8_problem_details(415, NULL, NULL, small, sizeof small), 0);
  assert_string_equal(small, "");
}

/* ---- DeliveryStatus ----------------------------------------------------------------------- */

static void test_delivery_outcomes(void **state) {
  (void)state;
  /* Every value of the Rel-17 enum (TS29122_NIDD.yaml DeliveryStatus), in the schema's order. */
  static const struct {
    const char *name;
    gw_t8_delivery_status_t status;
    gw_t8_outcome_t outcome;
  } all[] = {
      {"SUCCESS", GW_T8_DS_SUCCESS, GW_T8_DELIVERED},
      {"SUCCESS_NEXT_HOP_ACKNOWLEDGED", GW_T8_DS_SUCCESS_NEXT_HOP_ACKNOWLEDGED, GW_T8_DELIVERED},
      {"SUCCESS_NEXT_HOP_UNACKNOWLEDGED", GW_T8_DS_SUCCESS_NEXT_HOP_UNACKNOWLEDGED,
       GW_T8_DELIVERED},
      {"SUCCESS_ACKNOWLEDGED", GW_T8_DS_SUCCESS_ACKNOWLEDGED, GW_T8_ACKED},
      {"SUCCESS_UNACKNOWLEDGED", GW_T8_DS_SUCCESS_UNACKNOWLEDGED, GW_T8_DELIVERED},
      {"TRIGGERED", GW_T8_DS_TRIGGERED, GW_T8_BUFFERED},
      {"BUFFERING", GW_T8_DS_BUFFERING, GW_T8_BUFFERED},
      {"BUFFERING_TEMPORARILY_NOT_REACHABLE", GW_T8_DS_BUFFERING_TEMPORARILY_NOT_REACHABLE,
       GW_T8_BUFFERED},
      {"SENDING", GW_T8_DS_SENDING, GW_T8_DELIVERED},
      {"FAILURE", GW_T8_DS_FAILURE, GW_T8_FAILED},
      {"FAILURE_RDS_DISABLED", GW_T8_DS_FAILURE_RDS_DISABLED, GW_T8_FAILED},
      {"FAILURE_NEXT_HOP", GW_T8_DS_FAILURE_NEXT_HOP, GW_T8_FAILED},
      {"FAILURE_TIMEOUT", GW_T8_DS_FAILURE_TIMEOUT, GW_T8_FAILED},
      {"FAILURE_TEMPORARILY_NOT_REACHABLE", GW_T8_DS_FAILURE_TEMPORARILY_NOT_REACHABLE,
       GW_T8_FAILED},
  };
  assert_int_equal(sizeof all / sizeof all[0], 14);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    /* The name reads as the value, in a notification and in an answer... */
    char json[256];
    snprintf(json, sizeof json,
             "{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"deliveryStatus\": \"%s\"}",
             all[i].name);
    gw_t8_notification_t note;
    const char *why = "unset";
    assert_int_equal(gw_t8_notification_parse(u8(json), strlen(json), &note, &why), GW_OK);
    assert_int_equal(note.delivery_status, all[i].status);
    snprintf(json, sizeof json, "{\"deliveryStatus\": \"%s\"}", all[i].name);
    gw_t8_downlink_t dl;
    assert_int_equal(gw_t8_downlink_parse(u8(json), strlen(json), &dl, &why), GW_OK);
    assert_int_equal(dl.status, all[i].status);
    /* ...its name is the schema's, and it has an outcome with a reason. */
    assert_string_equal(gw_t8_delivery_status_name(all[i].status), all[i].name);
    const char *reason = NULL;
    assert_int_equal(gw_t8_delivery_outcome(all[i].status, &reason), all[i].outcome);
    assert_non_null(reason);
    assert_true(strncmp(reason, "SCEF: ", 6) == 0);
  }
  const char *reason = NULL;
  assert_int_equal(gw_t8_delivery_outcome(GW_T8_DS_OTHER, &reason), GW_T8_FAILED);
  assert_string_equal(reason, "SCEF: delivery status unknown to this release");
  assert_int_equal(gw_t8_delivery_outcome(GW_T8_DS_UNSET, &reason), GW_T8_FAILED);
  assert_string_equal(reason, "SCEF: no delivery status");
  assert_int_equal(gw_t8_delivery_outcome((gw_t8_delivery_status_t)99, NULL), GW_T8_FAILED);
  assert_string_equal(gw_t8_delivery_status_name(GW_T8_DS_UNSET), "(unset)");
  assert_string_equal(gw_t8_delivery_status_name(GW_T8_DS_OTHER), "(other)");
  assert_string_equal(gw_t8_delivery_status_name((gw_t8_delivery_status_t)99), "(other)");
}

/* ---- notifications ------------------------------------------------------------------------ */

static void expect_note(const char *json, gw_t8_note_kind_t kind, gw_t8_notification_t *out) {
  expect_parsed(NOTE, json, out);
  assert_int_equal(out->kind, kind);
}

static void test_uplink_notification(void **state) {
  (void)state;
  gw_t8_notification_t n;
  /* NiddUplinkDataNotification with RDS: the ports pick the server. */
  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
              "\"data\": \"" COAP_GET_B64 "\", \"reliableDataService\": true, \"rdsPort\": "
              "{\"portUE\": 0, \"portSCEF\": 2}}",
              GW_T8_NOTE_UPLINK, &n);
  assert_string_equal(n.link, CFG_LINK);
  assert_string_equal(n.external_id, EXT_ID);
  assert_string_equal(n.msisdn, "");
  assert_int_equal(n.data_len, sizeof coap_get);
  assert_memory_equal(n.data, coap_get, sizeof coap_get);
  assert_true(n.reliable_data_service);
  assert_true(n.has_rds_port);
  assert_int_equal(n.rds_port.ue, 0);
  assert_int_equal(n.rds_port.scef, 2);

  /* By MSISDN (a "+" dropped), without RDS; an empty datagram; unknown members ignored. */
  expect_note("{\"niddConfiguration\": \"/3gpp-nidd/v1/scs-as-1/configurations/7\", \"msisdn\":"
              " \"+14155550125\", \"data\": \"\", \"rdsPort\": null, \"x-vendor\": [true]}",
              GW_T8_NOTE_UPLINK, &n);
  assert_string_equal(n.msisdn, "14155550125");
  assert_string_equal(n.external_id, "");
  assert_int_equal(n.data_len, 0);
  assert_false(n.reliable_data_service);
  assert_false(n.has_rds_port);

  /* Both identities: taken, the gateway matches either. The RDS ports' edges. */
  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
              "\"msisdn\": \"491701234567\", \"data\": \"YEUSNP8yMi41\", \"rdsPort\": "
              "{\"portUE\": 15, \"portSCEF\": 0}}",
              GW_T8_NOTE_UPLINK, &n);
  assert_string_equal(n.external_id, EXT_ID);
  assert_string_equal(n.msisdn, "491701234567");
  assert_int_equal(n.data_len, 9);
  assert_memory_equal(n.data, "\x60\x45\x12\x34\xff" "22.5", 9);
  assert_int_equal(n.rds_port.ue, 15);
  assert_int_equal(n.rds_port.scef, 0);

  /* GW_T8_DATA_MAX bytes: taken; one more: refused. */
  static uint8_t big[GW_T8_DATA_MAX + 1];
  memset(big, 0x42, sizeof big);
  static char b64[GW_BASE64_LEN(GW_T8_DATA_MAX + 1) + 1];
  static char json[sizeof b64 + 256];
  gw_base64_encode(big, GW_T8_DATA_MAX, b64, sizeof b64);
  snprintf(json, sizeof json, "{\"niddConfiguration\": \"/c/configurations/1\", \"externalId\":"
                              " \"" EXT_ID "\", \"data\": \"%s\"}", b64);
  expect_note(json, GW_T8_NOTE_UPLINK, &n);
  assert_int_equal(n.data_len, GW_T8_DATA_MAX);
  assert_memory_equal(n.data, big, GW_T8_DATA_MAX);
  gw_base64_encode(big, GW_T8_DATA_MAX + 1, b64, sizeof b64);
  snprintf(json, sizeof json, "{\"niddConfiguration\": \"/c/configurations/1\", \"externalId\":"
                              " \"" EXT_ID "\", \"data\": \"%s\"}", b64);
  expect_refused(NOTE, GW_ERR_INVAL, json, "data longer than 4096 bytes");
}

static void test_delivery_status_notification(void **state) {
  (void)state;
  gw_t8_notification_t n;
  expect_note("{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"deliveryStatus\": "
              "\"SUCCESS_ACKNOWLEDGED\"}",
              GW_T8_NOTE_DELIVERY_STATUS, &n);
  assert_string_equal(n.link, DL_LINK);
  assert_int_equal(n.delivery_status, GW_T8_DS_SUCCESS_ACKNOWLEDGED);
  assert_false(n.has_retransmission);
  assert_string_equal(n.external_id, "");

  expect_note("{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"deliveryStatus\": "
              "\"FAILURE_TEMPORARILY_NOT_REACHABLE\", \"requestedRetransmissionTime\": "
              "\"2023-11-15T22:13:20-05:30\"}",
              GW_T8_NOTE_DELIVERY_STATUS, &n);
  assert_int_equal(n.delivery_status, GW_T8_DS_FAILURE_TEMPORARILY_NOT_REACHABLE);
  assert_true(n.has_retransmission);
  assert_true(n.retransmission_time == INT64_C(1700106200));

  /* `status` for deliveryStatus, as the operator SCEF answers downlinks. */
  expect_note("{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"status\": \"SUCCESS\"}",
              GW_T8_NOTE_DELIVERY_STATUS, &n);
  assert_int_equal(n.delivery_status, GW_T8_DS_SUCCESS);
}

static void test_configuration_status_notification(void **state) {
  (void)state;
  gw_t8_notification_t n;
  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
              "\"status\": \"TERMINATED\"}",
              GW_T8_NOTE_CONFIG_STATUS, &n);
  assert_string_equal(n.link, CFG_LINK);
  assert_int_equal(n.nidd_status, GW_T8_NIDD_TERMINATED);
  assert_false(n.has_rds_cap);
  assert_false(n.has_rds_port);
  assert_int_equal(n.data_len, 0);

  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"msisdn\": \"14155550125\", "
              "\"status\": \"ACTIVE\", \"rdsCapIndication\": false, \"rdsPort\": {\"portUE\": 1,"
              " \"portSCEF\": 3}}",
              GW_T8_NOTE_CONFIG_STATUS, &n);
  assert_int_equal(n.nidd_status, GW_T8_NIDD_ACTIVE);
  assert_true(n.has_rds_cap);
  assert_false(n.rds_cap);
  assert_true(n.has_rds_port);
  assert_int_equal(n.rds_port.scef, 3);

  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
              "\"status\": \"RDS_PORT_UNKNOWN\", \"rdsCapIndication\": true}",
              GW_T8_NOTE_CONFIG_STATUS, &n);
  assert_int_equal(n.nidd_status, GW_T8_NIDD_RDS_PORT_UNKNOWN);
  assert_true(n.rds_cap);
  expect_note("{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
              "\"status\": \"PAUSED\"}",
              GW_T8_NOTE_CONFIG_STATUS, &n);
  assert_int_equal(n.nidd_status, GW_T8_NIDD_OTHER);
}

static void test_notification_refusals(void **state) {
  (void)state;
  static const struct {
    const char *json;
    int rc;
    const char *reason;
  } cases[] = {
      /* Valid notifications the gateway does not ask for. */
      {"{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"gmdResults\": [{\"externalId\": \""
       EXT_ID "\", \"deliveryStatus\": \"SUCCESS\"}]}",
       GW_ERR_UNSUPPORTED, "group delivery notification (not used by the gateway)"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", "
       "\"managedPorts\": [{\"appId\": \"lwm2m\"}]}",
       GW_ERR_UNSUPPORTED, "RDS port management notification (not used by the gateway)"},
      /* Not JSON, not a notification, ambiguous. */
      {"", GW_ERR_INVAL, "not JSON"},
      /* json-c cannot tell a bare literal at the very end from a cut one. */
      {"null", GW_ERR_INVAL, "not JSON"},
      {" null \r\n", GW_ERR_INVAL, "not a JSON object"},
      {"nul", GW_ERR_INVAL, "not JSON"},
      {"{} x", GW_ERR_INVAL, "not JSON"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\"", GW_ERR_INVAL, "not JSON"},
      {"{}", GW_ERR_INVAL,
       "not a NIDD notification (no niddConfiguration or niddDownlinkDataTransfer)"},
      {"{\"subscription\": \"" CFG_LINK "\"}", GW_ERR_INVAL,
       "not a NIDD notification (no niddConfiguration or niddDownlinkDataTransfer)"},
      {"{\"niddConfiguration\": null, \"data\": \"" COAP_GET_B64 "\"}", GW_ERR_INVAL,
       "not a NIDD notification (no niddConfiguration or niddDownlinkDataTransfer)"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"niddDownlinkDataTransfer\": \"" DL_LINK
       "\", \"deliveryStatus\": \"SUCCESS\"}",
       GW_ERR_INVAL, "ambiguous: both niddConfiguration and niddDownlinkDataTransfer"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": \""
       COAP_GET_B64 "\", \"status\": \"ACTIVE\"}",
       GW_ERR_INVAL, "ambiguous: both data and status"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\"}",
       GW_ERR_INVAL, "niddConfiguration without data or status"},
      /* Uplink. */
      {"{\"niddConfiguration\": 7, \"externalId\": \"" EXT_ID "\", \"data\": \"\"}",
       GW_ERR_INVAL, "niddConfiguration not a link"},
      {"{\"niddConfiguration\": \"\", \"externalId\": \"" EXT_ID "\", \"data\": \"\"}",
       GW_ERR_INVAL, "niddConfiguration not a link"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"data\": \"" COAP_GET_B64 "\"}",
       GW_ERR_INVAL, "missing externalId or msisdn"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"meter-17\", \"data\": \"\"}",
       GW_ERR_INVAL, "externalId not local@domain"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": [\"" EXT_ID "\"], \"data\": "
       "\"\"}",
       GW_ERR_INVAL, "externalId not local@domain"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"msisdn\": \"+\", \"data\": \"\"}",
       GW_ERR_INVAL, "msisdn not 1 to 15 digits"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"msisdn\": \"1415-555-0125\", \"data\": \"\"}",
       GW_ERR_INVAL, "msisdn not 1 to 15 digits"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"msisdn\": 14155550125, \"data\": \"\"}",
       GW_ERR_INVAL, "msisdn not 1 to 15 digits"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": 5}",
       GW_ERR_INVAL, "data not a string"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"QAESNLEzATABMA\"}",
       GW_ERR_INVAL, "bad base64 in data"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"QAES NLEz\"}",
       GW_ERR_INVAL, "bad base64 in data"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"QAESNLEzATABMA-_\"}",
       GW_ERR_INVAL, "bad base64 in data"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"reliableDataService\": \"yes\"}",
       GW_ERR_INVAL, "reliableDataService not a boolean"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": [0, 1]}",
       GW_ERR_INVAL, "rdsPort not an object"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": 0}}",
       GW_ERR_INVAL, "rdsPort not {portUE, portSCEF} of ports"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": 0, \"portSCEF\": \"1\"}}",
       GW_ERR_INVAL, "rdsPort not {portUE, portSCEF} of ports"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": -1, \"portSCEF\": 1}}",
       GW_ERR_INVAL, "rdsPort not {portUE, portSCEF} of ports"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": 0, \"portSCEF\": 65536}}",
       GW_ERR_INVAL, "rdsPort not {portUE, portSCEF} of ports"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": 0, \"portSCEF\": 16}}",
       GW_ERR_INVAL, "rdsPort beyond the RDS ports 0..15"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"data\": "
       "\"\", \"rdsPort\": {\"portUE\": 5683, \"portSCEF\": 1}}",
       GW_ERR_INVAL, "rdsPort beyond the RDS ports 0..15"},
      /* Delivery status. */
      {"{\"niddDownlinkDataTransfer\": \"" DL_LINK "\"}", GW_ERR_INVAL,
       "missing deliveryStatus"},
      {"{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"status\": \"ACTIVE\"}", GW_ERR_INVAL,
       "missing deliveryStatus"},
      {"{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"deliveryStatus\": [\"SUCCESS\"]}",
       GW_ERR_INVAL, "deliveryStatus not a string"},
      {"{\"niddDownlinkDataTransfer\": {\"href\": \"" DL_LINK "\"}, \"deliveryStatus\": "
       "\"SUCCESS\"}",
       GW_ERR_INVAL, "niddDownlinkDataTransfer not a link"},
      {"{\"niddDownlinkDataTransfer\": \"" DL_LINK "\", \"deliveryStatus\": \"SUCCESS\", "
       "\"requestedRetransmissionTime\": \"2023-11-15T22:13:20\"}",
       GW_ERR_INVAL, "requestedRetransmissionTime not an RFC 3339 date-time"},
      /* Configuration status. */
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"status\": \"TERMINATED\"}", GW_ERR_INVAL,
       "missing externalId or msisdn"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"status\": "
       "0}",
       GW_ERR_INVAL, "status not a string"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"status\": "
       "\"ACTIVE\", \"rdsCapIndication\": \"true\"}",
       GW_ERR_INVAL, "rdsCapIndication not a boolean"},
      {"{\"niddConfiguration\": \"" CFG_LINK "\", \"externalId\": \"" EXT_ID "\", \"status\": "
       "\"ACTIVE\", \"rdsPort\": {\"portUE\": 1.0, \"portSCEF\": 1}}",
       GW_ERR_INVAL, "rdsPort not {portUE, portSCEF} of ports"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_refused(NOTE, cases[i].rc, cases[i].json, cases[i].reason);
}

/* ---- DateTime ----------------------------------------------------------------------------- */

static void expect_datetime(const char *text, int64_t t) {
  int64_t got = -1;
  if (gw_t8_datetime_parse(text, strlen(text), &got) != GW_OK)
    fail_msg("refused: %s", text);
  if (got != t)
    fail_msg("%s: %lld, expected %lld", text, (long long)got, (long long)t);
}

static void test_datetime(void **state) {
  (void)state;
  char out[GW_T8_DATETIME_SIZE];
  assert_int_equal(gw_t8_datetime_format(0, out), GW_OK);
  assert_string_equal(out, "1970-01-01T00:00:00Z");
  assert_int_equal(gw_t8_datetime_format(NOW, out), GW_OK);
  assert_string_equal(out, "2023-11-14T22:13:20Z");
  assert_int_equal(gw_t8_datetime_format(INT64_C(2147483648), out), GW_OK); /* past 2038 */
  assert_string_equal(out, "2038-01-19T03:14:08Z");
  assert_int_equal(gw_t8_datetime_format(INT64_C(951782400), out), GW_OK);
  assert_string_equal(out, "2000-02-29T00:00:00Z");
  assert_int_equal(gw_t8_datetime_format(INT64_C(253402300799), out), GW_OK);
  assert_string_equal(out, "9999-12-31T23:59:59Z");
  assert_int_equal(gw_t8_datetime_format(INT64_C(253402300800), out), GW_ERR_INVAL);
  assert_int_equal(gw_t8_datetime_format(-1, out), GW_ERR_INVAL);
  assert_string_equal(out, "");

  /* Every day from 1970 to 2100 goes round. */
  for (int64_t t = 0; t < INT64_C(4102444800); t += 86400 + 3661) {
    int64_t back;
    assert_int_equal(gw_t8_datetime_format(t, out), GW_OK);
    assert_int_equal(gw_t8_datetime_parse(out, strlen(out), &back), GW_OK);
    assert_true(back == t);
  }

  expect_datetime("2023-11-15T22:13:20Z", NOW + 86400);
  expect_datetime("2023-11-15t22:13:20z", NOW + 86400);
  expect_datetime("2023-11-15T22:13:20.000000001Z", NOW + 86400);
  expect_datetime("2023-11-15T01:02:03.123456z", INT64_C(1700010123));
  expect_datetime("2024-02-29T12:00:00+03:00", INT64_C(1709197200));
  expect_datetime("2023-11-15T22:13:20-05:30", INT64_C(1700106200));
  expect_datetime("2023-11-15T22:13:20+00:00", NOW + 86400);
  expect_datetime("2023-11-15T22:13:20-00:00", NOW + 86400);
  expect_datetime("2016-12-31T23:59:60Z", INT64_C(1483228800)); /* a leap second */
  expect_datetime("2000-02-29T00:00:00Z", INT64_C(951782400));
  expect_datetime("9999-12-31T23:59:59Z", INT64_C(253402300799));
  expect_datetime("0001-01-01T00:00:00Z", INT64_C(-62135596800));
  expect_datetime("1969-12-31T23:59:59Z", -1);

  static const char *const bad[] = {
      "", "2023-11-15", "2023-11-15T22:13:20", "2023-11-15 22:13:20Z", "2023-11-15T22:13Z",
      "2023-11-15T22:13:20.Z", "2023-11-15T22:13:20ZZ", "2023-11-15T22:13:20+0100",
      "2023-11-15T22:13:20+01", "2023-11-15T22:13:20+24:00", "2023-11-15T22:13:20+01:60",
      "2023-13-15T22:13:20Z", "2023-00-15T22:13:20Z", "2023-11-00T22:13:20Z",
      "2023-11-31T22:13:20Z", "2023-02-29T22:13:20Z", "1900-02-29T00:00:00Z",
      "2023-11-15T24:00:00Z", "2023-11-15T22:60:00Z", "2023-11-15T22:13:61Z",
      "0000-01-01T00:00:00Z", "+2023-11-15T22:13:20Z", "2023-1-15T22:13:20Z",
      "2023-11-15T22:13:2Z", "2023/11/15T22:13:20Z", "2023-11-15T22:13:20 Z",
      "20231115T221320Z", "2023-11-15T22:13:20.12a4Z", "-023-11-15T22:13:20Z",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t t = 7;
    if (gw_t8_datetime_parse(bad[i], strlen(bad[i]), &t) == GW_OK)
      fail_msg("accepted: \"%s\"", bad[i]);
  }
  /* Only len characters count. */
  int64_t t;
  assert_int_equal(gw_t8_datetime_parse("2023-11-15T22:13:20Zjunk", 20, &t), GW_OK);
  assert_true(t == NOW + 86400);
}

/* ---- URLs --------------------------------------------------------------------------------- */

static void test_urls(void **state) {
  (void)state;
  char url[GW_T8_LINK_MAX + 1];
  assert_int_equal(gw_t8_configurations_url("https://scef.example.net", "scs-as-1", url,
                                            sizeof url),
                   GW_OK);
  assert_string_equal(url, "https://scef.example.net/3gpp-nidd/v1/scs-as-1/configurations");
  assert_int_equal(gw_t8_configurations_url("https://api.example.com:8443/t8//", "AS_01", url,
                                            sizeof url),
                   GW_OK);
  assert_string_equal(url, "https://api.example.com:8443/t8/3gpp-nidd/v1/AS_01/configurations");
  assert_int_equal(gw_t8_configuration_url("http://127.0.0.1:8088", "scs-as-1", "cfg-42", false,
                                           url, sizeof url),
                   GW_OK);
  assert_string_equal(url, "http://127.0.0.1:8088/3gpp-nidd/v1/scs-as-1/configurations/cfg-42");
  assert_int_equal(gw_t8_configuration_url("HTTPS://scef.example.net/", "scs-as-1",
                                           "6b3e%2Fx", true, url, sizeof url),
                   GW_OK);
  assert_string_equal(url, "HTTPS://scef.example.net/3gpp-nidd/v1/scs-as-1/configurations/"
                           "6b3e%2Fx/downlink-data-deliveries");

  static const struct {
    const char *root, *scs, *cid;
  } bad[] = {
      {"scef.example.net", "scs", "c"}, {"ftp://scef.example.net", "scs", "c"},
      {"https://", "scs", "c"},        {"https:///t8", "scs", "c"},
      {"https://scef/?a", "scs", "c"}, {"https://scef /", "scs", "c"},
      {"https://scef", "", "c"},       {"https://scef", "a/b", "c"},
      {"https://scef", "..", "c"},     {"https://scef", ".", "c"},
      {"https://scef", "a b", "c"},    {"https://scef", "a?b", "c"},
      {"https://scef", "a%2", "c"},    {"https://scef", "a%zz", "c"},
      {"https://scef", "scs", ""},     {"https://scef", "scs", "c/d"},
      {"https://scef", "scs", NULL},   {NULL, "scs", "c"},
      {"https://scef", NULL, "c"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    strcpy(url, "x");
    if (gw_t8_configuration_url(bad[i].root, bad[i].scs, bad[i].cid, false, url, sizeof url) !=
        GW_ERR_INVAL)
      fail_msg("accepted %zu: %s %s %s", i, bad[i].root ? bad[i].root : "(null)",
               bad[i].scs ? bad[i].scs : "(null)", bad[i].cid ? bad[i].cid : "(null)");
    assert_string_equal(url, "");
  }
  char small[40] = "x";
  assert_int_equal(gw_t8_configurations_url("https://scef.example.net", "scs-as-1", small,
                                            sizeof small),
                   GW_ERR_TOOBIG);
  assert_string_equal(small, "");
}

static void expect_ids(const char *link, const char *cid, const char *did) {
  char c[GW_T8_RESOURCE_ID_MAX + 1], d[GW_T8_RESOURCE_ID_MAX + 1];
  if (gw_t8_link_ids(link, strlen(link), c, d) != GW_OK)
    fail_msg("refused: %s", link);
  assert_string_equal(c, cid);
  assert_string_equal(d, did);
  /* Without room for the delivery's id. */
  assert_int_equal(gw_t8_link_ids(link, strlen(link), c, NULL), GW_OK);
  assert_string_equal(c, cid);
}

static void test_link_ids(void **state) {
  (void)state;
  expect_ids(CFG_LINK, "cfg-42", "");
  expect_ids(CFG_LINK "/", "cfg-42", "");
  expect_ids(DL_LINK, "cfg-42", "365");
  /* The operator SCEF's self: an absolute path. */
  expect_ids("/3gpp-nidd/v1/scs-as-1/configurations/cfg-42/downlink-data-deliveries/365",
             "cfg-42", "365");
  expect_ids("/configurations/a", "a", "");
  expect_ids("http://[2001:db8::1]:8080/configurations/%7Eb", "%7Eb", "");
  /* What the URL helpers write, read back. */
  char url[GW_T8_LINK_MAX + 1];
  assert_int_equal(gw_t8_configuration_url("https://scef.example.net", "scs-as-1", "cfg-42",
                                           true, url, sizeof url),
                   GW_OK);
  strcat(url, "/d-7");
  expect_ids(url, "cfg-42", "d-7");

  static const char *const bad[] = {
      "", "cfg-42", "configurations/cfg-42", "https://scef.example.net",
      "https://scef.example.net/configurations", "https://scef.example.net/configurations/",
      "/configurations//", CFG_LINK "?a=b", CFG_LINK "#f", "/configurations/a b",
      "/configurations/..", CFG_LINK "/downlink-data-deliveries",
      CFG_LINK "/downlink-data-deliveries/", "/x/configurations/a/downlink/1",
      "/configurations/a%zz", CFG_LINK "/downlink-data-deliveries/a%2",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char c[GW_T8_RESOURCE_ID_MAX + 1] = "x", d[GW_T8_RESOURCE_ID_MAX + 1] = "x";
    if (gw_t8_link_ids(bad[i], strlen(bad[i]), c, d) == GW_OK)
      fail_msg("accepted: %s (%s, %s)", bad[i], c, d);
    assert_string_equal(c, "");
    assert_string_equal(d, "");
  }
  /* An id longer than GW_T8_RESOURCE_ID_MAX. */
  char link[300] = "/configurations/";
  memset(link + strlen(link), 'a', GW_T8_RESOURCE_ID_MAX + 1);
  char c[GW_T8_RESOURCE_ID_MAX + 1];
  assert_int_equal(gw_t8_link_ids(link, strlen(link), c, NULL), GW_ERR_INVAL);
  link[strlen(link) - 1] = '\0';
  assert_int_equal(gw_t8_link_ids(link, strlen(link), c, NULL), GW_OK);
  assert_int_equal(strlen(c), GW_T8_RESOURCE_ID_MAX);
  /* Only len characters count. */
  assert_int_equal(gw_t8_link_ids(CFG_LINK "?junk", strlen(CFG_LINK), c, NULL), GW_OK);
  assert_string_equal(c, "cfg-42");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_configuration_request),
      cmocka_unit_test(test_configuration_request_refusals),
      cmocka_unit_test(test_configuration_answer),
      cmocka_unit_test(test_configuration_answer_refusals),
      cmocka_unit_test(test_downlink_request),
      cmocka_unit_test(test_downlink_request_refusals),
      cmocka_unit_test(test_downlink_answers),
      cmocka_unit_test(test_delivery_failure),
      cmocka_unit_test(test_problem),
      cmocka_unit_test(test_problem_details_writer),
      cmocka_unit_test(test_delivery_outcomes),
      cmocka_unit_test(test_uplink_notification),
      cmocka_unit_test(test_delivery_status_notification),
      cmocka_unit_test(test_configuration_status_notification),
      cmocka_unit_test(test_notification_refusals),
      cmocka_unit_test(test_datetime),
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_link_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
