/* lwm2m-gw: T8 NIDD JSON bodies <-> plain structs (3GPP TS 29.122 clause 5.6). See t8.h; the
 * comments below name the schema a rule comes from. */
#include "t8.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw_error.h"
#include "gw_json.h"
#include "gw_text.h"

/* ---- enumerations ----------------------------------------------------------------------- */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define STR_(x) #x
#define STR(x) STR_(x)

/* One row per value of an enumeration of the schemas: its name there; for DeliveryStatus also
 * what it means for the server's request (t8.h). Row 0 is UNSET and the last one OTHER; their
 * names, in parentheses, are for log lines and never match a member's value. */
typedef struct {
  const char *name;
  gw_t8_outcome_t outcome;
  const char *reason;
} enum_row_t;

static const enum_row_t delivery_statuses[] = {
    [GW_T8_DS_UNSET] = {"(unset)", GW_T8_FAILED, "SCEF: no delivery status"},
    [GW_T8_DS_SUCCESS] = {"SUCCESS", GW_T8_DELIVERED, "SCEF: delivered"},
    [GW_T8_DS_SUCCESS_NEXT_HOP_ACKNOWLEDGED] = {"SUCCESS_NEXT_HOP_ACKNOWLEDGED", GW_T8_DELIVERED,
                                                "SCEF: delivered to the next hop, acknowledged"},
    [GW_T8_DS_SUCCESS_NEXT_HOP_UNACKNOWLEDGED] =
        {"SUCCESS_NEXT_HOP_UNACKNOWLEDGED", GW_T8_DELIVERED,
         "SCEF: delivered to the next hop, not acknowledged"},
    [GW_T8_DS_SUCCESS_ACKNOWLEDGED] = {"SUCCESS_ACKNOWLEDGED", GW_T8_ACKED,
                                       "SCEF: acknowledged by the device (RDS)"},
    [GW_T8_DS_SUCCESS_UNACKNOWLEDGED] = {"SUCCESS_UNACKNOWLEDGED", GW_T8_DELIVERED,
                                         "SCEF: sent, not acknowledged by the device (RDS)"},
    [GW_T8_DS_TRIGGERED] = {"TRIGGERED", GW_T8_BUFFERED,
                            "SCEF: device triggered, message buffered"},
    [GW_T8_DS_BUFFERING] = {"BUFFERING", GW_T8_BUFFERED,
                            "SCEF: no PDN connection, message buffered"},
    [GW_T8_DS_BUFFERING_TEMPORARILY_NOT_REACHABLE] =
        {"BUFFERING_TEMPORARILY_NOT_REACHABLE", GW_T8_BUFFERED,
         "SCEF: device not reachable, message buffered"},
    [GW_T8_DS_SENDING] = {"SENDING", GW_T8_DELIVERED, "SCEF: forwarded, may be stored on the way"},
    [GW_T8_DS_FAILURE] = {"FAILURE", GW_T8_FAILED, "SCEF: delivery failed"},
    [GW_T8_DS_FAILURE_RDS_DISABLED] = {"FAILURE_RDS_DISABLED", GW_T8_FAILED,
                                       "SCEF: delivery failed, RDS disabled"},
    [GW_T8_DS_FAILURE_NEXT_HOP] = {"FAILURE_NEXT_HOP", GW_T8_FAILED,
                                   "SCEF: delivery to the next hop failed"},
    [GW_T8_DS_FAILURE_TIMEOUT] = {"FAILURE_TIMEOUT", GW_T8_FAILED, "SCEF: delivery timed out"},
    [GW_T8_DS_FAILURE_TEMPORARILY_NOT_REACHABLE] =
        {"FAILURE_TEMPORARILY_NOT_REACHABLE", GW_T8_FAILED,
         "SCEF: device not reachable, message not buffered"},
    [GW_T8_DS_OTHER] = {"(other)", GW_T8_FAILED, "SCEF: delivery status unknown to this release"},
};

static const enum_row_t nidd_statuses[] = {
    [GW_T8_NIDD_UNSET] = {.name = "(unset)"},
    [GW_T8_NIDD_ACTIVE] = {.name = "ACTIVE"},
    [GW_T8_NIDD_TERMINATED_UE_NOT_AUTHORIZED] = {.name = "TERMINATED_UE_NOT_AUTHORIZED"},
    [GW_T8_NIDD_TERMINATED] = {.name = "TERMINATED"},
    [GW_T8_NIDD_RDS_PORT_UNKNOWN] = {.name = "RDS_PORT_UNKNOWN"},
    [GW_T8_NIDD_OTHER] = {.name = "(other)"},
};

