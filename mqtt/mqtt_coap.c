/* lwm2m-gw: LwM2M over MQTT (Transport 1.2.1 section 8) <-> CoAP (Transport 6.4, Core 1.2).
 * See mqtt_coap.h. Stateless, no allocation: built strings go into the caller's scratch. */
#include "mqtt_coap.h"

#include "gw_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(k) MQTT_CBOR_BIT(MQTT_CBOR_KEY_##k)

/* Content-Formats (Core 1.2 table 12.1-1 / IANA CoAP registry). */
enum { CF_TEXT_PLAIN = 0, CF_LINK_FORMAT = 40, CF_SENML_ETCH_CBOR = 322 };

/* Content-Format and Accept are 0..65535 (RFC 7252 12.3); Observe has 24 bits (RFC 7641 3.4). */
#define CF_MAX UINT32_C(0xffff)
#define OBSERVE_MAX UINT32_C(0xffffff)

/* 8.5 results this module answers a device with. */
enum {
  RESULT_BAD_REQUEST = 400,
  RESULT_NOT_FOUND = 404,
  RESULT_INTERNAL_ERROR = 500,
  RESULT_NOT_IMPLEMENTED = 501
};

/* CoAP codes this module answers a server with. */
enum {
  CODE_BAD_REQUEST = GW_COAP_CODE(4, 0),
  CODE_METHOD_NOT_ALLOWED = GW_COAP_CODE(4, 5),
  CODE_UNSUPPORTED_FORMAT = GW_COAP_CODE(4, 15),
  CODE_INTERNAL_ERROR = GW_COAP_CODE(5, 0),
  CODE_NOT_IMPLEMENTED = GW_COAP_CODE(5, 1)
};

/* An LwM2M path has at most 4 levels: /Object/Instance/Resource/Resource-Instance (Core 1.2 7). */
#define LWM2M_PATH_MAX_DEPTH 4

static bool has(const mqtt_cbor_msg_t *msg, uint32_t bits) { return (msg->present & bits) == bits; }

static const char *iface_name(mqtt_cbor_iface_t iface) {
  return iface == MQTT_CBOR_IFACE_BS ? "bs" : "rd";
}

/* ---- topics (8.2) ----------------------------------------------------------------------- */

/* ENDPOINT is UTF8-octets (8.2); it is one topic level, so no '/', and no MQTT wildcard
 * (MQTT 3.1.1 4.7.1) nor control character, which brokers and logs handle badly. */
static bool endpoint_valid(const char *ep, size_t len) {
  if (len == 0 || len > MQTT_EP_MAX)
    return false;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = gw_utf8_next((const uint8_t *)ep + i, len - i, &cp);
    if (n == 0 || cp < 0x20 || cp == 0x7f || cp == '/' || cp == '+' || cp == '#')
      return false;
    i += n;
  }
  return true;
}

/* Length of "[PREFIX/]lwm2m/{bs|rd}/" at the start of topic, and its interface; 0 when the
 * topic does not start so. topic is NUL-terminated, so strncmp stops at its end. */
static size_t match_topic_root(const char *topic, const char *prefix,
                               mqtt_cbor_iface_t *out_iface) {
  size_t pos = strlen(prefix);
  if (pos > 0) {
    if (strncmp(topic, prefix, pos) != 0 || topic[pos] != '/')
      return 0;
    pos++;
  }
  if (strncmp(topic + pos, "lwm2m/", 6) != 0)
    return 0;
  pos += 6;
  static const mqtt_cbor_iface_t ifaces[] = {MQTT_CBOR_IFACE_BS, MQTT_CBOR_IFACE_RD};
  for (size_t i = 0; i < 2; i++) {
    if (strncmp(topic + pos, iface_name(ifaces[i]), 2) == 0 && topic[pos + 2] == '/') {
      *out_iface = ifaces[i];
      return pos + 3;
    }
  }
  return 0;
}

int mqtt_topic_parse(const char *topic, const char *const *prefixes, size_t prefix_count,
                     size_t *out_prefix_index, mqtt_cbor_iface_t *out_iface,
                     const char **out_ep, size_t *out_ep_len) {
  if (!topic || (!prefixes && prefix_count))
    return -1;
  size_t best = prefix_count, best_root = 0, best_prefix_len = 0;
  mqtt_cbor_iface_t best_iface = MQTT_CBOR_IFACE_RD;
  for (size_t i = 0; i < prefix_count; i++) {
    const char *prefix = prefixes[i] ? prefixes[i] : "";
    mqtt_cbor_iface_t iface;
    size_t root = match_topic_root(topic, prefix, &iface);
    size_t prefix_len = strlen(prefix);
    /* The longest matching prefix wins: "a/b" over "" for "a/b/lwm2m/rd/x". */
    if (root && (best == prefix_count || prefix_len > best_prefix_len)) {
      best = i;
      best_root = root;
      best_prefix_len = prefix_len;
      best_iface = iface;
    }
  }
  if (best == prefix_count)
    return -1;
  const char *ep = topic + best_root;
  size_t ep_len = strnlen(ep, MQTT_EP_MAX + 1); /* bounded: longer is invalid anyway */
  if (!endpoint_valid(ep, ep_len))
    return -2;
  if (out_prefix_index)
    *out_prefix_index = best;
  if (out_iface)
    *out_iface = best_iface;
  if (out_ep)
    *out_ep = ep;
  if (out_ep_len)
    *out_ep_len = ep_len;
  return 0;
}

