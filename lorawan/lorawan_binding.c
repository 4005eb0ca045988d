/* lwm2m-gw: the `lorawan` binding (LwM2M Transport 1.2.1 section 6.8.4 and Appendix C).
 *
 * A LoRaWAN end device is the LwM2M client; its server URI is lorawan://{FPort}. The gateway is
 * the LoRaWAN Application Server of one application of a network server (ChirpStack v4 or The
 * Things Stack v3) and speaks to it over the network server's MQTT integration, through the
 * project's MQTT client (mqtt/mqtt_client.h). Each (DevEUI, FPort) is one device of the core,
 * with the address "DEVEUI/FPORT": a port that names a bootstrap server makes the same end
 * device a device of its own toward that server.
 *
 * Uplinks: the FRMPayload is the CoAP message (6.8.4). A Register is completed here from
 * Table 6.8.4-1 (ep, lt, lwm2m; Q follows from the link policy), with the object list from the
 * configuration or the device's last Register when it left it out, else answered 4.09 so it
 * sends the list. An Empty CON opens the device's RX windows (Appendix C.3.1.1 step 2): nothing
 * to relay. Everything else goes to the core as it came.
 *
 * Downlinks: one frame per CoAP message, with an item id of the gateway's own (ChirpStack's
 * queue-item id, a correlation id with TTS), so the network server's reports of its fate (sent,
 * acknowledged, refused, too large) come back to the core as delivery reports (binding.h) for
 * the message ID it carries. The core's link policy does the rest: one request in flight per
 * device, the server acknowledged at once, Appendix C retransmission from the "sent" report.
 * The largest frame follows the data rate of the device's last uplink (region.h).
 *
 * What must survive a restart lives in the gateway's state: per end device its last data rate
 * and TTS device id ("dev/EUI"), its object list per port ("obj/EUI/PORT"), and each request in
 * flight at the network server by item id ("dl/ID").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "binding.h"
#include "coap_msg.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"
#include "gw_text.h"
#include "mqtt_client.h"
#include "ns_event.h"
#include "profile.h"
#include "region.h"

#define MOD "lorawan"

#define LORA_DEFAULT_LIFETIME "lt=2592000" /* Table 6.8.4-1: 30 days */
#define LORA_DEFAULT_VERSION "lwm2m=1.1"    /* Table 6.8.4-1: omitted when 1.1 */
#define LORA_OBJECTS_MAX 1024
#define LORA_JSON_MAX 1024 /* a downlink command: 255 bytes as base64 and the fields around */
#define LORA_PENDING_PER_DEVICE 4 /* frames at the network server per end device awaiting a report */

#define LORA_METRICS(X)                                                                        \
  X(uplinks, "uplink frames received from the network server")                                 \
  X(downlinks, "downlink frames handed to the network server")                                 \
  X(bad_messages, "network-server messages that could not be read (JSON, base64, fields)")    \
  X(unknown_devices, "uplinks from DevEUIs not listed in devices, dropped")                    \
  X(unlisted_ports, "uplinks on an FPort no bindings.lorawan.ports entry names, dropped")      \
  X(mac_only, "uplinks without application payload (FPort 0, MAC commands), ignored")         \
  X(rx_window_opens, "CoAP Empty CON uplinks opening an RX window (Appendix C), not relayed")  \
  X(registrations_completed, "Registers completed from Table 6.8.4-1 defaults")                \
  X(object_lists_supplied, "Registers without object list completed from configuration or the last one") \
  X(object_lists_missing, "Registers without object list answered 4.09 (Table 6.8.4-1)")      \
  X(sent_reports, "downlinks the network server reported sent (txack, down/sent)")             \
  X(acked_reports, "confirmed downlinks the device acknowledged")                             \
  X(nacked_reports, "confirmed downlinks the device did not acknowledge")                     \
  X(failed_reports, "downlinks the network server refused, dropped or let expire")             \
  X(too_large_reports, "downlinks the network server dropped as too large for the data rate") \
  X(tx_errors, "gateway TX errors the network server reported (it tries again)")              \
  X(publish_failures, "downlinks the MQTT client could not queue")

typedef struct {
#define LORA_METRIC_FIELD(name, help) uint64_t name;
  LORA_METRICS(LORA_METRIC_FIELD)
#undef LORA_METRIC_FIELD
} lora_metrics_t;

/* The object list an end device last registered with on one port (Table 6.8.4-1 fallback). */
typedef struct lora_objects {
  struct lora_objects *next;
  uint8_t fport;
  char text[];
} lora_objects_t;

/* An end device the network server told us about, or that is listed in the configuration. */
typedef struct lora_device {
  struct lora_device *next; /* hash chain */
  uint8_t eui[8];
  int8_t dr;                /* data rate of its last uplink; -1: none heard yet */
  char device_id[GW_NS_DEVICE_ID_MAX + 1]; /* TTS end device ID; "" until known */
  lora_objects_t *objects;
} lora_device_t;