static const char *const pdn_option_names[] = {
    [GW_T8_PDN_WAIT_FOR_UE] = "WAIT_FOR_UE",
    [GW_T8_PDN_INDICATE_ERROR] = "INDICATE_ERROR",
    [GW_T8_PDN_SEND_TRIGGER] = "SEND_TRIGGER",
};

/* The row of value v; OTHER's for a value out of range. */
static const enum_row_t *enum_row(const enum_row_t *rows, size_t count, int v) {
  return &rows[v >= 0 && (size_t)v < count ? (size_t)v : count - 1];
}

/* The value named s[0..len), or OTHER for a name of a later release (the anyOf's free
 * string). */
static int enum_lookup(const enum_row_t *rows, size_t count, const char *s, size_t len) {
  for (size_t i = 1; i + 1 < count; i++)
    if (strlen(rows[i].name) == len && memcmp(rows[i].name, s, len) == 0)
      return (int)i;
  return (int)count - 1;
}

const char *gw_t8_delivery_status_name(gw_t8_delivery_status_t status) {
  return enum_row(delivery_statuses, COUNT(delivery_statuses), status)->name;
}

const char *gw_t8_nidd_status_name(gw_t8_nidd_status_t status) {
  return enum_row(nidd_statuses, COUNT(nidd_statuses), status)->name;
}

gw_t8_outcome_t gw_t8_delivery_outcome(gw_t8_delivery_status_t status, const char **out_reason) {
  const enum_row_t *r = enum_row(delivery_statuses, COUNT(delivery_statuses), status);
  if (out_reason)
    *out_reason = r->reason;
  return r->outcome;
}

/* ---- text checks ------------------------------------------------------------------------ */

/* Printable ASCII without space: identifiers and links go into device addresses, URLs and log
 * lines. */
static bool printable(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] <= ' ' || s[i] > '~')
      return false;
  return true;
}

/* ExternalId, ExternalGroupId (TS29122_CommonData): "a local identifier followed by "@" and a
 * domain identifier", neither containing "@". */
static bool external_id_ok(const char *s, size_t len) {
  const char *at = memchr(s, '@', len);
  return len <= GW_T8_UE_ID_MAX && printable(s, len) && at && at > s && at < s + len - 1 &&
         !memchr(at + 1, '@', (size_t)(s + len - at - 1));
}

static bool msisdn_ok(const char *s, size_t len) {
  if (len == 0 || len > GW_T8_MSISDN_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static bool link_ok(const char *s, size_t len) {
  return len > 0 && len <= GW_T8_LINK_MAX && printable(s, len);
}

/* An absolute http or https URI with an authority: where the SCEF is, or where it notifies. */
static bool http_uri_ok(const char *s) {
  size_t len = strnlen(s, GW_T8_LINK_MAX + 1), skip;
  if (strncasecmp(s, "http://", 7) == 0)
    skip = 7;
  else if (strncasecmp(s, "https://", 8) == 0)
    skip = 8;
  else
    return false;
  return link_ok(s, len) && len > skip && s[skip] != '/' && !strpbrk(s, "?#");
}

/* One path segment (RFC 3986 3.3 pchar: unreserved, pct-encoded, sub-delims, ":", "@"), not
 * "." or "..": a scsAsId or a resource id, written into a URL as it is. */
static bool segment_ok(const char *s, size_t len) {
  if (len == 0 || len > GW_T8_RESOURCE_ID_MAX || (len == 1 && s[0] == '.') ||
      (len == 2 && s[0] == '.' && s[1] == '.'))
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len || gw_hex_digit(s[i + 1]) < 0 || gw_hex_digit(s[i + 2]) < 0)
        return false;
      i += 2;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("-._~!$&'()*+,;=:@", c))) {
      return false;
    }
  }
  return true;
}

static bool ue_ok(const gw_t8_ue_t *ue) {
  if (!ue->id)
    return false;
  size_t len = strnlen(ue->id, GW_T8_UE_ID_MAX + 1);
  switch (ue->kind) {
  case GW_T8_EXTERNAL_ID:
  case GW_T8_EXTERNAL_GROUP_ID: return external_id_ok(ue->id, len);
  case GW_T8_MSISDN: return msisdn_ok(ue->id, len);
  }
  return false;
}

/* ---- DateTime (RFC 3339 5.6) ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
 * Date Algorithms", days_from_civil): no timegm, no time_t, so no year 2038 on 32-bit. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* Its inverse (civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* 9999-12-31T23:59:59Z */
#define DATETIME_LAST INT64_C(253402300799)