/* "[PREFIX/]lwm2m/{bs|rd}/LAST" (8.2, 8.3); its length, or 0 when it does not fit. */
static size_t topic_format(const char *prefix, mqtt_cbor_iface_t iface, const char *last,
                           char *out, size_t out_size) {
  if (!last || (!out && out_size))
    return 0;
  prefix = prefix ? prefix : "";
  int n = snprintf(out, out_size, "%s%slwm2m/%s/%s", prefix, *prefix ? "/" : "",
                   iface_name(iface), last);
  return n > 0 && (size_t)n < out_size ? (size_t)n : 0;
}

size_t mqtt_topic_build(const char *prefix, mqtt_cbor_iface_t iface, const char *ep,
                        char *out, size_t out_size) {
  return topic_format(prefix, iface, ep, out, out_size);
}

size_t mqtt_topic_filter(const char *prefix, mqtt_cbor_iface_t iface, char *out,
                         size_t out_size) {
  return topic_format(prefix, iface, "#", out, out_size);
}

/* ---- building a CoAP message ------------------------------------------------------------ */

/* Reserves n bytes of the caller's scratch buffer (appending after `used`); NULL when full. */
static uint8_t *scratch_take(mqtt_coap_scratch_t *s, size_t n) {
  if (s->used > sizeof s->buf || n > sizeof s->buf - s->used)
    return NULL;
  uint8_t *p = s->buf + s->used;
  s->used += n;
  return p;
}

/* A message under construction; once something does not fit (option table, scratch, a value
 * out of range) ok stays false and further puts do nothing, so callers check once. */
typedef struct {
  gw_coap_msg_t *msg;
  mqtt_coap_scratch_t *scratch;
  bool ok;
} coap_builder_t;

static coap_builder_t builder_start(gw_coap_msg_t *out, mqtt_coap_scratch_t *scratch,
                                    gw_coap_type_t type, uint8_t code, uint16_t mid,
                                    const uint8_t *token, size_t token_len) {
  gw_coap_msg_init(out, type, code, mid);
  coap_builder_t b = {out, scratch, true};
  if (gw_coap_set_token(out, token, token_len) != 0)
    b.ok = false;
  return b;
}

static void put_option(coap_builder_t *b, uint16_t number, const void *value, size_t len) {
  if (b->ok && gw_coap_add_option(b->msg, number, value, len) != 0)
    b->ok = false;
}

/* A uint option (RFC 7252 3.2: minimal big-endian bytes); values above max do not fit. */
static void put_uint_option(coap_builder_t *b, uint16_t number, uint64_t v, uint32_t max) {
  uint8_t bytes[4];
  size_t len = v <= max ? gw_coap_encode_uint(bytes, (uint32_t)v) : 0;
  uint8_t *kept = b->ok && v <= max ? scratch_take(b->scratch, len) : NULL;
  if (!kept) {
    b->ok = false;
    return;
  }
  memcpy(kept, bytes, len);
  put_option(b, number, kept, len);
}

/* One Uri-Query option "name=value": each option is one argument (RFC 7252 6.5), so the value
 * needs no escaping. */
static void put_query(coap_builder_t *b, const char *name, const uint8_t *value, size_t len) {
  size_t name_len = strlen(name);
  uint8_t *q = b->ok && len <= sizeof b->scratch->buf
                   ? scratch_take(b->scratch, name_len + 1 + len)
                   : NULL;
  if (!q) {
    b->ok = false;
    return;
  }
  memcpy(q, name, name_len);
  q[name_len] = '=';
  if (len)
    memcpy(q + name_len + 1, value, len);
  put_option(b, GW_COAP_OPT_URI_QUERY, q, name_len + 1 + len);
}

static void put_query_uint(coap_builder_t *b, const char *name, uint64_t v) {
  char digits[24];
  int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
  put_query(b, name, (const uint8_t *)digits, (size_t)n);
}

static void put_query_text(coap_builder_t *b, const char *name, const char *text) {
  put_query(b, name, (const uint8_t *)text, strlen(text));
}

/* The query argument of a string key, when the message has it. */
static void put_query_field(coap_builder_t *b, const char *name, const mqtt_cbor_msg_t *msg,
                            unsigned key) {
  if (has(msg, MQTT_CBOR_BIT(key))) {
    const mqtt_cbor_bytes_t *s = mqtt_cbor_string_field(msg, key);
    put_query(b, name, s->ptr, s->len);
  }
}

/* Uri-Path options for "/rd/5a3f" or "rd", one per non-empty segment; borrows path. */
static void put_path(coap_builder_t *b, const char *path) {
  while (*path) {
    size_t n = strcspn(path, "/");
    if (n > 0)
      put_option(b, GW_COAP_OPT_URI_PATH, path, n);
    path += n + (path[n] == '/');
  }
}

static void put_payload(coap_builder_t *b, const mqtt_cbor_bytes_t *payload) {
  b->msg->payload = payload->len ? payload->ptr : NULL;
  b->msg->payload_len = payload->len;
}