/* A frame at the network server whose fate the core waits for. */
typedef struct lora_pending {
  struct lora_pending *next;
  char item_id[GW_NS_ITEM_ID_MAX + 1];
  uint8_t eui[8];
  uint8_t fport;
  uint16_t mid;
  bool confirmed;
} lora_pending_t;

typedef struct {
  gw_binding_t base; /* first: the core casts */
  gw_binding_env_t env;
  const gw_config_t *config;
  const gw_lorawan_conf_t *conf;
  gw_ns_format_t format;
  gw_region_t region;
  gw_link_policy_t policy;
  mqtt_client_t *client;
  lora_device_t **buckets;
  size_t bucket_count, device_count, max_devices;
  lora_pending_t *pending; /* newest first */
  size_t pending_count, max_pending;
  lora_metrics_t metrics;
} lora_binding_t;

static const gw_binding_ops_t *ops_self(void);

/* ---- end devices ------------------------------------------------------------------------ */

static size_t eui_hash(const lora_binding_t *b, const uint8_t eui[8]) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (int i = 0; i < 8; i++)
    h = (h ^ eui[i]) * 1099511628211ull;
  return (size_t)(h % b->bucket_count);
}

static lora_device_t *device_find(const lora_binding_t *b, const uint8_t eui[8]) {
  for (lora_device_t *d = b->buckets[eui_hash(b, eui)]; d; d = d->next)
    if (memcmp(d->eui, eui, 8) == 0)
      return d;
  return NULL;
}

static const gw_device_conf_t *conf_by_eui(const gw_config_t *config, const uint8_t eui[8]) {
  char text[17];
  gw_eui64_format(eui, true, text);
  for (size_t i = 0; i < config->device_count; i++)
    if (config->devices[i].dev_eui && strcmp(config->devices[i].dev_eui, text) == 0)
      return &config->devices[i];
  return NULL;
}

/* The end device, created when listed or when unknown DevEUIs are accepted; NULL otherwise. */
static lora_device_t *device_get(lora_binding_t *b, const uint8_t eui[8]) {
  lora_device_t *d = device_find(b, eui);
  if (d)
    return d;
  const gw_device_conf_t *conf = conf_by_eui(b->config, eui);
  if ((!conf && !b->conf->accept_unknown) || b->device_count >= b->max_devices)
    return NULL;
  d = calloc(1, sizeof(*d));
  if (!d)
    return NULL;
  memcpy(d->eui, eui, 8);
  d->dr = -1;
  if (conf && conf->lns_device_id)
    snprintf(d->device_id, sizeof(d->device_id), "%s", conf->lns_device_id);
  size_t h = eui_hash(b, eui);
  d->next = b->buckets[h];
  b->buckets[h] = d;
  b->device_count++;
  return d;
}

/* TTS names end devices by an ID of their own: the configured one, the one the network server
 * used last, else the console's default "eui-<deveui>". */
static const char *device_id_of(const lora_device_t *d, char fallback[GW_NS_DEVICE_ID_MAX + 1]) {
  if (d->device_id[0])
    return d->device_id;
  char eui[17];
  gw_eui64_format(d->eui, false, eui);
  snprintf(fallback, GW_NS_DEVICE_ID_MAX + 1, "eui-%s", eui);
  return fallback;
}

/* ---- binding addresses: "DEVEUI/FPORT" (binding.h) ---- */

static void format_addr(const uint8_t eui[8], uint8_t fport, gw_baddr_t *out) {
  char text[17];
  gw_eui64_format(eui, true, text);
  snprintf(out->text, sizeof(out->text), "%s/%u", text, fport);
}

static bool parse_addr(const gw_baddr_t *addr, uint8_t eui[8], uint8_t *fport) {
  const char *slash = strchr(addr->text, '/');
  char hex[17];
  if (!slash || slash - addr->text != 16)
    return false;
  memcpy(hex, addr->text, 16);
  hex[16] = 0;
  char *end;
  unsigned long port = strtoul(slash + 1, &end, 10);
  if (gw_eui64_parse(hex, eui) != GW_OK || *end || port < 1 || port > 255)
    return false;
  *fport = (uint8_t)port;
  return true;
}

static const gw_lorawan_port_conf_t *port_conf(const lora_binding_t *b, uint8_t fport) {
  for (size_t i = 0; i < b->conf->port_count; i++)
    if (b->conf->ports[i].fport == fport)
      return &b->conf->ports[i];
  return NULL;
}

/* ---- what survives a restart (state keys "dev/EUI", "obj/EUI/PORT", "dl/ID") ---- */