int gw_t8_datetime_format(int64_t t, char out[GW_T8_DATETIME_SIZE]) {
  out[0] = '\0';
  if (t < 0 || t > DATETIME_LAST)
    return GW_ERR_INVAL;
  int64_t y;
  unsigned m, d, sec = (unsigned)(t % 86400);
  civil_from_days(t / 86400, &y, &m, &d);
  snprintf(out, GW_T8_DATETIME_SIZE, "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)y, m, d,
           sec / 3600, sec / 60 % 60, sec % 60);
  return GW_OK;
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int gw_t8_datetime_parse(const char *s, size_t len, int64_t *out) {
  static const unsigned char month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  /* full-date "T" partial-time: 19 characters, then time-secfrac and time-offset. */
  if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return GW_ERR_INVAL;
  int year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
  int hour = digits(s + 11, 2), minute = digits(s + 14, 2), second = digits(s + 17, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month - 1] ||
      hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60)
    return GW_ERR_INVAL;
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap)
    return GW_ERR_INVAL;
  size_t i = 19;
  if (s[i] == '.') {
    size_t start = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == start)
      return GW_ERR_INVAL;
  }
  int64_t offset = 0;
  if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59)
      return GW_ERR_INVAL;
    offset = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
    i += 6;
  }
  if (i != len)
    return GW_ERR_INVAL;
  *out = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hour * 3600 +
         minute * 60 + second - offset;
  return GW_OK;
}

/* ---- writing ---------------------------------------------------------------------------- */

static bool add_string(json_object *o, const char *key, const char *value) {
  return gw_json_add(o, key, json_object_new_string(value));
}

static bool add_ue(json_object *o, const gw_t8_ue_t *ue) {
  static const char *const keys[] = {[GW_T8_EXTERNAL_ID] = "externalId",
                                     [GW_T8_MSISDN] = "msisdn",
                                     [GW_T8_EXTERNAL_GROUP_ID] = "externalGroupId"};
  return add_string(o, keys[ue->kind], ue->id);
}

static json_object *new_rds_port(gw_t8_rds_port_t p) {
  json_object *o = json_object_new_object();
  if (o && gw_json_add(o, "portUE", json_object_new_int(p.ue)) &&
      gw_json_add(o, "portSCEF", json_object_new_int(p.scef)))
    return o;
  json_object_put(o);
  return NULL;
}

static bool rds_port_ok(gw_t8_rds_port_t p) {
  return p.ue <= GW_T8_RDS_PORT_MAX && p.scef <= GW_T8_RDS_PORT_MAX;
}

static bool add_pdn_option(json_object *o, gw_t8_pdn_option_t option) {
  return option == GW_T8_PDN_UNSET ||
         add_string(o, "pdnEstablishmentOption", pdn_option_names[option]);
}

static bool pdn_option_ok(gw_t8_pdn_option_t option) {
  return (size_t)option < COUNT(pdn_option_names);
}

/* Writes root into json and drops it. */
static int finish(json_object *root, bool built, char *json, size_t size) {
  int rc = built ? gw_json_write(root, json, size, NULL) : GW_ERR_NOMEM;
  json_object_put(root);
  if (rc != GW_OK && size)
    json[0] = '\0';
  return rc;
}

int gw_t8_configuration_request(const gw_t8_config_req_t *req, int64_t now, char *json,
                                size_t size) {
  if (size)
    json[0] = '\0';
  char duration[GW_T8_DATETIME_SIZE] = "";
  if (!ue_ok(&req->ue) || !req->notification_destination ||
      !http_uri_ok(req->notification_destination) || req->rds_port_count > GW_T8_RDS_PORTS_MAX ||
      (req->rds_port_count && !req->rds_ports) || !pdn_option_ok(req->pdn_option) ||
      (req->duration_s &&
       (now > DATETIME_LAST ||
        gw_t8_datetime_format(now + (int64_t)req->duration_s, duration) != GW_OK)))
    return GW_ERR_INVAL;
  for (size_t i = 0; i < req->rds_port_count; i++)
    if (!rds_port_ok(req->rds_ports[i]))
      return GW_ERR_INVAL;
  json_object *root = json_object_new_object(), *ports = NULL;
  bool built = root && add_ue(root, &req->ue) &&
               add_string(root, "notificationDestination", req->notification_destination) &&
               (!duration[0] || add_string(root, "duration", duration)) &&
               gw_json_add(root, "reliableDataService",
                           json_object_new_boolean(req->reliable_data_service)) &&
               (!req->rds_port_count ||
                gw_json_add(root, "rdsPorts", ports = json_object_new_array())) &&
               add_pdn_option(root, req->pdn_option);
  for (size_t i = 0; built && i < req->rds_port_count; i++)
    built = gw_json_add(ports, NULL, new_rds_port(req->rds_ports[i]));
  return finish(root, built, json, size);
}