/* ct -> Content-Format, payload -> body (Send, Notify, responses). */
static void put_content(coap_builder_t *b, const mqtt_cbor_msg_t *msg) {
  if (has(msg, BIT(CT)))
    put_uint_option(b, GW_COAP_OPT_CONTENT_FORMAT, msg->ct, CF_MAX);
  if (has(msg, BIT(PAYLOAD)))
    put_payload(b, &msg->payload);
}

/* ---- reading a CoAP message ------------------------------------------------------------- */

/* A uint option of at most max_len bytes. A longer value is treated like an unrecognized
 * option (RFC 7252 5.4.3), i.e. as absent. */
static bool get_uint_option(const gw_coap_msg_t *msg, uint16_t number, size_t max_len,
                            uint32_t *out) {
  const gw_coap_option_t *opt = gw_coap_find_option(msg, number);
  if (!opt || opt->length > max_len)
    return false;
  *out = gw_coap_option_uint(opt);
  return true;
}

static bool get_content_format(const gw_coap_msg_t *msg, uint32_t *out) {
  return get_uint_option(msg, GW_COAP_OPT_CONTENT_FORMAT, 2, out);
}

static bool option_is(const gw_coap_msg_t *msg, uint16_t number, uint32_t value) {
  uint32_t v;
  return get_uint_option(msg, number, 2, &v) && v == value;
}

/* ---- uplink (device -> server) ---------------------------------------------------------- */

/* Register / Update query arguments in the order of Transport 6.4.3 table 6.4.3-2. Queue mode
 * travels inside b ("UQ", see mqtt/README.md); pid has no key in table 8.7-1. */
static void put_registration_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg,
                                    bool with_version) {
  if (has(msg, BIT(LIFETIME)))
    put_query_uint(b, "lt", msg->lifetime);
  if (with_version)
    put_query_field(b, "lwm2m", msg, MQTT_CBOR_KEY_VERSION);
  put_query_field(b, "b", msg, MQTT_CBOR_KEY_BINDING);
  put_query_field(b, "sms", msg, MQTT_CBOR_KEY_SMS);
}

/* The registration payload is CoRE link format (8.3.2, Core 6.2.1). */
static void put_links(coap_builder_t *b, const mqtt_cbor_msg_t *msg) {
  if (has(msg, BIT(PAYLOAD))) {
    put_uint_option(b, GW_COAP_OPT_CONTENT_FORMAT, CF_LINK_FORMAT, CF_MAX);
    put_payload(b, &msg->payload);
  }
}

static void register_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg, const char *ep) {
  put_query_text(b, "ep", ep);
  put_registration_params(b, msg, true);
  put_links(b, msg);
}

static void update_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg, const char *ep) {
  put_registration_params(b, msg, false);
  put_links(b, msg);
}

static void no_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg, const char *ep) {}

static void send_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg, const char *ep) {
  put_content(b, msg);
}

/* Transport 6.4.2: POST /bs?ep={Endpoint Client Name}&pct={Preferred Content Format}. */
static void bootstrap_request_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg,
                                     const char *ep) {
  put_query_text(b, "ep", ep);
  if (has(msg, BIT(PCT))) {
    if (msg->pct <= CF_MAX)
      put_query_uint(b, "pct", msg->pct);
    else
      b->ok = false; /* names no Content-Format */
  }
}

/* Transport 6.4.2: GET /bspack?ep=..., Accept: the preferred format. The 8.3.1 payload (Bootstrap-
 * Server Account instances) has no defined encoding for the "acc" query, so it is not sent. */
static void bootstrap_pack_params(coap_builder_t *b, const mqtt_cbor_msg_t *msg,
                                  const char *ep) {
  put_query_text(b, "ep", ep);
  if (has(msg, BIT(PCT)))
    put_uint_option(b, GW_COAP_OPT_ACCEPT, msg->pct, CF_MAX);
}

/* How one uplink operation maps to CoAP (Transport 6.4.2, 6.4.3, 6.4.5). */
typedef struct {
  mqtt_cbor_iface_t iface;
  uint64_t operation;
  uint8_t method;
  const char *path; /* NULL: the registration's location (Update, De-register) */
  bool sends_ep;    /* ep= in the query: the ep key, if any, must equal the topic's */
  void (*put_params)(coap_builder_t *b, const mqtt_cbor_msg_t *msg, const char *ep);
} uplink_route_t;

static const uplink_route_t uplink_routes[] = {
    {MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_REGISTER, GW_COAP_POST, "rd", true, register_params},
    {MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_UPDATE, GW_COAP_POST, NULL, false, update_params},
    {MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_DEREGISTER, GW_COAP_DELETE, NULL, false, no_params},
    {MQTT_CBOR_IFACE_RD, MQTT_CBOR_OP_SEND, GW_COAP_POST, "dp", false, send_params},
    {MQTT_CBOR_IFACE_BS, MQTT_CBOR_OP_BOOTSTRAP_REQUEST, GW_COAP_POST, "bs", true,
     bootstrap_request_params},
    {MQTT_CBOR_IFACE_BS, MQTT_CBOR_OP_BOOTSTRAP_PACK_REQUEST, GW_COAP_GET, "bspack", true,
     bootstrap_pack_params},
};