static void device_keep(lora_binding_t *b, const lora_device_t *d) {
  char key[32], eui[17];
  uint8_t value[1 + GW_NS_DEVICE_ID_MAX];
  gw_eui64_format(d->eui, true, eui);
  snprintf(key, sizeof(key), "dev/%s", eui);
  value[0] = (uint8_t)d->dr;
  size_t id_len = strlen(d->device_id);
  memcpy(value + 1, d->device_id, id_len);
  b->env.state_put(b->env.core, &b->base, key, value, 1 + id_len, false);
}

static void objects_key(const uint8_t eui[8], uint8_t fport, char key[40]) {
  char text[17];
  gw_eui64_format(eui, true, text);
  snprintf(key, 40, "obj/%s/%u", text, fport);
}

static void pending_keep(lora_binding_t *b, const lora_pending_t *p) {
  char key[8 + GW_NS_ITEM_ID_MAX + 1];
  uint8_t value[12];
  snprintf(key, sizeof(key), "dl/%s", p->item_id);
  memcpy(value, p->eui, 8);
  value[8] = p->fport;
  value[9] = (uint8_t)(p->mid >> 8);
  value[10] = (uint8_t)p->mid;
  value[11] = p->confirmed;
  b->env.state_put(b->env.core, &b->base, key, value, sizeof(value), false);
}

static void pending_unkeep(lora_binding_t *b, const lora_pending_t *p) {
  char key[8 + GW_NS_ITEM_ID_MAX + 1];
  snprintf(key, sizeof(key), "dl/%s", p->item_id);
  b->env.state_del(b->env.core, &b->base, key);
}

/* ---- frames at the network server ---- */

static lora_pending_t **pending_find(lora_binding_t *b, const char *item_id) {
  /* ChirpStack reprints queue-item ids as lower-case UUIDs, whatever case went in. */
  for (lora_pending_t **pp = &b->pending; *pp; pp = &(*pp)->next)
    if (strcasecmp((*pp)->item_id, item_id) == 0)
      return pp;
  return NULL;
}

static void pending_drop(lora_binding_t *b, lora_pending_t **pp) {
  lora_pending_t *p = *pp;
  *pp = p->next;
  pending_unkeep(b, p);
  free(p);
  b->pending_count--;
}

/* The table is bounded: the oldest entry goes (its request is long answered 5.04 by then). */
static void pending_add(lora_binding_t *b, lora_pending_t *p) {
  if (b->pending_count >= b->max_pending) {
    lora_pending_t **pp = &b->pending;
    while ((*pp)->next)
      pp = &(*pp)->next;
    pending_drop(b, pp);
  }
  p->next = b->pending;
  b->pending = p;
  b->pending_count++;
}

static void report(lora_binding_t *b, const lora_pending_t *p, gw_delivery_status_t status,
                   const char *reason, size_t max_size) {
  gw_baddr_t addr;
  format_addr(p->eui, p->fport, &addr);
  gw_delivery_report_t r = {.status = status, .mid = p->mid, .reason = reason,
                            .max_size = max_size};
  if (b->env.on_delivery)
    b->env.on_delivery(b->env.core, &b->base, &addr, &r);
}

/* The network server found the frame too large for the device's data rate, which it knows
 * better than the last uplink told: until the next uplink, the smallest payload of the table is
 * assumed, and the server hears what fits (with the network server's limit, when it said one). */
static void too_large(lora_binding_t *b, const lora_pending_t *p, const gw_ns_event_t *ev) {
  lora_device_t *d = device_find(b, p->eui);
  if (d && d->dr != -1) {
    d->dr = -1;
    device_keep(b, d);
  }
  size_t max = ev->max_payload ? ev->max_payload : gw_region_min_payload(&b->region);
  report(b, p, GW_DELIVERY_TOO_LARGE, ev->reason, max);
}

/* A network-server event about one of our frames: a delivery report for the core. */
static void downlink_event(lora_binding_t *b, const gw_ns_event_t *ev) {
  if (ev->kind == GW_NS_EV_TX_ERROR) {
    b->metrics.tx_errors++;
    GW_NOTICE_LIMITED(MOD, "network server: gateway TX failed (%s); it tries again", ev->reason);
    return;
  }
  lora_pending_t **pp = ev->item_id[0] ? pending_find(b, ev->item_id) : NULL;
  if (!pp) {
    GW_DEBUG(MOD, "report for frame %s: not one in flight", ev->item_id);
    return;
  }
  lora_pending_t *p = *pp;
  switch (ev->kind) {
  case GW_NS_EV_QUEUED:
    report(b, p, GW_DELIVERY_QUEUED, NULL, 0);
    return;
  case GW_NS_EV_SENT:
    b->metrics.sent_reports++;
    report(b, p, GW_DELIVERY_SENT, NULL, 0);
    if (!p->confirmed) /* nothing more will be said about it */
      pending_drop(b, pending_find(b, ev->item_id));
    return;
  case GW_NS_EV_ACKED:
    b->metrics.acked_reports++;
    report(b, p, GW_DELIVERY_ACKED, NULL, 0);
    break;
  case GW_NS_EV_NACKED:
    b->metrics.nacked_reports++;
    if (b->format == GW_NS_TTS)
      return; /* TTS sends a class A downlink again by itself (confirmed-downlinks-behavior) */
    report(b, p, GW_DELIVERY_NACKED, "the device did not acknowledge the downlink", 0);
    break;
  case GW_NS_EV_TOO_LARGE:
    b->metrics.too_large_reports++;
    too_large(b, p, ev);
    break;
  case GW_NS_EV_FAILED:
    b->metrics.failed_reports++;
    report(b, p, GW_DELIVERY_FAILED, ev->reason, 0);
    break;
  default:
    return;
  }
  /* The report may have led the core to send, which may have dropped the oldest entry. */
  if ((pp = pending_find(b, ev->item_id)))
    pending_drop(b, pp);
}

