/* libFuzzer target for the T8 NIDD JSON layer (ciot/t8.h): the notifications come from the
 * SCEF, or from whoever reaches the gateway's notification endpoint; the answers from the SCEF.
 *
 * The input is one HTTP body. It goes to the notification parser and, for the answers' code,
 * to the configuration, downlink, delivery-failure and ProblemDetails parsers too. Checks: a
 * refusal has a reason and leaves the output zeroed; what is accepted is in range (links
 * printable, identities well-formed, RDS ports 0..15, a kind's required members there,
 * enumerations known or OTHER); an uplink's data, sent back to the same UE on the same RDS
 * ports as a downlink, comes out of the JSON the layer writes (read back with json-c)
 * unchanged; links that name configurations or deliveries give ids that rebuild into URLs. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_text.h"
#include "t8.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static bool zeroed(const void *p, size_t size) {
  const uint8_t *b = p;
  for (size_t i = 0; i < size; i++)
    if (b[i])
      return false;
  return true;
}

/* A NUL-terminated string within size whose characters are printable ASCII but space. */
static bool printable(const char *s, size_t size) {
  size_t len = strnlen(s, size);
  if (len == size)
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] <= ' ' || s[i] > '~')
      return false;
  return true;
}

/* rc and why of a parse into out: a refusal has a reason and leaves out zeroed, an acceptance
 * has no reason. Returns whether it was accepted. */
static bool accepted(int rc, const char *why, const void *out, size_t size) {
  if (rc == GW_OK) {
    check(why == NULL);
    return true;
  }
  check(rc == GW_ERR_INVAL || rc == GW_ERR_NOMEM || rc == GW_ERR_UNSUPPORTED);
  check(why && *why);
  check(zeroed(out, size));
  return false;
}

static void check_time(bool has, int64_t t) {
  if (!has)
    return;
  char text[GW_T8_DATETIME_SIZE];
  if (gw_t8_datetime_format(t, text) == GW_OK) {
    int64_t back;
    check(gw_t8_datetime_parse(text, strlen(text), &back) == GW_OK && back == t);
  }
}

/* The ids of a link, rebuilt into a URL that gives them back. */
static void check_link(const char *link) {
  char cid[GW_T8_RESOURCE_ID_MAX + 1], did[GW_T8_RESOURCE_ID_MAX + 1];
  if (gw_t8_link_ids(link, strlen(link), cid, did) != GW_OK) {
    check(cid[0] == '\0' && did[0] == '\0');
    return;
  }
  check(cid[0] != '\0');
  char url[GW_T8_LINK_MAX * 2];
  check(gw_t8_configuration_url("https://scef.example.net", "scs-as-1", cid, did[0] != '\0', url,
                                sizeof url) == GW_OK);
  if (did[0]) {
    strcat(url, "/");
    strcat(url, did);
  }
  char cid2[GW_T8_RESOURCE_ID_MAX + 1], did2[GW_T8_RESOURCE_ID_MAX + 1];
  check(gw_t8_link_ids(url, strlen(url), cid2, did2) == GW_OK);
  check(strcmp(cid, cid2) == 0 && strcmp(did, did2) == 0);
}

/* The uplink's data back to its UE as a downlink, read back with json-c. */
static void check_downlink(const gw_t8_notification_t *n) {
  gw_t8_downlink_req_t req = {
      .ue = n->external_id[0] ? (gw_t8_ue_t){GW_T8_EXTERNAL_ID, n->external_id}
                              : (gw_t8_ue_t){GW_T8_MSISDN, n->msisdn},
      .data = n->data,
      .len = n->data_len,
      .reliable_data_service = n->reliable_data_service,
      .has_rds_port = n->has_rds_port,
      .rds_port = n->rds_port,
  };
  static char json[GW_BASE64_LEN(GW_T8_DATA_MAX) + 512];
  check(gw_t8_downlink_request(&req, json, sizeof json) == GW_OK);
  json_object *root = json_tokener_parse(json), *v = NULL;
  check(root && json_object_object_get_ex(root, "data", &v) &&
        json_object_is_type(v, json_type_string));
  static uint8_t back[GW_T8_DATA_MAX];
  size_t len = 0;
  check(gw_base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), back,
                         sizeof back, &len) == GW_OK);
  check(len == n->data_len && memcmp(back, n->data, len) == 0);
  check(json_object_object_get_ex(root, n->external_id[0] ? "externalId" : "msisdn", &v) &&
        strcmp(json_object_get_string(v), n->external_id[0] ? n->external_id : n->msisdn) == 0);
  check(json_object_object_get_ex(root, "rdsPort", &v) == n->has_rds_port);
  json_object_put(root);
}