static const uplink_route_t *find_uplink_route(mqtt_cbor_iface_t iface, uint64_t operation) {
  for (size_t i = 0; i < sizeof uplink_routes / sizeof uplink_routes[0]; i++)
    if (uplink_routes[i].iface == iface && uplink_routes[i].operation == operation)
      return &uplink_routes[i];
  return NULL;
}

static bool bytes_equal_str(const mqtt_cbor_bytes_t *b, const char *s) {
  size_t n = strlen(s);
  return b->len == n && (n == 0 || memcmp(b->ptr, s, n) == 0);
}

int mqtt_coap_uplink_request(const mqtt_cbor_msg_t *msg, mqtt_cbor_iface_t iface,
                             const mqtt_coap_uplink_ctx_t *ctx, uint16_t mid,
                             gw_coap_msg_t *out, mqtt_coap_scratch_t *scratch) {
  if (!msg || !ctx || !out || !scratch)
    return RESULT_INTERNAL_ERROR;
  if (!has(msg, BIT(OPERATION)))
    return RESULT_BAD_REQUEST; /* a response is not a request */
  const uplink_route_t *route = find_uplink_route(iface, msg->operation);
  if (!route)
    return RESULT_NOT_IMPLEMENTED;
  if (!route->path && (!ctx->location || !*ctx->location))
    return RESULT_NOT_FOUND; /* 8.5-2: URI of "Update" / "De-register" is not found */
  if (route->sends_ep) {
    if (!ctx->endpoint)
      return RESULT_INTERNAL_ERROR;
    /* 8.2: the topic's ENDPOINT "has to match the endpoint client name". */
    if (has(msg, BIT(EP)) && !bytes_equal_str(&msg->ep, ctx->endpoint))
      return RESULT_BAD_REQUEST;
  }
  uint8_t token[8];
  size_t token_len = gw_coap_token_from_u64(msg->token, token);
  coap_builder_t b = builder_start(out, scratch, GW_COAP_CON, route->method, mid, token,
                                   token_len);
  put_path(&b, route->path ? route->path : ctx->location);
  route->put_params(&b, msg, ctx->endpoint);
  return b.ok ? 0 : RESULT_BAD_REQUEST;
}

int mqtt_coap_notification(const mqtt_cbor_msg_t *msg, const uint8_t *coap_token,
                           size_t token_len, uint32_t observe_seq, uint16_t mid,
                           gw_coap_msg_t *out, mqtt_coap_scratch_t *scratch) {
  if (!msg || !out || !scratch)
    return RESULT_BAD_REQUEST;
  if (!has(msg, BIT(OPERATION)) || msg->operation != MQTT_CBOR_OP_NOTIFY)
    return RESULT_BAD_REQUEST;
  /* Transport 6.4.5: Notify is an asynchronous 2.05 response carrying Observe (RFC 7641 4.2). */
  coap_builder_t b = builder_start(out, scratch, GW_COAP_CON, GW_COAP_CONTENT, mid, coap_token,
                                   token_len);
  put_uint_option(&b, GW_COAP_OPT_OBSERVE, observe_seq & OBSERVE_MAX, OBSERVE_MAX);
  put_content(&b, msg);
  return b.ok ? 0 : RESULT_BAD_REQUEST;
}

int mqtt_coap_response_to_mqtt(const gw_coap_msg_t *resp, uint64_t token, mqtt_cbor_msg_t *out) {
  if (!resp || !out)
    return MQTT_CBOR_ERR_INVAL;
  memset(out, 0, sizeof *out);
  uint16_t result;
  int err = mqtt_cbor_result_from_coap(resp->code, &result); /* 8.5: unlisted -> 500 */
  out->present = BIT(RESULT) | BIT(TOKEN);
  out->result = result;
  out->token = token;
  uint32_t cf;
  if (get_content_format(resp, &cf)) {
    out->present |= BIT(CT);
    out->ct = cf;
  }
  if (resp->payload_len > 0) {
    out->present |= BIT(PAYLOAD);
    out->payload = (mqtt_cbor_bytes_t){resp->payload, resp->payload_len};
  }
  return err;
}

/* ---- downlink (server -> device): which operation --------------------------------------- */

/* A decimal LwM2M ID, 0..65535 (Core 1.2 7: Object, Instance and Resource IDs are 16-bit). */
static bool lwm2m_id_valid(const gw_coap_option_t *seg) {
  if (seg->length == 0 || seg->length > 5)
    return false;
  uint32_t v = 0;
  for (uint16_t i = 0; i < seg->length; i++) {
    if (seg->value[i] < '0' || seg->value[i] > '9')
      return false;
    v = v * 10 + (uint32_t)(seg->value[i] - '0');
  }
  return v <= 0xffff;
}

/* Number of Uri-Path segments, or -1 when the path is no LwM2M path (non-numeric segment or
 * deeper than /O/I/R/RI): Transport 6.4.4 answers such requests with 4.05. */
static int lwm2m_path_depth(const gw_coap_msg_t *req) {
  int depth = 0;
  for (uint16_t i = 0; i < req->option_count; i++) {
    const gw_coap_option_t *opt = &req->options[i];
    if (opt->number != GW_COAP_OPT_URI_PATH)
      continue;
    if (!lwm2m_id_valid(opt) || ++depth > LWM2M_PATH_MAX_DEPTH)
      return -1;
  }
  return depth;
}