/* ---- uplinks ---- */

/* A Register completed from Table 6.8.4-1: what the device may leave out on LoRaWAN. */
typedef struct {
  gw_coap_msg_t msg;
  char ep[136]; /* "ep=" and an endpoint name of up to 127 bytes */
  uint8_t content_format[2];
  char objects[LORA_OBJECTS_MAX + 1];
  uint8_t out[GW_NS_DATA_MAX + LORA_OBJECTS_MAX + 160]; /* the frame, queries, a list */
} lora_register_t;

static bool is_register(const gw_coap_msg_t *m) {
  if (m->code != GW_COAP_POST)
    return false;
  size_t segments = 0;
  const gw_coap_option_t *first = NULL;
  for (uint16_t i = 0; i < m->option_count; i++) {
    if (m->options[i].number != GW_COAP_OPT_URI_PATH)
      continue;
    if (!first)
      first = &m->options[i];
    segments++;
  }
  return segments == 1 && first->length == 2 && memcmp(first->value, "rd", 2) == 0;
}

/* The object list for a Register without one: the configured list, else the last one the
 * device registered with. Empty when there is neither. */
static void known_objects(const lora_binding_t *b, const lora_device_t *d, uint8_t fport,
                          char out[LORA_OBJECTS_MAX + 1]) {
  out[0] = 0;
  const gw_device_conf_t *conf = conf_by_eui(b->config, d->eui); /* SIGHUP may change it */
  if (conf && conf->objects) {
    snprintf(out, LORA_OBJECTS_MAX + 1, "%s", conf->objects);
    return;
  }
  for (const lora_objects_t *o = d->objects; o; o = o->next)
    if (o->fport == fport)
      snprintf(out, LORA_OBJECTS_MAX + 1, "%s", o->text);
}

static void objects_remember(lora_device_t *d, uint8_t fport, const uint8_t *text, size_t len) {
  lora_objects_t **pp = &d->objects;
  while (*pp && (*pp)->fport != fport)
    pp = &(*pp)->next;
  if (*pp && strlen((*pp)->text) == len && memcmp((*pp)->text, text, len) == 0)
    return;
  lora_objects_t *o = malloc(sizeof(*o) + len + 1);
  if (!o)
    return;
  o->fport = fport;
  memcpy(o->text, text, len);
  o->text[len] = 0;
  o->next = *pp ? (*pp)->next : NULL;
  free(*pp);
  *pp = o;
}

static const char *complete_objects(lora_binding_t *b, lora_device_t *d, uint8_t fport,
                                    lora_register_t *r) {
  if (r->msg.payload_len > 0) {
    if (r->msg.payload_len <= LORA_OBJECTS_MAX) { /* remembered for the next time */
      char key[40];
      objects_key(d->eui, fport, key);
      objects_remember(d, fport, r->msg.payload, r->msg.payload_len);
      b->env.state_put(b->env.core, &b->base, key, r->msg.payload, r->msg.payload_len, false);
    }
    return "";
  }
  known_objects(b, d, fport, r->objects);
  if (!r->objects[0])
    return NULL;
  b->metrics.object_lists_supplied++;
  r->msg.payload = (const uint8_t *)r->objects;
  r->msg.payload_len = strlen(r->objects);
  gw_coap_remove_options(&r->msg, GW_COAP_OPT_CONTENT_FORMAT);
  r->content_format[0] = 40; /* application/link-format */
  gw_coap_add_option(&r->msg, GW_COAP_OPT_CONTENT_FORMAT, r->content_format, 1);
  return "";
}

static int lora_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len);