int gw_t8_downlink_request(const gw_t8_downlink_req_t *req, char *json, size_t size) {
  if (size)
    json[0] = '\0';
  if (!ue_ok(&req->ue) || req->len > GW_T8_DATA_MAX || (!req->data && req->len) ||
      (req->has_rds_port && !rds_port_ok(req->rds_port)) || !pdn_option_ok(req->pdn_option))
    return GW_ERR_INVAL;
  char b64[GW_BASE64_LEN(GW_T8_DATA_MAX) + 1];
  if (gw_base64_encode(req->data, req->len, b64, sizeof b64) != GW_OK)
    return GW_ERR_INVAL;
  json_object *root = json_object_new_object();
  bool built =
      root && add_ue(root, &req->ue) && add_string(root, "data", b64) &&
      gw_json_add(root, "reliableDataService",
                  json_object_new_boolean(req->reliable_data_service)) &&
      (!req->has_rds_port || gw_json_add(root, "rdsPort", new_rds_port(req->rds_port))) &&
      (!req->has_maximum_latency ||
       gw_json_add(root, "maximumLatency", json_object_new_int64(req->maximum_latency_s))) &&
      (!req->has_priority || gw_json_add(root, "priority", json_object_new_int(req->priority))) &&
      add_pdn_option(root, req->pdn_option);
  return finish(root, built, json, size);
}