/* RFC 7641 2: Observe 0 registers, 1 deregisters, absent is a plain request. Other values are
 * not defined for requests: 4.00. A value over 3 bytes is an unrecognized option (absent). */
static int observe_op(const gw_coap_msg_t *req, uint64_t register_op, uint64_t plain_op,
                      uint64_t *out_op) {
  uint32_t observe;
  if (!get_uint_option(req, GW_COAP_OPT_OBSERVE, 3, &observe)) {
    *out_op = plain_op;
    return 0;
  }
  if (observe > 1)
    return CODE_BAD_REQUEST;
  *out_op = observe == 0 ? register_op : MQTT_CBOR_OP_CANCEL_OBSERVE;
  return 0;
}

/* Discover is a GET with Accept: application/link-format (Transport 6.4.2, 6.4.4). */
static bool accepts_links(const gw_coap_msg_t *req) {
  return option_is(req, GW_COAP_OPT_ACCEPT, CF_LINK_FORMAT);
}

/* 8.3.3 / 8.3.4: paths is "SenML-ETCH CBOR"; other body formats cannot travel as paths. */
static int composite_op(const gw_coap_msg_t *req, uint64_t *out_op) {
  int err = observe_op(req, MQTT_CBOR_OP_OBSERVE_COMPOSITE, MQTT_CBOR_OP_READ_COMPOSITE, out_op);
  if (err || *out_op == MQTT_CBOR_OP_CANCEL_OBSERVE)
    return err;
  return option_is(req, GW_COAP_OPT_CONTENT_FORMAT, CF_SENML_ETCH_CBOR)
             ? 0
             : CODE_UNSUPPORTED_FORMAT;
}

/* Transport 6.4.4: POST /O is Create, POST /O/I a Partial Update; on /O/I/R a Partial Update
 * (of a Multiple-Instance Resource) has a data Content-Format, an Execute none or text/plain. */
static int post_op(const gw_coap_msg_t *req, int depth, uint64_t *out_op) {
  uint32_t cf;
  switch (depth) {
  case 1: *out_op = MQTT_CBOR_OP_CREATE; return 0;
  case 2: *out_op = MQTT_CBOR_OP_WRITE_PARTIAL; return 0;
  case 3:
    *out_op = get_content_format(req, &cf) && cf != CF_TEXT_PLAIN ? MQTT_CBOR_OP_WRITE_PARTIAL
                                                                   : MQTT_CBOR_OP_EXECUTE;
    return 0;
  default: return CODE_METHOD_NOT_ALLOWED;
  }
}

/* Transport 6.4.4 / 6.4.5 (Device Management and Information Reporting). */
static int rd_op(const gw_coap_msg_t *req, uint64_t *out_op) {
  int depth = lwm2m_path_depth(req);
  if (depth < 0)
    return CODE_METHOD_NOT_ALLOWED;
  bool has_body = req->payload_len > 0 ||
                  gw_coap_find_option(req, GW_COAP_OPT_CONTENT_FORMAT) != NULL;
  switch (req->code) {
  case GW_COAP_GET:
    return observe_op(req, MQTT_CBOR_OP_OBSERVE,
                      accepts_links(req) ? MQTT_CBOR_OP_DISCOVER : MQTT_CBOR_OP_READ, out_op);
  case GW_COAP_FETCH: /* composites address the root; their paths are in the body */
    return depth == 0 ? composite_op(req, out_op) : CODE_METHOD_NOT_ALLOWED;
  case GW_COAP_IPATCH:
    *out_op = MQTT_CBOR_OP_WRITE_COMPOSITE;
    return depth == 0 ? 0 : CODE_METHOD_NOT_ALLOWED;
  case GW_COAP_PUT: /* Write-Attributes is the PUT without a body */
    *out_op = has_body ? MQTT_CBOR_OP_WRITE_REPLACE : MQTT_CBOR_OP_WRITE_ATTRIBUTES;
    return depth > 0 ? 0 : CODE_METHOD_NOT_ALLOWED;
  case GW_COAP_POST:
    return post_op(req, depth, out_op);
  case GW_COAP_DELETE:
    *out_op = MQTT_CBOR_OP_DELETE;
    return depth > 0 ? 0 : CODE_METHOD_NOT_ALLOWED; /* only Bootstrap-Delete may target "/" */
  default:
    return CODE_METHOD_NOT_ALLOWED; /* PATCH and unknown methods */
  }
}

/* Bootstrap-Finish is POST /bs (Transport 6.4.2). */
static bool is_bootstrap_finish_path(const gw_coap_msg_t *req) {
  const gw_coap_option_t *only = NULL;
  for (uint16_t i = 0; i < req->option_count; i++) {
    if (req->options[i].number != GW_COAP_OPT_URI_PATH)
      continue;
    if (only)
      return false;
    only = &req->options[i];
  }
  return only && only->length == 2 && memcmp(only->value, "bs", 2) == 0;
}