/* The binding's own answer to a device's request, piggybacked (6.8.4), as a downlink frame. */
static void answer_device(lora_binding_t *b, const gw_baddr_t *to, const gw_coap_msg_t *req,
                          uint8_t code, const char *diagnostic) {
  gw_coap_msg_t m;
  uint8_t out[GW_COAP_MAX_TOKEN + 8 + GW_COAP_DIAGNOSTIC_MAX];
  gw_coap_answer_init(&m, req, code, gw_random_u16(), diagnostic);
  size_t len = gw_coap_serialize(&m, out, sizeof(out));
  if (!len || lora_send(&b->base, to, out, len) != GW_OK)
    GW_WARN_LIMITED(MOD, "%s: the gateway's answer could not be sent", to->text);
}

static void add_query(gw_coap_msg_t *m, const char *query) {
  gw_coap_add_option(m, GW_COAP_OPT_URI_QUERY, (const uint8_t *)query, strlen(query));
}

/* Returns the length of the completed Register in r->out, 0 when it was answered here. */
static size_t complete_register(lora_binding_t *b, lora_device_t *d, uint8_t fport,
                                const gw_baddr_t *from, lora_register_t *r) {
  if (!complete_objects(b, d, fport, r)) {
    b->metrics.object_lists_missing++;
    GW_NOTICE_LIMITED(MOD, "%s: Register without object list and none known: 4.09 (Transport "
                           "table 6.8.4-1)", from->text);
    answer_device(b, from, &r->msg, GW_COAP_CONFLICT,
                  "object list required: none configured or kept");
    return 0;
  }
  bool completed = false;
  if (!gw_reg_has_query(&r->msg, "ep", true)) {
    /* Table 6.8.4-1: the endpoint name defaults to the DevEUI. */
    char eui[17];
    gw_eui64_format(d->eui, true, eui);
    const gw_device_conf_t *conf = conf_by_eui(b->config, d->eui);
    snprintf(r->ep, sizeof(r->ep), "ep=%.*s", (int)sizeof(r->ep) - 4,
             conf && conf->endpoint ? conf->endpoint : eui);
    add_query(&r->msg, r->ep);
    completed = true;
  }
  if (!gw_reg_has_query(&r->msg, "lt", true)) {
    add_query(&r->msg, LORA_DEFAULT_LIFETIME);
    completed = true;
  }
  if (!gw_reg_has_query(&r->msg, "lwm2m", true)) {
    add_query(&r->msg, LORA_DEFAULT_VERSION);
    completed = true;
  }
  b->metrics.registrations_completed += completed;
  return gw_coap_serialize(&r->msg, r->out, sizeof(r->out));
}

/* One uplink's CoAP message to the core, completed when it is a Register. */
static void uplink_to_core(lora_binding_t *b, lora_device_t *d, const gw_ns_event_t *ev,
                           const gw_baddr_t *from) {
  lora_register_t *r = malloc(sizeof(*r));
  if (!r)
    return;
  const uint8_t *data = ev->data;
  size_t len = ev->data_len;
  if (gw_coap_parse(ev->data, ev->data_len, &r->msg) == GW_COAP_PARSE_OK) {
    /* Appendix C.3.1.1 step 2: an Empty CON opens an RX window for what the network server
     * holds for the device. Not relayed, and not answered with the RST a CoAP ping gets
     * elsewhere (RFC 7252 4.3): a class A device receives one frame per uplink, and an RST
     * queued at the network server takes the window of the answer the device is waiting for
     * (scripts/bench-lorawan: at 90 ms upstream RTT, 36% of answers made their window with
     * RSTs, 99-100% without). */
    if (r->msg.code == GW_COAP_EMPTY && r->msg.type == GW_COAP_CON) {
      b->metrics.rx_window_opens++;
      free(r);
      return;
    }
    if (is_register(&r->msg)) {
      len = complete_register(b, d, ev->fport, from, r);
      data = r->out;
    }
  }
  if (len) /* anything unreadable is the core's to count and refuse */
    b->env.on_message(b->env.core, &b->base, from, data, len);
  free(r);
}

static void uplink(lora_binding_t *b, const gw_ns_event_t *ev) {
  b->metrics.uplinks++;
  if (ev->fport == 0 || ev->data_len == 0) {
    b->metrics.mac_only++;
    return;
  }
  char eui[17];
  gw_eui64_format(ev->dev_eui, true, eui);
  if (!port_conf(b, ev->fport)) {
    b->metrics.unlisted_ports++;
    GW_WARN_LIMITED(MOD, "%s: uplink on FPort %u, which no bindings.lorawan.ports entry names; "
                         "dropped", eui, ev->fport);
    return;
  }
  lora_device_t *d = device_get(b, ev->dev_eui);
  if (!d) {
    b->metrics.unknown_devices++;
    GW_WARN_LIMITED(MOD, "%s: uplink from a DevEUI not listed in devices; dropped", eui);
    return;
  }
  bool changed = ev->dr >= 0 && ev->dr != d->dr;
  if (changed)
    d->dr = (int8_t)ev->dr;
  if (b->format == GW_NS_TTS && ev->device_id[0] && strcmp(ev->device_id, d->device_id) != 0) {
    snprintf(d->device_id, sizeof(d->device_id), "%s", ev->device_id);
    changed = true;
  }
  if (changed)
    device_keep(b, d);
  gw_baddr_t from;
  format_addr(d->eui, ev->fport, &from);
  uplink_to_core(b, d, ev, &from);
}