size_t gw_t8_problem_details(int status, const char *title, const char *detail, char *json,
                             size_t size) {
  if (size)
    json[0] = '\0';
  if (status < 100 || status > 599)
    return 0;
  json_object *root = json_object_new_object();
  bool built = root && (!title || add_string(root, "title", title)) &&
               gw_json_add(root, "status", json_object_new_int(status)) &&
               (!detail || add_string(root, "detail", detail));
  size_t len = 0;
  if (built && gw_json_write(root, json, size, &len) != GW_OK)
    len = 0;
  json_object_put(root);
  return len;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Each reader returns GW_OK, or GW_ERR_INVAL with *why set. */

static void copy_text(char *dst, const char *src, size_t len) {
  memcpy(dst, src, len);
  dst[len] = '\0';
}

/* A Link member into out (GW_T8_LINK_MAX + 1 bytes); "" when absent unless required. */
static int read_link(json_object *o, const char *key, char *out, const char *missing,
                     const char *bad, const char **why) {
  const char *s;
  size_t len;
  if (gw_json_get_string(o, key, &s, &len) < 0 || (s && !link_ok(s, len))) {
    *why = bad;
    return GW_ERR_INVAL;
  }
  if (!s && missing) {
    *why = missing;
    return GW_ERR_INVAL;
  }
  if (s)
    copy_text(out, s, len);
  return GW_OK;
}

static int read_datetime(json_object *o, const char *key, bool *out_has, int64_t *out,
                         const char *bad, const char **why) {
  const char *s;
  size_t len;
  if (gw_json_get_string(o, key, &s, &len) < 0 || (s && gw_t8_datetime_parse(s, len, out))) {
    *why = bad;
    return GW_ERR_INVAL;
  }
  *out_has = s != NULL;
  return GW_OK;
}

/* requestedRetransmissionTime: when the SCEF wants a failed downlink tried again. */
static int read_retransmission(json_object *o, bool *out_has, int64_t *out, const char **why) {
  return read_datetime(o, "requestedRetransmissionTime", out_has, out,
                       "requestedRetransmissionTime not an RFC 3339 date-time", why);
}

static int read_bool(json_object *o, const char *key, bool *out_has, bool *out, const char *bad,
                     const char **why) {
  if (gw_json_get_bool(o, key, out) < 0) {
    *why = bad;
    return GW_ERR_INVAL;
  }
  if (out_has)
    *out_has = gw_json_field(o, key) != NULL;
  return GW_OK;
}

/* rdsPort: RdsPort {portUE, portSCEF}, both required; Port is 0..65535, RDS carries 0..15. */
static int read_rds_port(json_object *o, bool *out_has, gw_t8_rds_port_t *out, const char **why) {
  json_object *p;
  uint64_t ue = 0, scef = 0;
  bool has_ue = false, has_scef = false;
  if (gw_json_get_object(o, "rdsPort", &p) < 0) {
    *why = "rdsPort not an object";
    return GW_ERR_INVAL;
  }
  *out_has = p != NULL;
  if (!p)
    return GW_OK;
  if (gw_json_get_uint(p, "portUE", 65535, &ue, &has_ue) < 0 ||
      gw_json_get_uint(p, "portSCEF", 65535, &scef, &has_scef) < 0 || !has_ue || !has_scef) {
    *why = "rdsPort not {portUE, portSCEF} of ports";
    return GW_ERR_INVAL;
  }
  if (ue > GW_T8_RDS_PORT_MAX || scef > GW_T8_RDS_PORT_MAX) {
    *why = "rdsPort beyond the RDS ports 0..15";
    return GW_ERR_INVAL;
  }
  out->ue = (uint8_t)ue;
  out->scef = (uint8_t)scef;
  return GW_OK;
}

/* An enumeration member: its value, UNSET (0) when absent. */
static int read_enum(json_object *o, const char *key, const enum_row_t *rows, size_t count,
                     int *out, const char *bad, const char **why) {
  const char *s;
  size_t len;
  if (gw_json_get_string(o, key, &s, &len) < 0) {
    *why = bad;
    return GW_ERR_INVAL;
  }
  *out = s ? enum_lookup(rows, count, s, len) : 0;
  return GW_OK;
}

/* deliveryStatus; when absent, `status` if it holds a DeliveryStatus name: an operator's SCEF
 * answered a downlink with {"self", "status": "BUFFERING_TEMPORARILY_NOT_REACHABLE", ...}
 * (shared/reference/lorawan-and-t8.md PART 2). */
static int read_delivery_status(json_object *o, gw_t8_delivery_status_t *out, const char **why) {
  int v, status;
  const char *ignored;
  if (read_enum(o, "deliveryStatus", delivery_statuses, COUNT(delivery_statuses), &v,
                "deliveryStatus not a string", why))
    return GW_ERR_INVAL;
  if (v == GW_T8_DS_UNSET &&
      read_enum(o, "status", delivery_statuses, COUNT(delivery_statuses), &status, "",
                &ignored) == GW_OK &&
      status != GW_T8_DS_OTHER)
    v = status;
  *out = v;
  return GW_OK;
}

static int read_nidd_status(json_object *o, gw_t8_nidd_status_t *out, const char **why) {
  int v;
  if (read_enum(o, "status", nidd_statuses, COUNT(nidd_statuses), &v, "status not a string",
                why))
    return GW_ERR_INVAL;
  *out = v;
  return GW_OK;
}

/* externalId and msisdn of a notification (the schemas' oneOf of the two; both are taken). */
static int read_ue(json_object *o, gw_t8_notification_t *out, const char **why) {
  const char *ext, *msisdn;
  size_t ext_len, msisdn_len;
  if (gw_json_get_string(o, "externalId", &ext, &ext_len) < 0 ||
      (ext && !external_id_ok(ext, ext_len))) {
    *why = "externalId not local@domain";
    return GW_ERR_INVAL;
  }
  if (gw_json_get_string(o, "msisdn", &msisdn, &msisdn_len) < 0) {
    *why = "msisdn not 1 to 15 digits";
    return GW_ERR_INVAL;
  }
  if (msisdn && msisdn_len > 0 && msisdn[0] == '+') {
    msisdn++;
    msisdn_len--;
  }
  if (msisdn && !msisdn_ok(msisdn, msisdn_len)) {
    *why = "msisdn not 1 to 15 digits";
    return GW_ERR_INVAL;
  }
  if (!ext && !msisdn) {
    *why = "missing externalId or msisdn";
    return GW_ERR_INVAL;
  }
  if (ext)
    copy_text(out->external_id, ext, ext_len);
  if (msisdn)
    copy_text(out->msisdn, msisdn, msisdn_len);
  return GW_OK;
}

/* A text for the log: cut to GW_T8_PROBLEM_TEXT_MAX bytes on a UTF-8 boundary (json-c checked
 * the UTF-8), control characters replaced by '?'. */
static void copy_log_text(char out[GW_T8_PROBLEM_TEXT_MAX + 1], const char *s, size_t len) {
  size_t n = 0;
  while (n < len) {
    uint32_t cp;
    size_t step = gw_utf8_next((const uint8_t *)s + n, len - n, &cp);
    if (step == 0 || n + step > GW_T8_PROBLEM_TEXT_MAX)
      break;
    for (size_t i = 0; i < step; i++)
      out[n + i] = step == 1 && (cp < 0x20 || cp == 0x7f) ? '?' : s[n + i];
    n += step;
  }
  out[n] = '\0';
}

static int read_problem(json_object *o, gw_t8_problem_t *out, const char **why) {
  static const struct {
    const char *key, *bad;
    size_t offset;
  } texts[] = {
      {"title", "title not a string", offsetof(gw_t8_problem_t, title)},
      {"detail", "detail not a string", offsetof(gw_t8_problem_t, detail)},
      {"cause", "cause not a string", offsetof(gw_t8_problem_t, cause)},
  };
  uint64_t status = 0;
  bool present;
  if (gw_json_get_uint(o, "status", 599, &status, &present) < 0 || (present && status < 100)) {
    *why = "status not an HTTP status code";
    return GW_ERR_INVAL;
  }
  out->status = (int)status;
  for (size_t i = 0; i < COUNT(texts); i++) {
    const char *s;
    size_t len;
    if (gw_json_get_string(o, texts[i].key, &s, &len) < 0) {
      *why = texts[i].bad;
      return GW_ERR_INVAL;
    }
    if (s)
      copy_log_text((char *)out + texts[i].offset, s, len);
  }
  return GW_OK;
}

/* Parses json, runs read on its root, and zeroes *out when anything fails. */
typedef int (*reader_t)(json_object *root, void *out, const char **why);

static int parse_with(const uint8_t *json, size_t len, void *out, size_t out_size,
                      reader_t read, const char **why) {
  static const char *unused;
  if (!why)
    why = &unused;
  *why = NULL;
  memset(out, 0, out_size);
  json_object *root;
  int rc = gw_json_parse_object(json, len, GW_T8_BODY_MAX, &root, why);
  if (rc == GW_OK) {
    rc = read(root, out, why);
    json_object_put(root);
  }
  if (rc != GW_OK)
    memset(out, 0, out_size);
  else
    *why = NULL;
  return rc;
}

/* NiddConfiguration (5.6.2.1.2) as the SCEF answers it. */
static int read_configuration(json_object *root, void *out_ptr, const char **why) {
  gw_t8_config_t *out = out_ptr;
  uint64_t bits = 0;
  bool present;
  if (read_link(root, "self", out->self, NULL, "self not a link", why) ||
      read_nidd_status(root, &out->status, why) ||
      read_datetime(root, "duration", &out->has_expiry, &out->expiry,
                    "duration not an RFC 3339 date-time", why) ||
      read_bool(root, "reliableDataService", &out->has_reliable_data_service,
                &out->reliable_data_service, "reliableDataService not a boolean", why))
    return GW_ERR_INVAL;
  /* maximumPacketSize: integer, minimum 1, unit bit. */
  if (gw_json_get_uint(root, "maximumPacketSize", UINT32_MAX, &bits, &present) < 0 ||
      (present && bits == 0)) {
    *why = "maximumPacketSize not a positive 32-bit integer";
    return GW_ERR_INVAL;
  }
  out->max_packet_bits = (uint32_t)bits;
  return GW_OK;
}

int gw_t8_configuration_parse(const uint8_t *json, size_t len, gw_t8_config_t *out,
                              const char **why) {
  return parse_with(json, len, out, sizeof *out, read_configuration, why);
}

/* NiddDownlinkDataTransfer (5.6.2.1.3) as the SCEF answers it. */
static int read_downlink(json_object *root, void *out_ptr, const char **why) {
  gw_t8_downlink_t *out = out_ptr;
  return read_link(root, "self", out->self, NULL, "self not a link", why) ||
                 read_delivery_status(root, &out->status, why) ||
                 read_retransmission(root, &out->has_retransmission, &out->retransmission_time,
                                     why)
             ? GW_ERR_INVAL
             : GW_OK;
}

int gw_t8_downlink_parse(const uint8_t *json, size_t len, gw_t8_downlink_t *out,
                         const char **why) {
  return parse_with(json, len, out, sizeof *out, read_downlink, why);
}

static int read_problem_root(json_object *root, void *out, const char **why) {
  return read_problem(root, out, why);
}

int gw_t8_problem_parse(const uint8_t *json, size_t len, gw_t8_problem_t *out, const char **why) {
  return parse_with(json, len, out, sizeof *out, read_problem_root, why);
}

/* NiddDownlinkDataDeliveryFailure (5.6.2.2.4): problemDetail required. */
static int read_delivery_failure(json_object *root, void *out_ptr, const char **why) {
  gw_t8_delivery_failure_t *out = out_ptr;
  json_object *problem;
  if (read_retransmission(root, &out->has_retransmission, &out->retransmission_time, why))
    return GW_ERR_INVAL;
  if (gw_json_get_object(root, "problemDetail", &problem) < 0) {
    *why = "problemDetail not an object";
    return GW_ERR_INVAL;
  }
  if (!problem) {
    *why = "missing problemDetail";
    return GW_ERR_INVAL;
  }
  return read_problem(problem, &out->problem, why);
}

int gw_t8_delivery_failure_parse(const uint8_t *json, size_t len, gw_t8_delivery_failure_t *out,
                                 const char **why) {
  return parse_with(json, len, out, sizeof *out, read_delivery_failure, why);
}

/* NiddUplinkDataNotification (5.6.2.1.4): niddConfiguration, data, externalId | msisdn. */
static int read_uplink(json_object *root, gw_t8_notification_t *out, const char **why) {
  const char *b64;
  size_t len;
  out->kind = GW_T8_NOTE_UPLINK;
  if (read_link(root, "niddConfiguration", out->link, "missing niddConfiguration",
                "niddConfiguration not a link", why) ||
      read_ue(root, out, why) ||
      read_bool(root, "reliableDataService", NULL, &out->reliable_data_service,
                "reliableDataService not a boolean", why) ||
      read_rds_port(root, &out->has_rds_port, &out->rds_port, why))
    return GW_ERR_INVAL;
  if (gw_json_get_string(root, "data", &b64, &len) < 0 || !b64) {
    *why = "data not a string";
    return GW_ERR_INVAL;
  }
  int rc = gw_base64_decode(b64, len, out->data, sizeof out->data, &out->data_len);
  if (rc != GW_OK) {
    *why = rc == GW_ERR_TOOBIG ? "data longer than " STR(GW_T8_DATA_MAX) " bytes"
                               : "bad base64 in data";
    return GW_ERR_INVAL;
  }
  return GW_OK;
}

/* NiddDownlinkDataDeliveryStatusNotification (5.6.2.1.5). */
static int read_delivery_note(json_object *root, gw_t8_notification_t *out, const char **why) {
  out->kind = GW_T8_NOTE_DELIVERY_STATUS;
  if (read_link(root, "niddDownlinkDataTransfer", out->link, "missing niddDownlinkDataTransfer",
                "niddDownlinkDataTransfer not a link", why) ||
      read_delivery_status(root, &out->delivery_status, why) ||
      read_retransmission(root, &out->has_retransmission, &out->retransmission_time, why))
    return GW_ERR_INVAL;
  if (out->delivery_status == GW_T8_DS_UNSET) {
    *why = "missing deliveryStatus";
    return GW_ERR_INVAL;
  }
  return GW_OK;
}

/* NiddConfigurationStatusNotification (5.6.2.1.6). */
static int read_config_note(json_object *root, gw_t8_notification_t *out, const char **why) {
  out->kind = GW_T8_NOTE_CONFIG_STATUS;
  if (read_link(root, "niddConfiguration", out->link, "missing niddConfiguration",
                "niddConfiguration not a link", why) ||
      read_ue(root, out, why) || read_nidd_status(root, &out->nidd_status, why) ||
      read_bool(root, "rdsCapIndication", &out->has_rds_cap, &out->rds_cap,
                "rdsCapIndication not a boolean", why) ||
      read_rds_port(root, &out->has_rds_port, &out->rds_port, why))
    return GW_ERR_INVAL;
  return GW_OK;
}

/* The callback's oneOf told apart by required members (see t8.h). */
static int read_notification(json_object *root, void *out_ptr, const char **why) {
  gw_t8_notification_t *out = out_ptr;
  bool config = gw_json_field(root, "niddConfiguration") != NULL;
  bool delivery = gw_json_field(root, "niddDownlinkDataTransfer") != NULL;
  if (config && delivery) {
    *why = "ambiguous: both niddConfiguration and niddDownlinkDataTransfer";
    return GW_ERR_INVAL;
  }
  if (delivery) {
    /* GmdNiddDownlinkDataDeliveryNotification: niddDownlinkDataTransfer, gmdResults. */
    if (!gw_json_field(root, "deliveryStatus") && gw_json_field(root, "gmdResults")) {
      *why = "group delivery notification (not used by the gateway)";
      return GW_ERR_UNSUPPORTED;
    }
    return read_delivery_note(root, out, why);
  }
  if (!config) {
    *why = "not a NIDD notification (no niddConfiguration or niddDownlinkDataTransfer)";
    return GW_ERR_INVAL;
  }
  bool data = gw_json_field(root, "data") != NULL;
  bool status = gw_json_field(root, "status") != NULL;
  if (data && status) {
    *why = "ambiguous: both data and status";
    return GW_ERR_INVAL;
  }
  if (data)
    return read_uplink(root, out, why);
  if (status)
    return read_config_note(root, out, why);
  /* ManagePortNotification: niddConfiguration, externalId | msisdn, managedPorts. */
  if (gw_json_field(root, "managedPorts")) {
    *why = "RDS port management notification (not used by the gateway)";
    return GW_ERR_UNSUPPORTED;
  }
  *why = "niddConfiguration without data or status";
  return GW_ERR_INVAL;
}

int gw_t8_notification_parse(const uint8_t *json, size_t len, gw_t8_notification_t *out,
                             const char **why) {
  return parse_with(json, len, out, sizeof *out, read_notification, why);
}

/* ---- URLs ------------------------------------------------------------------------------- */

/* api_root without its trailing "/" as prefix, then the path. */
static int url(const char *api_root, const char *scs_as_id, const char *configuration_id,
               bool downlink_deliveries, char *out, size_t size) {
  if (size)
    out[0] = '\0';
  if (!api_root || !scs_as_id || !http_uri_ok(api_root) ||
      !segment_ok(scs_as_id, strnlen(scs_as_id, GW_T8_RESOURCE_ID_MAX + 1)) ||
      (configuration_id &&
       !segment_ok(configuration_id, strnlen(configuration_id, GW_T8_RESOURCE_ID_MAX + 1))))
    return GW_ERR_INVAL;
  int root_len = (int)strlen(api_root);
  while (root_len > 0 && api_root[root_len - 1] == '/')
    root_len--;
  int n = snprintf(out, size, "%.*s/3gpp-nidd/v1/%s/configurations%s%s%s", root_len, api_root,
                   scs_as_id, configuration_id ? "/" : "", configuration_id ? configuration_id : "",
                   downlink_deliveries ? "/downlink-data-deliveries" : "");
  if (n < 0 || (size_t)n >= size) {
    if (size)
      out[0] = '\0';
    return GW_ERR_TOOBIG;
  }
  return GW_OK;
}

int gw_t8_configurations_url(const char *api_root, const char *scs_as_id, char *out,
                             size_t size) {
  return url(api_root, scs_as_id, NULL, false, out, size);
}

int gw_t8_configuration_url(const char *api_root, const char *scs_as_id,
                            const char *configuration_id, bool downlink_deliveries, char *out,
                            size_t size) {
  if (!configuration_id) {
    if (size)
      out[0] = '\0';
    return GW_ERR_INVAL;
  }
  return url(api_root, scs_as_id, configuration_id, downlink_deliveries, out, size);
}

static bool segment_is(const char *s, size_t len, const char *name) {
  return strlen(name) == len && memcmp(s, name, len) == 0;
}

int gw_t8_link_ids(const char *link, size_t len, char *configuration_id, char *delivery_id) {
  configuration_id[0] = '\0';
  if (delivery_id)
    delivery_id[0] = '\0';
  if (!link || !link_ok(link, len) || memchr(link, '?', len) || memchr(link, '#', len))
    return GW_ERR_INVAL;
  /* The path: after scheme://authority, or the whole of an absolute path. */
  size_t path = 0, end = len;
  const char *scheme_end = memmem(link, len, "://", 3);
  if (scheme_end && !memchr(link, '/', (size_t)(scheme_end - link))) {
    size_t authority = (size_t)(scheme_end - link) + 3;
    const char *slash = memchr(link + authority, '/', len - authority);
    if (!slash)
      return GW_ERR_INVAL;
    path = (size_t)(slash - link);
  } else if (link[0] != '/') {
    return GW_ERR_INVAL;
  }
  if (end > path + 1 && link[end - 1] == '/')
    end--;
  /* The last four segments, last first: seg[i] is link[start[i], stop[i]). */
  size_t start[4], stop[4], n = 0;
  for (size_t p = end; n < 4 && p > path; n++) {
    size_t s = p;
    while (s > path + 1 && link[s - 1] != '/')
      s--;
    start[n] = s;
    stop[n] = p;
    p = s - 1; /* the "/" before it */
  }
#define SEG(i) (link + start[i]), (stop[i] - start[i])
  size_t cid = 0, did = 0;
  if (n == 4 && segment_is(SEG(3), "configurations") &&
      segment_is(SEG(1), "downlink-data-deliveries")) {
    cid = 2;
    did = 0;
    if (!segment_ok(SEG(did)))
      return GW_ERR_INVAL;
  } else if (n >= 2 && segment_is(SEG(1), "configurations")) {
    cid = 0;
  } else {
    return GW_ERR_INVAL;
  }
  if (!segment_ok(SEG(cid)))
    return GW_ERR_INVAL;
  copy_text(configuration_id, SEG(cid));
  if (cid == 2 && delivery_id)
    copy_text(delivery_id, SEG(did));
#undef SEG
  return GW_OK;
}