/* Transport 6.4.2 table 6.4.2-1. */
static int bs_op(const gw_coap_msg_t *req, uint64_t *out_op) {
  if (req->code == GW_COAP_POST) {
    *out_op = MQTT_CBOR_OP_BOOTSTRAP_FINISH;
    return is_bootstrap_finish_path(req) ? 0 : CODE_METHOD_NOT_ALLOWED;
  }
  if (lwm2m_path_depth(req) < 0)
    return CODE_METHOD_NOT_ALLOWED;
  switch (req->code) {
  case GW_COAP_PUT: *out_op = MQTT_CBOR_OP_BOOTSTRAP_WRITE; return 0;
  case GW_COAP_GET:
    *out_op = accepts_links(req) ? MQTT_CBOR_OP_BOOTSTRAP_DISCOVER : MQTT_CBOR_OP_BOOTSTRAP_READ;
    return 0;
  case GW_COAP_DELETE: *out_op = MQTT_CBOR_OP_BOOTSTRAP_DELETE; return 0;
  default: return CODE_METHOD_NOT_ALLOWED;
  }
}

int mqtt_coap_downlink_op(const gw_coap_msg_t *req, mqtt_cbor_iface_t iface,
                          uint64_t *out_op) {
  if (!req || !out_op)
    return CODE_INTERNAL_ERROR;
  uint64_t op = 0;
  int err = iface == MQTT_CBOR_IFACE_BS ? bs_op(req, &op) : rd_op(req, &op);
  if (!err)
    *out_op = op;
  return err;
}

/* ---- downlink: the MQTT request --------------------------------------------------------- */

/* Uri-Query arguments that become table 8.7-1 keys. */
typedef enum {
  ARG_UINT,  /* pmin, pmax, epmin, epmax, hqmax */
  ARG_FLOAT, /* gt, st */
  ARG_EDGE,  /* 0 / 1 */
  ARG_DEPTH, /* 0..3 */
  ARG_NO_KEY /* an attribute table 8.7-1 cannot carry */
} arg_kind_t;

typedef struct {
  const char *name;
  unsigned key;
  arg_kind_t kind;
} query_arg_t;

/* Core 1.2 5.1.2 <NOTIFICATION> attributes as Transport 6.4.4 writes them. "lt" and "con"
 * (Core 1.2) have no key in table 8.7-1 (mqtt/README.md). */
static const query_arg_t attribute_args[] = {
    {"pmin", MQTT_CBOR_KEY_PMIN, ARG_UINT},   {"pmax", MQTT_CBOR_KEY_PMAX, ARG_UINT},
    {"gt", MQTT_CBOR_KEY_GT, ARG_FLOAT},      {"st", MQTT_CBOR_KEY_ST, ARG_FLOAT},
    {"epmin", MQTT_CBOR_KEY_EPMIN, ARG_UINT}, {"epmax", MQTT_CBOR_KEY_EPMAX, ARG_UINT},
    {"edge", MQTT_CBOR_KEY_EDGE, ARG_EDGE},   {"hqmax", MQTT_CBOR_KEY_HQMAX, ARG_UINT},
    {"lt", 0, ARG_NO_KEY},                    {"con", 0, ARG_NO_KEY},
};
/* Transport 6.4.4 Discover: ?depth={Value}. */
static const query_arg_t discover_args[] = {{"depth", MQTT_CBOR_KEY_DEPTH, ARG_DEPTH}};

typedef enum { BODY_NONE, BODY_CONTENT, BODY_PATHS } body_kind_t;

/* What an MQTT downlink operation carries besides operation and token (8.3 tables). */
typedef struct {
  bool valid;
  bool uri;
  body_kind_t body;
  const query_arg_t *args; /* Uri-Query arguments taken; others are refused */
  size_t arg_count;
  bool attributes; /* Write-Attributes: an argument without value would unset it */
} downlink_shape_t;

#define SHAPE(uri_, body_) {true, uri_, body_, NULL, 0, false}
static const downlink_shape_t downlink_shapes[] = {
    [MQTT_CBOR_OP_BOOTSTRAP_WRITE] = SHAPE(true, BODY_CONTENT),
    [MQTT_CBOR_OP_BOOTSTRAP_READ] = SHAPE(true, BODY_NONE),
    [MQTT_CBOR_OP_BOOTSTRAP_DELETE] = SHAPE(true, BODY_NONE),
    [MQTT_CBOR_OP_BOOTSTRAP_DISCOVER] = SHAPE(true, BODY_NONE),
    [MQTT_CBOR_OP_BOOTSTRAP_FINISH] = SHAPE(false, BODY_NONE),
    [MQTT_CBOR_OP_READ] = SHAPE(true, BODY_NONE),
    [MQTT_CBOR_OP_READ_COMPOSITE] = SHAPE(false, BODY_PATHS),
    [MQTT_CBOR_OP_DISCOVER] = {true, true, BODY_NONE, discover_args, 1, false},
    [MQTT_CBOR_OP_WRITE_REPLACE] = SHAPE(true, BODY_CONTENT),
    [MQTT_CBOR_OP_WRITE_PARTIAL] = SHAPE(true, BODY_CONTENT),
    [MQTT_CBOR_OP_WRITE_ATTRIBUTES] = {true, true, BODY_NONE, attribute_args,
                                       sizeof attribute_args / sizeof attribute_args[0], true},
    [MQTT_CBOR_OP_WRITE_COMPOSITE] = SHAPE(false, BODY_CONTENT),
    [MQTT_CBOR_OP_EXECUTE] = SHAPE(true, BODY_CONTENT),
    [MQTT_CBOR_OP_CREATE] = SHAPE(true, BODY_CONTENT),
    [MQTT_CBOR_OP_DELETE] = SHAPE(true, BODY_NONE),
    /* Observe attributes in the query (Transport 6.4.5) have no place in the 8.3.4 Observe. */
    [MQTT_CBOR_OP_OBSERVE] = SHAPE(true, BODY_NONE),
    [MQTT_CBOR_OP_OBSERVE_COMPOSITE] = SHAPE(false, BODY_PATHS),
    [MQTT_CBOR_OP_CANCEL_OBSERVE] = SHAPE(false, BODY_NONE),
};
#undef SHAPE