static void on_mqtt_message(void *arg, const char *topic, const uint8_t *payload, size_t len,
                            bool dup) {
  (void)dup; /* a redelivered uplink is a duplicate CoAP message: the core's cache answers it */
  lora_binding_t *b = arg;
  gw_ns_event_t *ev = malloc(sizeof(*ev));
  if (!ev)
    return;
  const char *why = NULL;
  if (gw_ns_parse(b->format, b->conf->application_id, topic, payload, len, ev, &why) != GW_OK) {
    b->metrics.bad_messages++;
    if (b->env.on_rejected) {
      gw_baddr_t where;
      snprintf(where.text, sizeof(where.text), "%s", topic);
      b->env.on_rejected(b->env.core, &b->base, &where, why ? why : "not understood");
    }
  } else if (ev->kind == GW_NS_EV_UPLINK) {
    uplink(b, ev);
  } else if (ev->kind != GW_NS_EV_OTHER) {
    downlink_event(b, ev);
  }
  free(ev);
}

static void on_mqtt_state(void *arg, bool connected) {
  lora_binding_t *b = arg;
  if (connected)
    GW_INFO(MOD, "connected to the network server's broker");
  else
    GW_WARN(MOD, "connection to the network server's broker lost; reconnecting");
  (void)b;
}

/* ---- downlinks ---- */

static int lora_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len) {
  lora_binding_t *b = (lora_binding_t *)binding;
  uint8_t eui[8], fport;
  lora_device_t *d;
  if (len < 4 || !parse_addr(to, eui, &fport) || !(d = device_get(b, eui)))
    return GW_ERR_INVAL;
  bool con = (data[0] >> 4 & 3) == GW_COAP_CON;
  lora_pending_t *p = calloc(1, sizeof(*p));
  if (!p)
    return GW_ERR_NOMEM;
  gw_ns_new_item_id(b->format, p->item_id);
  memcpy(p->eui, eui, 8);
  p->fport = fport;
  p->mid = (uint16_t)(data[2] << 8 | data[3]);
  /* Appendix C.3.1: a request may ride a confirmed frame; answers never need one. */
  p->confirmed = con && b->conf->confirmed_downlinks;
  char topic[GW_NS_TOPIC_MAX], id_fallback[GW_NS_DEVICE_ID_MAX + 1];
  char *json = malloc(LORA_JSON_MAX);
  int rc = json ? gw_ns_downlink(b->format, b->conf->application_id, eui,
                                 device_id_of(d, id_fallback), fport, p->confirmed, p->item_id,
                                 data, len, topic, sizeof(topic), json, LORA_JSON_MAX)
                : GW_ERR_NOMEM;
  if (rc == GW_OK)
    rc = mqtt_client_publish(b->client, topic, (const uint8_t *)json, strlen(json));
  free(json);
  if (rc != GW_OK) {
    b->metrics.publish_failures++;
    free(p);
    return rc;
  }
  b->metrics.downlinks++;
  if (!con) { /* an answer or a NON: the core waits for no report of it */
    free(p);
    return GW_OK;
  }
  pending_add(b, p);
  pending_keep(b, p);
  return GW_OK;
}

/* ---- life cycle ---- */

static bool lora_enabled(const gw_config_t *config) { return config->bindings.lorawan.enabled; }

static int new_client(lora_binding_t *b) {
  const gw_lorawan_conf_t *conf = b->conf;
  mqtt_client_conf_t cc;
  mqtt_client_conf_init(&cc);
  cc.uri = conf->broker;
  cc.client_id = conf->client_id;
  cc.username = conf->username;
  cc.password = conf->password;
  cc.ca_file = conf->ca_file;
  cc.cert_file = conf->cert_file;
  cc.key_file = conf->key_file;
  cc.keepalive_s = (int)conf->keepalive_s;
  cc.qos = (int)conf->qos; /* TTS: 0, the only QoS it supports */
  mqtt_client_callbacks_t cb = {.arg = b, .on_message = on_mqtt_message,
                                .on_state = on_mqtt_state};
  return mqtt_client_new(b->env.loop, &cc, &cb, &b->client);
}

static void lora_free(gw_binding_t **binding);

static size_t largest_payload(const gw_region_t *r) {
  size_t n = 0;
  for (int dr = 0; dr < (int)r->dr_count; dr++)
    if (gw_region_max_payload(r, dr) > n)
      n = gw_region_max_payload(r, dr);
  return n;
}