static void fuzz_notification(const uint8_t *data, size_t size) {
  static gw_t8_notification_t n;
  const char *why = NULL;
  int rc = gw_t8_notification_parse(data, size, &n, &why);
  if (!accepted(rc, why, &n, sizeof n))
    return;
  check(printable(n.link, sizeof n.link) && n.link[0]);
  check(printable(n.external_id, sizeof n.external_id));
  check(strnlen(n.msisdn, sizeof n.msisdn) < sizeof n.msisdn &&
        strspn(n.msisdn, "0123456789") == strlen(n.msisdn));
  check(!n.has_rds_port || (n.rds_port.ue <= GW_T8_RDS_PORT_MAX &&
                            n.rds_port.scef <= GW_T8_RDS_PORT_MAX));
  check(n.data_len <= GW_T8_DATA_MAX);
  check_link(n.link);
  switch (n.kind) {
  case GW_T8_NOTE_UPLINK:
    check(n.external_id[0] || n.msisdn[0]);
    check(!strchr(n.external_id, '@') || strchr(n.external_id, '@') == strrchr(n.external_id, '@'));
    check(n.delivery_status == GW_T8_DS_UNSET && n.nidd_status == GW_T8_NIDD_UNSET);
    check_downlink(&n);
    break;
  case GW_T8_NOTE_DELIVERY_STATUS: {
    check(n.delivery_status > GW_T8_DS_UNSET && n.delivery_status <= GW_T8_DS_OTHER);
    check(n.data_len == 0 && !n.has_rds_port && !n.external_id[0] && !n.msisdn[0]);
    const char *reason = NULL;
    gw_t8_outcome_t outcome = gw_t8_delivery_outcome(n.delivery_status, &reason);
    check(outcome >= GW_T8_DELIVERED && outcome <= GW_T8_FAILED && reason && *reason);
    check(strlen(gw_t8_delivery_status_name(n.delivery_status)) > 0);
    check_time(n.has_retransmission, n.retransmission_time);
    break;
  }
  case GW_T8_NOTE_CONFIG_STATUS:
    check(n.external_id[0] || n.msisdn[0]);
    check(n.nidd_status > GW_T8_NIDD_UNSET && n.nidd_status <= GW_T8_NIDD_OTHER);
    check(n.data_len == 0 && n.delivery_status == GW_T8_DS_UNSET);
    check(strlen(gw_t8_nidd_status_name(n.nidd_status)) > 0);
    break;
  default:
    check(false);
  }
}

/* An answer to a configuration or a downlink: its self link ("" or a link), its status in
 * range, its time. */
static void check_answer(const char *self, size_t self_size, bool status_ok, bool has_time,
                         int64_t t) {
  check(printable(self, self_size) && status_ok);
  if (self[0])
    check_link(self);
  check_time(has_time, t);
}

/* The SCEF's answers. */
static void fuzz_answers(const uint8_t *data, size_t size) {
  const char *why = NULL;
  gw_t8_config_t cfg;
  int rc = gw_t8_configuration_parse(data, size, &cfg, &why);
  if (accepted(rc, why, &cfg, sizeof cfg))
    check_answer(cfg.self, sizeof cfg.self, cfg.status <= GW_T8_NIDD_OTHER, cfg.has_expiry,
                 cfg.expiry);

  gw_t8_downlink_t dl;
  rc = gw_t8_downlink_parse(data, size, &dl, &why);
  if (accepted(rc, why, &dl, sizeof dl))
    check_answer(dl.self, sizeof dl.self, dl.status <= GW_T8_DS_OTHER, dl.has_retransmission,
                 dl.retransmission_time);

  gw_t8_delivery_failure_t f;
  rc = gw_t8_delivery_failure_parse(data, size, &f, &why);
  if (accepted(rc, why, &f, sizeof f)) {
    check(f.problem.status == 0 || (f.problem.status >= 100 && f.problem.status <= 599));
    check_time(f.has_retransmission, f.retransmission_time);
  }

  gw_t8_problem_t p;
  rc = gw_t8_problem_parse(data, size, &p, &why);
  if (!accepted(rc, why, &p, sizeof p))
    return;
  const char *texts[] = {p.title, p.detail, p.cause};
  for (size_t i = 0; i < 3; i++) {
    size_t len = strnlen(texts[i], GW_T8_PROBLEM_TEXT_MAX + 1);
    check(len <= GW_T8_PROBLEM_TEXT_MAX);
    for (size_t j = 0; j < len; j++)
      check((uint8_t)texts[i][j] >= 0x20 && texts[i][j] != 0x7f);
  }
  /* What the notification endpoint writes of it reads back the same. */
  char json[1024];
  size_t n = gw_t8_problem_details(p.status ? p.status : 400, p.title[0] ? p.title : NULL,
                                   p.detail[0] ? p.detail : NULL, json, sizeof json);
  check(n > 0);
  gw_t8_problem_t back;
  check(gw_t8_problem_parse((const uint8_t *)json, n, &back, NULL) == GW_OK);
  check(strcmp(back.title, p.title) == 0 && strcmp(back.detail, p.detail) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_notification(data, size);
  fuzz_answers(data, size);
  return 0;
}