static const downlink_shape_t *downlink_shape(uint64_t op) {
  if (op >= sizeof downlink_shapes / sizeof downlink_shapes[0] || !downlink_shapes[op].valid)
    return NULL;
  return &downlink_shapes[op];
}

/* Downlink codes of the two interfaces do not overlap: 1..5 are Bootstrap (8.3.1). */
static mqtt_cbor_iface_t downlink_iface(uint64_t op) {
  return op <= MQTT_CBOR_OP_BOOTSTRAP_FINISH ? MQTT_CBOR_IFACE_BS : MQTT_CBOR_IFACE_RD;
}

/* uri = "/3/0/1" from Uri-Path ("/" when none), built in scratch. */
static int take_uri(const gw_coap_msg_t *req, mqtt_cbor_msg_t *out, mqtt_coap_scratch_t *s) {
  if (lwm2m_path_depth(req) < 0)
    return CODE_METHOD_NOT_ALLOWED; /* only numeric paths: uri is then a valid tstr */
  size_t len = 0;
  for (uint16_t i = 0; i < req->option_count; i++)
    if (req->options[i].number == GW_COAP_OPT_URI_PATH)
      len += 1 + req->options[i].length;
  /* gw_coap_path_str writes "/" for no segments and a terminating NUL (not part of uri). */
  char *uri = (char *)scratch_take(s, (len ? len : 1) + 1);
  if (!uri)
    return CODE_INTERNAL_ERROR;
  gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, uri, (len ? len : 1) + 1);
  out->uri = (mqtt_cbor_bytes_t){(const uint8_t *)uri, len ? len : 1};
  out->present |= BIT(URI);
  return 0;
}

/* A bstr key from the request body; present also when empty if the operation requires it. */
static void take_body(const gw_coap_msg_t *req, mqtt_cbor_msg_t *out, unsigned key) {
  uint32_t bit = MQTT_CBOR_BIT(key);
  uint32_t mandatory = mqtt_cbor_mandatory_keys(downlink_iface(out->operation), out->operation);
  if (req->payload_len == 0 && !(mandatory & bit))
    return;
  /* An empty body still gets a pointer: the codec's encoder copies with memcpy. */
  static const uint8_t empty[1];
  mqtt_cbor_bytes_t *field = key == MQTT_CBOR_KEY_PATHS ? &out->paths : &out->payload;
  *field = (mqtt_cbor_bytes_t){req->payload_len ? req->payload : empty, req->payload_len};
  out->present |= bit;
}

static void take_content(const gw_coap_msg_t *req, mqtt_cbor_msg_t *out) {
  uint32_t cf;
  if (get_content_format(req, &cf)) {
    out->ct = cf;
    out->present |= BIT(CT);
  }
  take_body(req, out, MQTT_CBOR_KEY_PAYLOAD);
}

/* Strict unsigned decimal: digits only, no sign or space, at most max. */
static bool parse_decimal(const uint8_t *s, size_t len, uint64_t max, uint64_t *out) {
  if (len == 0)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    unsigned digit = (unsigned)(s[i] - '0');
    if (digit > max || v > (max - digit) / 10) /* v * 10 + digit > max, without overflow */
      return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

/* A finite decimal number, the whole value consumed. Only [0-9.eE+-] reach strtod, which keeps
 * out spaces, "inf", "nan" and hex floats. */
static bool parse_float(const uint8_t *s, size_t len, double *out) {
  char text[64];
  if (len == 0 || len >= sizeof text)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!strchr("0123456789.eE+-", s[i]) || s[i] == '\0')
      return false;
    text[i] = (char)s[i];
  }
  text[len] = '\0';
  char *end;
  double v = strtod(text, &end);
  if (end != text + len || !isfinite(v))
    return false;
  *out = v;
  return true;
}

/* Stores one argument value under its key; false when the value is malformed. */
static bool store_arg(const query_arg_t *arg, const uint8_t *v, size_t len,
                      mqtt_cbor_msg_t *out) {
  uint64_t u;
  switch (arg->kind) {
  case ARG_FLOAT: {
    mqtt_cbor_float_t *f = arg->key == MQTT_CBOR_KEY_GT ? &out->gt : &out->st;
    f->width = 0; /* the encoder picks the shortest exact width */
    return parse_float(v, len, &f->value);
  }
  case ARG_EDGE:
  case ARG_DEPTH:
    if (!parse_decimal(v, len, arg->kind == ARG_EDGE ? 1 : 3, &u))
      return false;
    *(arg->kind == ARG_EDGE ? &out->edge : &out->depth) = (uint8_t)u;
    return true;
  case ARG_UINT: {
    uint64_t *field = arg->key == MQTT_CBOR_KEY_PMIN    ? &out->pmin
                      : arg->key == MQTT_CBOR_KEY_PMAX  ? &out->pmax
                      : arg->key == MQTT_CBOR_KEY_EPMIN ? &out->epmin
                      : arg->key == MQTT_CBOR_KEY_EPMAX ? &out->epmax
                                                        : &out->hqmax;
    return parse_decimal(v, len, UINT64_MAX, field);
  }
  case ARG_NO_KEY: break;
  }
  return false;
}