static int lora_create(const gw_config_t *config, const gw_binding_env_t *env,
                       gw_binding_t **out_binding) {
  lora_binding_t *b = calloc(1, sizeof(*b));
  if (!b)
    return GW_ERR_NOMEM;
  b->base.ops = ops_self();
  b->env = *env;
  b->config = config;
  b->conf = &config->bindings.lorawan;
  b->format = b->conf->network_server == GW_LNS_TTS ? GW_NS_TTS : GW_NS_CHIRPSTACK;
  gw_region_eu868(&b->region);
  unsigned table[GW_REGION_DR_COUNT];
  size_t table_len = b->conf->max_payload_count < GW_REGION_DR_COUNT ? b->conf->max_payload_count
                                                                      : GW_REGION_DR_COUNT;
  for (size_t i = 0; i < table_len; i++)
    table[i] = b->conf->max_payload[i];
  if (table_len && gw_region_set_table(&b->region, table, table_len) != GW_OK)
    GW_WARN(MOD, "bindings.lorawan.max_payload not usable; the EU868 table applies");
  b->max_devices = config->gateway.max_devices;
  b->max_pending = LORA_PENDING_PER_DEVICE * (size_t)config->gateway.max_devices;
  b->bucket_count = 64;
  while (b->bucket_count < b->max_devices && b->bucket_count < (1u << 20))
    b->bucket_count <<= 1;
  b->buckets = calloc(b->bucket_count, sizeof(*b->buckets));
  b->policy = (gw_link_policy_t){
      /* Appendix C.2, from the configuration; confirmed frames: the network server repeats */
      .max_retransmit = b->conf->confirmed_downlinks ? 0 : (uint8_t)b->conf->max_retransmit,
      .ack_timeout_ms = b->conf->ack_timeout_s * 1000u,
      .mtu = largest_payload(&b->region),
      .sleepy = true, /* Table 6.8.4-1: "equivalent to Queue Mode" */
      .accept_unknown = b->conf->accept_unknown,
      /* an uplink's MQTT message is acknowledged once handed to the core (mqtt_client.h), and
         a LoRaWAN device sends it again only at its next opportunity: keep it until answered */
      .accepts_on_receipt = true,
      .binding_letter = 'U', /* the server reaches the device through the gateway over UDP */
      .reports_delivery = true,
      .network_buffers = true, /* the network server holds frames for the next RX window */
      .nstart = 1, /* one request at a time at the network server (Appendix C) */
      .held_max_s = b->conf->downlink_hold_s};
  int rc = b->buckets ? new_client(b) : GW_ERR_NOMEM;
  if (rc != GW_OK) {
    gw_binding_t *base = &b->base;
    lora_free(&base);
    return rc;
  }
  /* Listed end devices are known from the start: their TTS device IDs, their object lists. */
  for (size_t i = 0; i < config->device_count; i++) {
    uint8_t eui[8];
    if (config->devices[i].dev_eui && gw_eui64_parse(config->devices[i].dev_eui, eui) == GW_OK)
      device_get(b, eui);
  }
  *out_binding = &b->base;
  return GW_OK;
}

static int lora_start(gw_binding_t *binding) {
  lora_binding_t *b = (lora_binding_t *)binding;
  char filters[8][GW_NS_TOPIC_MAX];
  size_t n = gw_ns_subscriptions(b->format, b->conf->application_id, filters, 8);
  if (n == 0 || n > 8)
    return GW_ERR_CONFIG;
  for (size_t i = 0; i < n; i++) {
    if (mqtt_client_subscribe(b->client, filters[i]) != GW_OK)
      return GW_ERR_CONFIG;
    GW_INFO(MOD, "serving %s", filters[i]);
  }
  for (size_t i = 0; i < b->conf->port_count; i++) {
    const gw_lorawan_port_conf_t *p = &b->conf->ports[i];
    GW_INFO(MOD, "lorawan://%u -> %s %s", p->fport, p->bootstrap ? "bootstrap server" : "server",
            p->bootstrap ? p->bootstrap : p->upstream ? p->upstream : "default");
  }
  return mqtt_client_start(b->client);
}

static void lora_stop(gw_binding_t *binding) {
  lora_binding_t *b = (lora_binding_t *)binding;
  mqtt_client_free(&b->client);
}

static void lora_free(gw_binding_t **binding) {
  lora_binding_t *b = (lora_binding_t *)*binding;
  if (!b)
    return;
  lora_stop(*binding);
  for (size_t i = 0; b->buckets && i < b->bucket_count; i++) {
    for (lora_device_t *d = b->buckets[i], *next; d; d = next) {
      next = d->next;
      for (lora_objects_t *o = d->objects, *on; o; o = on) {
        on = o->next;
        free(o);
      }
      free(d);
    }
  }
  free(b->buckets);
  for (lora_pending_t *p = b->pending, *next; p; p = next) {
    next = p->next;
    free(p);
  }
  free(b);
  *binding = NULL;
}

static const gw_link_policy_t *lora_policy(const gw_binding_t *binding) {
  return &((const lora_binding_t *)binding)->policy;
}

/* What fits at the data rate of the device's last uplink; before any, the smallest. */
static size_t lora_max_datagram(const gw_binding_t *binding, const gw_baddr_t *to) {
  const lora_binding_t *b = (const lora_binding_t *)binding;
  uint8_t eui[8], fport;
  const lora_device_t *d = parse_addr(to, eui, &fport) ? device_find(b, eui) : NULL;
  return gw_region_max_payload(&b->region, d ? d->dr : -1);
}

static const gw_device_conf_t *lora_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr) {
  (void)binding;
  uint8_t eui[8], fport;
  return parse_addr(addr, eui, &fport) ? conf_by_eui(config, eui) : NULL;
}

/* The port's bootstrap server or upstream (the port is the server URI), else the device
 * entry's upstream (NULL: the core takes the device's, else the default). */
static const char *lora_upstream_name(const gw_binding_t *binding, const gw_baddr_t *addr,
                                      const gw_device_conf_t *conf) {
  const lora_binding_t *b = (const lora_binding_t *)binding;
  uint8_t eui[8], fport;
  const gw_lorawan_port_conf_t *p = parse_addr(addr, eui, &fport) ? port_conf(b, fport) : NULL;
  if (!p)
    return NULL;
  if (p->bootstrap)
    return p->bootstrap;
  return p->upstream ? p->upstream : conf ? conf->upstream : NULL;
}

static void lora_restore(gw_binding_t *binding, const char *key, const void *value, size_t len) {
  lora_binding_t *b = (lora_binding_t *)binding;
  const uint8_t *v = value;
  uint8_t eui[8];
  char hex[17] = {0};
  if (strncmp(key, "dl/", 3) == 0 && len == 12 && strlen(key + 3) <= GW_NS_ITEM_ID_MAX) {
    lora_pending_t *p = calloc(1, sizeof(*p));
    if (!p)
      return;
    snprintf(p->item_id, sizeof(p->item_id), "%s", key + 3);
    memcpy(p->eui, v, 8);
    p->fport = v[8];
    p->mid = (uint16_t)(v[9] << 8 | v[10]);
    p->confirmed = v[11] != 0;
    pending_add(b, p);
    return;
  }
  bool dev_key = strncmp(key, "dev/", 4) == 0, obj_key = strncmp(key, "obj/", 4) == 0;
  lora_device_t *d = NULL;
  if ((dev_key || obj_key) && strlen(key) >= 20) {
    memcpy(hex, key + 4, 16);
    d = gw_eui64_parse(hex, eui) == GW_OK ? device_get(b, eui) : NULL;
  }
  if (d && dev_key && len >= 1 && len <= 1 + GW_NS_DEVICE_ID_MAX) {
    d->dr = (int8_t)v[0];
    memcpy(d->device_id, v + 1, len - 1);
    d->device_id[len - 1] = 0;
    return;
  }
  unsigned long fport = obj_key && key[20] == '/' ? strtoul(key + 21, NULL, 10) : 0;
  if (d && fport >= 1 && fport <= 255 && len > 0 && len <= LORA_OBJECTS_MAX) {
    objects_remember(d, (uint8_t)fport, v, len);
    return;
  }
  GW_NOTICE(MOD, "state %s of the last run dropped: not understood or device no longer listed",
            key);
  b->env.state_del(b->env.core, &b->base, key);
}

static size_t lora_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  const lora_binding_t *b = (const lora_binding_t *)binding;
  size_t used = 0;
#define LORA_METRIC_TEXT(name, help) \
  gw_append_counter(out, out_size, &used, "lorawan", #name, help, b->metrics.name);
  LORA_METRICS(LORA_METRIC_TEXT)
#undef LORA_METRIC_TEXT
  const mqtt_client_status_t *st = mqtt_client_status(b->client);
  gw_appendf(out, out_size, &used, "lwm2m_gw_lorawan_connected %d\n", st->connected);
  gw_appendf(out, out_size, &used, "lwm2m_gw_lorawan_end_devices %zu\n", b->device_count);
  gw_appendf(out, out_size, &used, "lwm2m_gw_lorawan_frames_awaiting_report %zu\n",
             b->pending_count);
  return used;
}

const gw_binding_ops_t gw_lorawan_binding = {
    .name = "lorawan",
    .enabled = lora_enabled,
    .create = lora_create,
    .start = lora_start,
    .send = lora_send,
    .stop = lora_stop,
    .free = lora_free,
    .policy = lora_policy,
    .lookup_device = lora_lookup,
    .upstream_name = lora_upstream_name,
    .restore = lora_restore,
    .max_datagram = lora_max_datagram,
    .format_metrics = lora_format_metrics,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_lorawan_binding; }