static const query_arg_t *find_arg(const downlink_shape_t *shape, const uint8_t *name,
                                   size_t len) {
  for (size_t i = 0; i < shape->arg_count; i++)
    if (strlen(shape->args[i].name) == len && memcmp(shape->args[i].name, name, len) == 0)
      return &shape->args[i];
  return NULL;
}

/* One Uri-Query option "name[=value]" (not NUL-terminated). */
static int take_query_arg(const downlink_shape_t *shape, const gw_coap_option_t *opt,
                          mqtt_cbor_msg_t *out) {
  const uint8_t *eq = opt->length ? memchr(opt->value, '=', opt->length) : NULL;
  size_t name_len = eq ? (size_t)(eq - opt->value) : opt->length;
  const query_arg_t *arg = find_arg(shape, opt->value, name_len);
  if (!arg)
    return CODE_BAD_REQUEST;
  /* Not carried: an attribute without a key, or without value (which unsets it, Core 1.2
   * 5.1.2, and 8.3.3 has no way to say so). */
  if (arg->kind == ARG_NO_KEY || (!eq && shape->attributes))
    return CODE_NOT_IMPLEMENTED;
  if (!eq || has(out, MQTT_CBOR_BIT(arg->key)))
    return CODE_BAD_REQUEST; /* "depth" without value, or given twice */
  const uint8_t *value = eq + 1;
  if (!store_arg(arg, value, opt->length - name_len - 1, out))
    return CODE_BAD_REQUEST;
  out->present |= MQTT_CBOR_BIT(arg->key);
  return 0;
}

static int take_query(const gw_coap_msg_t *req, const downlink_shape_t *shape,
                      mqtt_cbor_msg_t *out) {
  if (!shape->args)
    return 0; /* the operation takes no argument: the query is not forwarded */
  for (uint16_t i = 0; i < req->option_count; i++) {
    if (req->options[i].number != GW_COAP_OPT_URI_QUERY)
      continue;
    int err = take_query_arg(shape, &req->options[i], out);
    if (err)
      return err;
  }
  return 0;
}

int mqtt_coap_downlink_request(const gw_coap_msg_t *req, uint64_t op, uint64_t token,
                               mqtt_cbor_msg_t *out, mqtt_coap_scratch_t *scratch) {
  if (!req || !out || !scratch)
    return CODE_INTERNAL_ERROR;
  memset(out, 0, sizeof *out);
  out->present = BIT(OPERATION) | BIT(TOKEN);
  out->operation = op;
  out->token = token;
  const downlink_shape_t *shape = downlink_shape(op);
  if (!shape)
    return CODE_INTERNAL_ERROR; /* not a code mqtt_coap_downlink_op returns */
  int err = shape->uri ? take_uri(req, out, scratch) : 0;
  if (err)
    return err;
  if (shape->body == BODY_CONTENT)
    take_content(req, out);
  else if (shape->body == BODY_PATHS)
    take_body(req, out, MQTT_CBOR_KEY_PATHS);
  if ((err = take_query(req, shape, out)))
    return err;
  /* Transport 6.4.4: the Content-Format "MUST be specified" where the 8.3 row needs ct. */
  if (mqtt_cbor_validate(out, downlink_iface(op), NULL) != MQTT_CBOR_OK)
    return CODE_BAD_REQUEST;
  return 0;
}

int mqtt_coap_response_from_mqtt(const mqtt_cbor_msg_t *msg, uint16_t mid,
                                 const uint8_t *coap_token, size_t token_len,
                                 const uint32_t *observe_seq, gw_coap_msg_t *out,
                                 mqtt_coap_scratch_t *scratch) {
  if (!msg || !out || !scratch)
    return MQTT_CBOR_ERR_INVAL;
  uint8_t code = CODE_INTERNAL_ERROR;
  int err = has(msg, BIT(RESULT)) ? mqtt_cbor_result_to_coap(msg->result, &code)
                                  : MQTT_CBOR_ERR_RESULT;
  if (err)
    code = CODE_INTERNAL_ERROR; /* 8.5-5: the generic error */
  /* Piggybacked response (RFC 7252 5.2.1): ACK with the request's mid and token. */
  coap_builder_t b = builder_start(out, scratch, GW_COAP_ACK, code, mid, coap_token, token_len);
  if (err)
    return err;
  if (observe_seq && GW_COAP_CODE_CLASS(code) == 2)
    put_uint_option(&b, GW_COAP_OPT_OBSERVE, *observe_seq & OBSERVE_MAX, OBSERVE_MAX);
  put_content(&b, msg);
  if (b.ok)
    return 0;
  /* ct beyond a Content-Format, scratch full or a bad token: a bare 5.00 instead. */
  builder_start(out, scratch, GW_COAP_ACK, CODE_INTERNAL_ERROR, mid, coap_token, token_len);
  return MQTT_CBOR_ERR_VALUE;
}
