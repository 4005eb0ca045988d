/* lwm2m-gw: the `mqtt` binding (LwM2M Transport 1.2.1 section 8).
 *
 * The gateway plays the LwM2M Server (and Bootstrap-Server) on MQTT: it subscribes to
 * "{PREFIX}/lwm2m/rd/#" (and ".../bs/#" where a bootstrap upstream is configured) and publishes
 * to "{PREFIX}/lwm2m/{rd|bs}/{ENDPOINT}" (8.3). A device is its topic; the bs topic of an
 * endpoint is a device of its own, relayed to the prefix's bootstrap upstream.
 *
 * Each CBOR operation becomes one CoAP message for the core (mqtt_coap.c) and back:
 *  - device requests (Register, Update, De-register, Send, Bootstrap-Request...) become CON
 *    requests whose CoAP token is the MQTT token, so the core's answer carries it back; the
 *    Location of the Register is kept here for Update and De-register (8.3.2);
 *  - server requests get a fresh MQTT token; the device's result becomes a piggybacked answer
 *    (the core turns a late one into a separate response);
 *  - Observe / Notify / Cancel-Observe: an observation maps the server's CoAP token to the MQTT
 *    token of the Observe; Notify becomes a CON notification whose ACK is answered with 205.
 * With MQTT 3.1.1 the gateway receives its own publishes on the shared topic (8.3): they are
 * told apart by direction (server-to-client operations) and token (results nobody waits for).
 * MQTT 5 subscribes with no-local instead.
 *
 * Link policy: QoS 1 already delivers at least once, so the core sends no CoAP retransmissions
 * toward MQTT devices; duplicates from QoS redelivery keep their message ID here (same token)
 * and are answered from the core's cache. A publish is acknowledged to the broker once handed
 * to the core (mqtt_client.h), so the link accepts on receipt: the core keeps each request in
 * its state until the server answered it.
 *
 * Broker restarts: the client's session is persistent (mqtt_client.h), so what devices publish
 * while the gateway is away waits at the broker. Nothing here is cleared on a disconnect: server
 * requests waiting for a device's result and device requests waiting for the server's answer
 * complete when the answer comes after the reconnect. Redeliveries (DUP) are told apart by token
 * (requests, results) and, for a Notify, which has no token of its own, by its payload.
 *
 * Gateway restarts (a SIGKILL included): what the binding needs to go on is in the gateway's
 * state (see "what survives a restart" below) and comes back through mqtt_restore() before the
 * client connects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "dedup.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"
#include "gw_text.h"
#include "mqtt_client.h"
#include "mqtt_coap.h"

#define MOD "mqtt"

#define MQTT_MTU 65000           /* a CoAP message in one MQTT publish; the core's buffer bound */
#define MQTT_UPLINK_SLOTS 16      /* recent device requests per topic (dedup, answers) */
#define MQTT_DOWNLINK_SLOTS 16    /* server requests waiting for the device's result */
#define MQTT_OBSERVATION_SLOTS 16 /* observations per device */
/* Device requests relayed and not answered yet, per topic: well inside the ring of recent
 * requests (MQTT_UPLINK_SLOTS) that matches the core's answers to MQTT tokens, so none is
 * overwritten while its answer is due. More wait here (MQTT_HELD_MAX), in order. */
#define MQTT_REQUESTS_IN_FLIGHT 4
#define MQTT_HELD_MAX 32
#define MQTT_PUBLISH_MAX 66000

#define MQTT_METRICS(X)                                                                        \
  X(messages_in, "MQTT messages received on LwM2M topics")                                     \
  X(messages_out, "MQTT messages published to devices")                                        \
  X(bad_topics, "messages on topics without a valid endpoint name (Transport 8.2)")            \
  X(malformed, "messages that were no valid LwM2M CBOR (answered 400 when a token was readable)") \
  X(unknown_operations, "operations answered 501 (not defined for the interface)")             \
  X(refused, "device operations answered with an error by the gateway (400, 404, 503)")        \
  X(echoes, "own publishes received back on the shared topic (MQTT 3.1.1), ignored")           \
  X(unmatched_results, "results whose token matched no request in flight, ignored")            \
  X(unknown_notifications, "Notify for no known observation, answered with Cancel-Observe")    \
  X(server_refused, "server requests the binding answered itself (not translatable)")          \
  X(publish_failures, "publishes the MQTT client could not queue")                             \
  X(redelivered_notifications, "Notify redelivered by the broker (DUP), not relayed again")    \
  X(held_requests, "device requests that waited for the answer to an earlier one (a burst)")   \
  X(publishes_restored, "answers and server requests of the last run published again at start")

typedef struct {
#define MQTT_METRIC_FIELD(name, help) uint64_t name;
  MQTT_METRICS(MQTT_METRIC_FIELD)
#undef MQTT_METRIC_FIELD
} mqtt_metrics_t;

typedef struct {
  char *prefix, *upstream, *bootstrap;
} mqtt_tenant_t;

/* A device request or Notify relayed as CoAP (mid), kept after its answer for deduplication.
 * For a Notify, token is the observation's. */
typedef struct {
  bool used;
  bool answered; /* the answer was published (or the request refused by the binding) */
  uint64_t token;
  uint64_t op;
  uint16_t mid;
  uint64_t since_ms;
} mqtt_uplink_t;

/* A device request that came while MQTT_REQUESTS_IN_FLIGHT of its topic were unanswered: the
 * MQTT payload as it came, decoded again when its turn comes. */
typedef struct mqtt_held {
  struct mqtt_held *next;
  uint64_t seq; /* its place among the held requests of the binding, in its key in the state */
  bool dup;
  size_t len;
  uint8_t cbor[];
} mqtt_held_t;

/* A server request published with a fresh MQTT token, until the device's result. */
typedef struct {
  bool used;
  uint64_t token;
  uint64_t op;
  uint16_t mid;
  uint8_t coap_token[GW_COAP_MAX_TOKEN];
  uint8_t coap_token_len;
  uint64_t publish_tag; /* its kept publish (publish_keep()), forgotten once the device answers */
} mqtt_downlink_t;

/* Transport 8.3.4: the MQTT token of the Observe names the observation in Notify and
 * Cancel-Observe; the server knows it by its CoAP token. */
typedef struct {
  bool used;
  bool established; /* the device answered the Observe with success */
  uint64_t token;
  uint8_t coap_token[GW_COAP_MAX_TOKEN];
  uint8_t coap_token_len;
  uint32_t seq; /* Observe option value of the last notification (RFC 7641 3.4) */
  uint64_t last_notify; /* digest of the last Notify relayed (ct, payload); 0: none yet */
} mqtt_observation_t;

/* A kept publish the broker acknowledged (on_mqtt_published). */
typedef struct {
  uint64_t tag;
  gw_baddr_t topic;
} mqtt_acknowledged_t;

typedef struct mqtt_endpoint {
  struct mqtt_endpoint *next; /* hash chain */
  gw_baddr_t topic;           /* the device's binding address */
  size_t tenant;
  mqtt_cbor_iface_t iface;
  char ep[MQTT_EP_MAX + 1];
  char location[128]; /* "/rd/5a3f" from the Register's 2.01; "" when not registered */
  uint16_t next_mid;
  uint16_t mid_end; /* end of the block of message IDs saved in the state (take_mid()) */
  size_t uplink_next; /* ring position */
  mqtt_uplink_t uplink[MQTT_UPLINK_SLOTS];
  size_t downlink_next;
  mqtt_downlink_t downlink[MQTT_DOWNLINK_SLOTS];
  mqtt_observation_t obs[MQTT_OBSERVATION_SLOTS];
  mqtt_held_t *held_head, *held_tail; /* oldest first */
  size_t held_count;
  struct mqtt_endpoint *next_holding; /* in mqtt_binding_t.holding */
  bool in_holding;
} mqtt_endpoint_t;

typedef struct {
  gw_binding_t base;
  gw_binding_env_t env;
  const gw_config_t *config;
  mqtt_client_t *client;
  mqtt_tenant_t *tenants;
  size_t tenant_count;
  const char **prefixes; /* tenants[i].prefix, for mqtt_topic_parse */
  mqtt_endpoint_t **buckets;
  size_t bucket_count, endpoint_count, max_endpoints;
  mqtt_endpoint_t *holding; /* endpoints with held requests */
  gw_timer_t release_timer; /* hands held requests to the core, outside the core's calls */
  uint64_t next_token;
  uint64_t next_held_seq;
  bool keeps_publishes;       /* QoS > 0: the broker acknowledges what it has */
  uint64_t next_publish_tag;  /* of the next kept publish, from 1 */
  mqtt_acknowledged_t *acknowledged; /* kept publishes the broker has, to forget */
  size_t acknowledged_count, acknowledged_cap;
  gw_timer_t forget_timer;
  gw_link_policy_t policy;
  mqtt_metrics_t metrics;
  gw_local_answers_t local;
  uint8_t coap_buf[GW_COAP_MAX_TOKEN + MQTT_PUBLISH_MAX];
  uint8_t publish_buf[MQTT_PUBLISH_MAX];
} mqtt_binding_t;

static const gw_binding_ops_t *ops_self(void);

/* ------------------------------------------------------------------------------------------ */
/* endpoints                                                                                   */


static mqtt_endpoint_t *endpoint_find(const mqtt_binding_t *b, const char *topic) {
  for (mqtt_endpoint_t *e = b->buckets[gw_hash_str(topic) & (b->bucket_count - 1)]; e;
       e = e->next)
    if (strcmp(e->topic.text, topic) == 0)
      return e;
  return NULL;
}

static mqtt_endpoint_t *endpoint_add(mqtt_binding_t *b, const char *topic, size_t tenant,
                                     mqtt_cbor_iface_t iface, const char *ep, size_t ep_len) {
  if (b->endpoint_count >= b->max_endpoints || strlen(topic) >= GW_BADDR_MAX)
    return NULL;
  mqtt_endpoint_t *e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  snprintf(e->topic.text, sizeof(e->topic.text), "%s", topic);
  e->tenant = tenant;
  e->iface = iface;
  memcpy(e->ep, ep, ep_len);
  e->next_mid = e->mid_end = gw_random_u16();
  size_t i = gw_hash_str(topic) & (b->bucket_count - 1);
  e->next = b->buckets[i];
  b->buckets[i] = e;
  b->endpoint_count++;
  return e;
}

static uint64_t fresh_token(mqtt_binding_t *b) { return b->next_token++; }

/* ------------------------------------------------------------------------------------------ */
/* what survives a restart (binding.h state_put / restore)                                     */

/* Kept in the gateway's state under keys "KIND:SLOT:TOPIC" (mqtt/README.md, "State that
 * survives a restart"):
 *  ep::TOPIC         the Location of the registration and the end of the block of message IDs;
 *  up:SS:TOPIC       uplink ring slot SS: a device request's MQTT token and operation and the
 *                    CoAP message ID it was relayed with, so a copy the broker delivers again
 *                    after a restart keeps that ID (the core's cache or journal then make it a
 *                    duplicate, RFC 7252 4.5, instead of a second Send);
 *  down:SS:TOPIC     downlink slot SS: a server request published to the device, so that its
 *                    result still answers the server;
 *  obs:TOKEN:TOPIC   an established observation, so that its Notify is relayed, not cancelled;
 *  held:SEQ:TOPIC    a request held behind a burst: acknowledged to the broker, nobody would
 *                    send it again;
 *  pub:TAG:TOPIC     an answer or server request published and not acknowledged by the broker
 *                    yet (publish_keep()).
 * Values are big-endian fields. */
#define STATE_KEY_MAX (sizeof("held:0123456789abcdef:") + GW_BADDR_MAX)
#define MID_BLOCK 256

static uint8_t *put_be(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = n; i-- > 0; v >>= 8)
    p[i] = (uint8_t)v;
  return p + n;
}

static uint64_t get_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static void state_key(char out[STATE_KEY_MAX], const char *kind, uint64_t slot, int slot_digits,
                      const mqtt_endpoint_t *e) {
  if (slot_digits)
    snprintf(out, STATE_KEY_MAX, "%s:%0*" PRIx64 ":%s", kind, slot_digits, slot, e->topic.text);
  else
    snprintf(out, STATE_KEY_MAX, "%s::%s", kind, e->topic.text);
}

static void unkeep(mqtt_binding_t *b, const char *key) {
  if (b->env.state_del)
    b->env.state_del(b->env.core, &b->base, key);
}

static void forget_acknowledged(mqtt_binding_t *b);

/* Kept publishes the broker acknowledged are forgotten in the same commit. */
static void keep(mqtt_binding_t *b, const char *key, const uint8_t *value, size_t len,
                 bool durable_now) {
  forget_acknowledged(b);
  if (b->env.state_put)
    b->env.state_put(b->env.core, &b->base, key, value, len, durable_now);
}

static void endpoint_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e, bool durable_now) {
  uint8_t value[2 + sizeof(e->location)];
  size_t n = strlen(e->location);
  put_be(value, e->mid_end, 2);
  memcpy(value + 2, e->location, n);
  char key[STATE_KEY_MAX];
  state_key(key, "ep", 0, 0, e);
  keep(b, key, value, 2 + n, durable_now);
}

/* The message ID for the endpoint's next message. IDs continue after a restart (RFC 7252 4.4;
 * the core's journal maps each to an upstream ID for EXCHANGE_LIFETIME, so one used again soon
 * would be taken for a duplicate): they come from blocks whose end is saved before the first ID
 * of the block is used, and a restart goes on from the saved end. One write per block. */
static uint16_t take_mid(mqtt_binding_t *b, mqtt_endpoint_t *e) {
  if (e->next_mid == e->mid_end) {
    e->mid_end = (uint16_t)(e->next_mid + MID_BLOCK);
    endpoint_keep(b, e, true);
  }
  return e->next_mid++;
}

static void uplink_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e, const mqtt_uplink_t *u) {
  uint8_t value[11], *p = value;
  p = put_be(p, u->token, 8);
  p = put_be(p, u->op, 1);
  put_be(p, u->mid, 2);
  char key[STATE_KEY_MAX];
  state_key(key, "up", (uint64_t)(u - e->uplink), 2, e);
  keep(b, key, value, sizeof(value), false); /* in the core's commit of the request */
}

static void downlink_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e,
                          const mqtt_downlink_t *d) {
  uint8_t value[12 + GW_COAP_MAX_TOKEN], *p = value;
  p = put_be(p, d->token, 8);
  p = put_be(p, d->op, 1);
  p = put_be(p, d->mid, 2);
  p = put_be(p, d->coap_token_len, 1);
  memcpy(p, d->coap_token, d->coap_token_len);
  char key[STATE_KEY_MAX];
  state_key(key, "down", (uint64_t)(d - e->downlink), 2, e);
  /* Not durable now: a server request the core has not saved either is sent again by the server
   * after a restart; one it saved (acknowledged empty) was saved in a later turn than this. */
  keep(b, key, value, 12 + d->coap_token_len, false);
}

static void downlink_unkeep(mqtt_binding_t *b, const mqtt_endpoint_t *e,
                            const mqtt_downlink_t *d) {
  char key[STATE_KEY_MAX];
  state_key(key, "down", (uint64_t)(d - e->downlink), 2, e);
  unkeep(b, key);
}

static void observation_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e,
                             const mqtt_observation_t *o) {
  uint8_t value[1 + GW_COAP_MAX_TOKEN];
  value[0] = o->coap_token_len;
  memcpy(value + 1, o->coap_token, o->coap_token_len);
  char key[STATE_KEY_MAX];
  state_key(key, "obs", o->token, 16, e);
  keep(b, key, value, 1 + o->coap_token_len, true); /* before the server hears it observes */
}

static void observation_end(mqtt_binding_t *b, const mqtt_endpoint_t *e, mqtt_observation_t *o) {
  char key[STATE_KEY_MAX];
  if (o->established) {
    state_key(key, "obs", o->token, 16, e);
    unkeep(b, key);
  }
  o->used = false;
}

/* Its MQTT payload as it came; DUP matters only for a Notify, which is never held. */
static void held_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e, const mqtt_held_t *h) {
  char key[STATE_KEY_MAX];
  state_key(key, "held", h->seq, 16, e);
  keep(b, key, h->cbor, h->len, true); /* before the broker has our acknowledgement */
}

static void held_unkeep(mqtt_binding_t *b, const mqtt_endpoint_t *e, const mqtt_held_t *h) {
  char key[STATE_KEY_MAX];
  state_key(key, "held", h->seq, 16, e);
  unkeep(b, key); /* in the core's commit of the request, or the loop turn's */
}

/* A publish made just before a kill is lost with the MQTT client's memory: a device would never
 * get its result (and send its request again: a second Send), a server request never reach the
 * device. So an answer or server request is kept ("pub:SEQ:TOPIC", the CBOR as published) from
 * the turn it is published in, whose commit there is anyway (the core forgets the request it
 * answers; the binding keeps the server request), until the broker acknowledged it. Those are
 * forgotten with the binding's next write (keep()), or after a second without one, so that they
 * cost no commit of their own under traffic. The next start publishes again what is kept: at
 * least once, as QoS 1 is. Returns its tag for the client. */
#define FORGET_EVERY_MS 1000

static uint64_t publish_keep(mqtt_binding_t *b, const mqtt_endpoint_t *e, const uint8_t *cbor,
                             size_t len) {
  if (!b->keeps_publishes)
    return 0;
  uint64_t tag = b->next_publish_tag++;
  char key[STATE_KEY_MAX];
  state_key(key, "pub", tag, 16, e);
  keep(b, key, cbor, len, false);
  return tag;
}

static void publish_unkeep(mqtt_binding_t *b, const char *topic, uint64_t tag) {
  char key[STATE_KEY_MAX];
  if (!tag)
    return;
  snprintf(key, sizeof(key), "pub:%016" PRIx64 ":%s", tag, topic);
  unkeep(b, key);
}

static void forget_acknowledged(mqtt_binding_t *b) {
  for (size_t i = 0; i < b->acknowledged_count; i++)
    publish_unkeep(b, b->acknowledged[i].topic.text, b->acknowledged[i].tag);
  b->acknowledged_count = 0;
}

static void forget_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  forget_acknowledged(arg);
}

/* The client's report (mqtt_client.h on_published): the kept copy can go, with the binding's
 * next write. */
static void on_mqtt_published(void *arg, const char *topic, uint64_t tag, bool delivered) {
  mqtt_binding_t *b = arg;
  (void)delivered; /* one the broker refused would be refused again */
  mqtt_acknowledged_t *a = NULL;
  if (b->acknowledged_count == b->acknowledged_cap) {
    size_t cap = b->acknowledged_cap ? 2 * b->acknowledged_cap : 64;
    a = realloc(b->acknowledged, cap * sizeof(*a));
    if (!a) { /* forgotten now, in a commit of its own */
      publish_unkeep(b, topic, tag);
      return;
    }
    b->acknowledged = a;
    b->acknowledged_cap = cap;
  }
  a = &b->acknowledged[b->acknowledged_count++];
  a->tag = tag;
  snprintf(a->topic.text, sizeof(a->topic.text), "%s", topic);
  if (!gw_timer_active(&b->forget_timer))
    gw_timer_start(b->env.loop, &b->forget_timer, FORGET_EVERY_MS);
}

/* RFC 7641 4.4: a server takes a notification for newer than the last when its Observe value is
 * ahead (24-bit serial arithmetic) or it came 128 s later. The value follows the wall clock in
 * milliseconds, or is one more than the last where notifications come faster than that: it
 * keeps growing across a restart without being written anywhere. */
#define OBSERVE_MASK 0xFFFFFFu
static uint32_t observe_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) & OBSERVE_MASK;
}

static uint32_t observe_next(mqtt_observation_t *o) {
  uint32_t now = observe_clock();
  uint32_t ahead = (now - o->seq) & OBSERVE_MASK;
  o->seq = ahead != 0 && ahead < 0x800000u ? now : (o->seq + 1) & OBSERVE_MASK;
  return o->seq;
}

/* ------------------------------------------------------------------------------------------ */
/* publishing                                                                                  */

/* Whether a publish is kept in the state until the broker has it (mqtt/README.md): an answer a
 * device waits for and a server request are; what the next message makes good again (the 205
 * of a Notify, a Cancel-Observe) is not. */
typedef enum { PUBLISH_KEPT, PUBLISH_ONCE } publish_mode_t;

/* *out_tag (may be NULL): the kept copy's tag, 0 for none. */
static int publish_tagged(mqtt_binding_t *b, const mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m,
                          publish_mode_t mode, uint64_t *out_tag) {
  long len = mqtt_cbor_encode(m, b->publish_buf, sizeof(b->publish_buf));
  uint64_t tag = len >= 0 && mode == PUBLISH_KEPT ? publish_keep(b, e, b->publish_buf, (size_t)len)
                                                  : 0;
  int rc = len < 0 ? GW_ERR_TOOBIG
                   : mqtt_client_publish_tagged(b->client, e->topic.text, b->publish_buf,
                                                (size_t)len, tag);
  if (rc != GW_OK) {
    publish_unkeep(b, e->topic.text, tag);
    b->metrics.publish_failures++;
    GW_WARN(MOD, "%s: publish failed: %s", e->topic.text,
            len < 0 ? mqtt_cbor_strerror((int)len) : gw_strerror(rc));
    return rc;
  }
  b->metrics.messages_out++;
  if (out_tag)
    *out_tag = tag;
  return GW_OK;
}

static int publish_msg(mqtt_binding_t *b, const mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m,
                       publish_mode_t mode) {
  return publish_tagged(b, e, m, mode, NULL);
}

/* Transport 8.4: {result, token}, the generic response without content. */
static int publish_result(mqtt_binding_t *b, const mqtt_endpoint_t *e, uint64_t token,
                          uint16_t result, publish_mode_t mode) {
  mqtt_cbor_msg_t m = {.present = MQTT_CBOR_BIT(MQTT_CBOR_KEY_RESULT) |
                                  MQTT_CBOR_BIT(MQTT_CBOR_KEY_TOKEN),
                       .result = result,
                       .token = token};
  return publish_msg(b, e, &m, mode);
}

/* Transport 8.3.4: the server's way to end an observation; the MQTT form of an RST. */
static void publish_cancel_observe(mqtt_binding_t *b, const mqtt_endpoint_t *e, uint64_t token) {
  mqtt_cbor_msg_t m = {.present = MQTT_CBOR_BIT(MQTT_CBOR_KEY_OPERATION) |
                                  MQTT_CBOR_BIT(MQTT_CBOR_KEY_TOKEN),
                       .operation = MQTT_CBOR_OP_CANCEL_OBSERVE,
                       .token = token};
  publish_msg(b, e, &m, PUBLISH_ONCE);
}

/* ------------------------------------------------------------------------------------------ */
/* handing CoAP to the core                                                                    */

/* Returns false when m did not fit the core's buffer (logged, counted as rejected). */
static bool deliver(mqtt_binding_t *b, const mqtt_endpoint_t *e, const gw_coap_msg_t *m) {
  size_t len = gw_coap_serialize(m, b->coap_buf, sizeof(b->coap_buf));
  if (len == 0) {
    GW_WARN_LIMITED(MOD, "%s: translated message does not fit; dropped", e->topic.text);
    b->env.on_rejected(b->env.core, &b->base, &e->topic, "translated CoAP message too large");
    return false;
  }
  b->env.on_message(b->env.core, &b->base, &e->topic, b->coap_buf, len);
  return true;
}

/* Answers a server request (mid, token) with a bare code, from the loop's next turn. */
static int answer_server_later(mqtt_binding_t *b, const gw_baddr_t *to,
                               const gw_coap_msg_t *req, uint8_t code) {
  b->metrics.server_refused++;
  return gw_local_answer(&b->local, to, req, code, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* uplink: what devices publish                                                                */

static mqtt_uplink_t *uplink_find_token(mqtt_endpoint_t *e, uint64_t token, uint64_t op) {
  for (size_t i = 0; i < MQTT_UPLINK_SLOTS; i++)
    if (e->uplink[i].used && e->uplink[i].token == token && e->uplink[i].op == op)
      return &e->uplink[i];
  return NULL;
}

static mqtt_uplink_t *uplink_find_mid(mqtt_endpoint_t *e, uint16_t mid) {
  for (size_t i = 0; i < MQTT_UPLINK_SLOTS; i++)
    if (e->uplink[i].used && e->uplink[i].mid == mid)
      return &e->uplink[i];
  return NULL;
}

static bool is_notify(const mqtt_endpoint_t *e, uint64_t op) {
  return e->iface == MQTT_CBOR_IFACE_RD && op == MQTT_CBOR_OP_NOTIFY;
}

/* A new device request or Notify: its message ID, remembered in the ring (in the state too for
 * a request: a Notify redelivered after a restart is relayed again, which RFC 7641 allows, a
 * notification being a state). */
static uint16_t uplink_record(mqtt_binding_t *b, mqtt_endpoint_t *e, uint64_t token,
                              uint64_t op) {
  mqtt_uplink_t *u = &e->uplink[e->uplink_next];
  e->uplink_next = (e->uplink_next + 1) % MQTT_UPLINK_SLOTS;
  *u = (mqtt_uplink_t){.used = true, .token = token, .op = op, .mid = take_mid(b, e),
                       .since_ms = gw_now_ms()};
  if (!is_notify(e, op))
    uplink_keep(b, e, u);
  return u->mid;
}

static void uplink_answered(mqtt_endpoint_t *e, uint16_t mid) {
  mqtt_uplink_t *u = uplink_find_mid(e, mid);
  if (u)
    u->answered = true;
}

/* An unanswered device request stops counting after EXCHANGE_LIFETIME, as in the core: no
 * answer can come any more (RFC 7252 4.8.2). */
static bool uplink_in_flight(const mqtt_endpoint_t *e, const mqtt_uplink_t *u, uint64_t now) {
  return u->used && !u->answered && !is_notify(e, u->op) &&
         u->since_ms + GW_EXCHANGE_LIFETIME_MS > now; /* since_ms may be after now */
}

static size_t requests_in_flight(const mqtt_endpoint_t *e, uint64_t now) {
  size_t n = 0;
  for (size_t i = 0; i < MQTT_UPLINK_SLOTS; i++)
    n += uplink_in_flight(e, &e->uplink[i], now);
  return n;
}

/* When the oldest request in flight stops counting. */
static uint64_t requests_age_out_ms(const mqtt_endpoint_t *e, uint64_t now) {
  uint64_t due = UINT64_MAX;
  for (size_t i = 0; i < MQTT_UPLINK_SLOTS; i++)
    if (uplink_in_flight(e, &e->uplink[i], now) &&
        e->uplink[i].since_ms + GW_EXCHANGE_LIFETIME_MS < due)
      due = e->uplink[i].since_ms + GW_EXCHANGE_LIFETIME_MS;
  return due == UINT64_MAX ? now : due;
}

/* The message ID for a device request: a QoS 1 redelivery (same token and operation) keeps
 * the first one's, so the core answers it from its cache instead of relaying it twice. */
static uint16_t uplink_mid(mqtt_binding_t *b, mqtt_endpoint_t *e, uint64_t token, uint64_t op) {
  mqtt_uplink_t *u = uplink_find_token(e, token, op);
  return u ? u->mid : uplink_record(b, e, token, op);
}

static mqtt_observation_t *observation_by_token(mqtt_endpoint_t *e, uint64_t token) {
  for (size_t i = 0; i < MQTT_OBSERVATION_SLOTS; i++)
    if (e->obs[i].used && e->obs[i].token == token)
      return &e->obs[i];
  return NULL;
}

static mqtt_observation_t *observation_by_coap_token(mqtt_endpoint_t *e, const uint8_t *tok,
                                                     size_t len) {
  for (size_t i = 0; i < MQTT_OBSERVATION_SLOTS; i++)
    if (e->obs[i].used && e->obs[i].coap_token_len == len &&
        memcmp(e->obs[i].coap_token, tok, len) == 0)
      return &e->obs[i];
  return NULL;
}

static uint64_t notify_digest(const mqtt_cbor_msg_t *m) {
  uint64_t h = gw_fnv1a(GW_FNV1A_INIT, &m->ct, sizeof(m->ct));
  h = gw_fnv1a(h, m->payload.ptr, m->payload.len);
  return h ? h : 1; /* 0 means "none yet" */
}

/* A Notify carries the observation's token, not one of its own (8.3.4), so a redelivery cannot
 * be told by token. One the broker marks DUP that repeats the observation's last Notify is taken
 * for that one again: were it a new Notify of an unchanged value, the server already has it. */
static bool notify_redelivered(mqtt_observation_t *o, const mqtt_cbor_msg_t *m, bool dup) {
  uint64_t digest = notify_digest(m);
  if (dup && digest == o->last_notify)
    return true;
  o->last_notify = digest;
  return false;
}

/* Notify (23) -> CON 2.05 notification on the server's observation (RFC 7641 4.2). */
static void device_notify(mqtt_binding_t *b, mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m,
                          bool dup) {
  mqtt_observation_t *o = observation_by_token(e, m->token);
  if (!o || !o->established) {
    /* RFC 7641 3.6 would answer RST; the MQTT form is Cancel-Observe. */
    b->metrics.unknown_notifications++;
    GW_INFO_LIMITED(MOD, "%s: Notify for unknown observation %" PRIu64 "; cancelled", e->topic.text,
            m->token);
    publish_cancel_observe(b, e, m->token);
    return;
  }
  if (notify_redelivered(o, m, dup)) {
    b->metrics.redelivered_notifications++;
    GW_DEBUG(MOD, "%s: Notify %" PRIu64 " redelivered by the broker; relayed already",
             e->topic.text, m->token);
    return;
  }
  mqtt_coap_scratch_t scratch = {.used = 0};
  gw_coap_msg_t n;
  /* Every Notify carries the observation's token, so each is a new message. */
  uint16_t mid = uplink_record(b, e, m->token, MQTT_CBOR_OP_NOTIFY);
  if (mqtt_coap_notification(m, o->coap_token, o->coap_token_len, observe_next(o), mid, &n,
                             &scratch) != 0) {
    b->metrics.refused++;
    publish_result(b, e, m->token, 400, PUBLISH_ONCE);
    return;
  }
  deliver(b, e, &n);
}

static void device_request(mqtt_binding_t *b, mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m,
                           bool dup) {
  if (is_notify(e, m->operation)) {
    device_notify(b, e, m, dup);
    return;
  }
  mqtt_coap_uplink_ctx_t ctx = {.endpoint = e->ep, .location = e->location[0] ? e->location
                                                                               : NULL};
  mqtt_coap_scratch_t scratch = {.used = 0};
  gw_coap_msg_t req;
  uint16_t mid = uplink_mid(b, e, m->token, m->operation);
  int result = mqtt_coap_uplink_request(m, e->iface, &ctx, mid, &req, &scratch);
  if (result == 0 && !deliver(b, e, &req))
    result = 500; /* Transport 8.5-5: a generic error */
  if (result != 0) {
    if (result == 501)
      b->metrics.unknown_operations++;
    else
      b->metrics.refused++;
    GW_NOTICE_LIMITED(MOD, "%s: %s refused with %d", e->topic.text,
              mqtt_cbor_op_name(e->iface, m->operation), result);
    uplink_answered(e, mid);
    publish_result(b, e, m->token, (uint16_t)result, PUBLISH_KEPT);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* held device requests                                                                        */

/* After a broker restart the broker delivers what it queued, and devices send what they kept,
 * at once: more requests of one device than the core takes in flight. Such a burst waits here,
 * in order, and each request goes to the core when an earlier one was answered. A repetition
 * of a request relayed already goes through: the core answers it from its cache. */
static bool must_wait(mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m) {
  if (is_notify(e, m->operation) || uplink_find_token(e, m->token, m->operation))
    return false;
  return e->held_head || requests_in_flight(e, gw_now_ms()) >= MQTT_REQUESTS_IN_FLIGHT;
}

/* Arms the release timer to fire within delay_ms. */
static void release_within(mqtt_binding_t *b, uint64_t delay_ms) {
  uint64_t due = gw_now_ms() + delay_ms;
  if (!gw_timer_active(&b->release_timer) || b->release_timer.due_ms > due)
    gw_timer_start(b->env.loop, &b->release_timer, delay_ms);
}

static void holding_add(mqtt_binding_t *b, mqtt_endpoint_t *e) {
  if (e->in_holding)
    return;
  e->in_holding = true;
  e->next_holding = b->holding;
  b->holding = e;
}

static void held_append(mqtt_endpoint_t *e, mqtt_held_t *h) {
  h->next = NULL;
  if (e->held_tail)
    e->held_tail->next = h;
  else
    e->held_head = h;
  e->held_tail = h;
  e->held_count++;
}

static void hold_request(mqtt_binding_t *b, mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m,
                         const uint8_t *payload, size_t len, bool dup) {
  mqtt_held_t *h = e->held_count < MQTT_HELD_MAX ? malloc(sizeof(*h) + len) : NULL;
  if (!h) {
    b->metrics.refused++;
    GW_WARN_LIMITED(MOD, "%s: %zu requests wait for earlier ones already; %s refused with 503",
                    e->topic.text, e->held_count, mqtt_cbor_op_name(e->iface, m->operation));
    publish_result(b, e, m->token, 503, PUBLISH_KEPT);
    return;
  }
  *h = (mqtt_held_t){.seq = b->next_held_seq++, .dup = dup, .len = len};
  memcpy(h->cbor, payload, len);
  held_keep(b, e, h);
  held_append(e, h);
  b->metrics.held_requests++;
  holding_add(b, e);
  uint64_t now = gw_now_ms();
  release_within(b, requests_age_out_ms(e, now) - now);
}

static mqtt_held_t *held_pop(mqtt_endpoint_t *e) {
  mqtt_held_t *h = e->held_head;
  if (h) {
    e->held_head = h->next;
    if (!e->held_head)
      e->held_tail = NULL;
    e->held_count--;
  }
  return h;
}

/* Hands e's held requests to the core while it has room for them. */
static void release_held(mqtt_binding_t *b, mqtt_endpoint_t *e, uint64_t now) {
  while (e->held_head && requests_in_flight(e, now) < MQTT_REQUESTS_IN_FLIGHT) {
    mqtt_held_t *h = held_pop(e);
    held_unkeep(b, e, h);
    mqtt_cbor_msg_t m;
    /* It was decoded and validated before it was held: this cannot fail. */
    if (mqtt_cbor_decode(h->cbor, h->len, &m) == MQTT_CBOR_OK)
      device_request(b, e, &m, h->dup);
    free(h);
  }
}

static void release_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  mqtt_binding_t *b = arg;
  mqtt_endpoint_t *list = b->holding;
  b->holding = NULL;
  uint64_t now = gw_now_ms(), next = UINT64_MAX;
  while (list) {
    mqtt_endpoint_t *e = list;
    list = e->next_holding;
    e->in_holding = false;
    release_held(b, e, now);
    if (!e->held_head)
      continue;
    holding_add(b, e);
    uint64_t due = requests_age_out_ms(e, now);
    next = due < next ? due : next;
  }
  if (next != UINT64_MAX)
    release_within(b, next > now ? next - now : 0);
}

static void held_free(mqtt_endpoint_t *e) {
  for (mqtt_held_t *h; (h = held_pop(e)) != NULL;)
    free(h);
}

static mqtt_downlink_t *downlink_find_token(mqtt_endpoint_t *e, uint64_t token) {
  for (size_t i = 0; i < MQTT_DOWNLINK_SLOTS; i++)
    if (e->downlink[i].used && e->downlink[i].token == token)
      return &e->downlink[i];
  return NULL;
}

/* The device's result for a server request: the piggybacked CoAP answer (8.4, 8.5). */
static void device_result(mqtt_binding_t *b, mqtt_endpoint_t *e, const mqtt_cbor_msg_t *m) {
  mqtt_downlink_t *d = downlink_find_token(e, m->token);
  if (!d) {
    /* Our own answer to a device request coming back (3.1.1), or a result after the core
     * gave up on the request. */
    b->metrics.unmatched_results++;
    GW_DEBUG(MOD, "%s: result %" PRIu64 " for token %" PRIu64 " matches no request; ignored",
             e->topic.text, m->result, m->token);
    return;
  }
  mqtt_observation_t *o = NULL;
  if (d->op == MQTT_CBOR_OP_OBSERVE || d->op == MQTT_CBOR_OP_OBSERVE_COMPOSITE)
    o = observation_by_token(e, d->token);
  bool success = m->result >= 200 && m->result < 300;
  if (o && success && !o->established) {
    o->established = true;
    observation_keep(b, e, o);
  } else if (o && !success) {
    observation_end(b, e, o);
    o = NULL;
  }
  if (!mqtt_cbor_result_allowed(e->iface, d->op, m->result))
    GW_INFO_LIMITED(MOD, "%s: result %" PRIu64 " is not listed for %s (Transport 8.5); relayed",
            e->topic.text, m->result, mqtt_cbor_op_name(e->iface, d->op));
  mqtt_coap_scratch_t scratch = {.used = 0};
  gw_coap_msg_t resp;
  uint32_t observe = o ? observe_next(o) : 0;
  if (mqtt_coap_response_from_mqtt(m, d->mid, d->coap_token, d->coap_token_len,
                                   o ? &observe : NULL, &resp, &scratch) != 0)
    GW_WARN_LIMITED(MOD, "%s: result %" PRIu64 " has no CoAP code; answered 5.00", e->topic.text,
            m->result);
  d->used = false;
  downlink_unkeep(b, e, d);
  publish_unkeep(b, e->topic.text, d->publish_tag); /* the device has it */
  deliver(b, e, &resp);
}

/* Tells our own publishes apart on the shared topic (Transport 8.3): operations that only a
 * server sends. */
static bool is_server_operation(mqtt_cbor_iface_t iface, uint64_t op) {
  if (iface == MQTT_CBOR_IFACE_BS)
    return op >= MQTT_CBOR_OP_BOOTSTRAP_WRITE && op <= MQTT_CBOR_OP_BOOTSTRAP_FINISH;
  return op >= MQTT_CBOR_OP_READ && op <= MQTT_CBOR_OP_CANCEL_OBSERVE &&
         mqtt_cbor_op_name(iface, op) != NULL; /* 19 is not assigned */
}

/* Decode or validation failed: answer 400 / 501 to a readable token (8.5), else drop. */
static void device_bad_message(mqtt_binding_t *b, mqtt_endpoint_t *e,
                               const mqtt_cbor_msg_t *m, int err) {
  uint16_t result = mqtt_cbor_err_result(err);
  if (result == 501)
    b->metrics.unknown_operations++;
  else
    b->metrics.malformed++;
  bool has_token = m->present & MQTT_CBOR_BIT(MQTT_CBOR_KEY_TOKEN);
  bool is_result = m->present & MQTT_CBOR_BIT(MQTT_CBOR_KEY_RESULT);
  GW_WARN_LIMITED(MOD, "%s: %s; %s", e->topic.text, mqtt_cbor_strerror(err),
          has_token && !is_result ? "answered" : "dropped");
  if (has_token && !is_result)
    publish_result(b, e, m->token, result, PUBLISH_KEPT);
  else
    b->env.on_rejected(b->env.core, &b->base, &e->topic, mqtt_cbor_strerror(err));
}

/* The endpoint of a topic, made when new; NULL with the reason when the topic is none of ours
 * (*out_bad_topic) or the table is full. */
static mqtt_endpoint_t *endpoint_of_topic(mqtt_binding_t *b, const char *topic,
                                          bool *out_bad_topic, const char **out_why) {
  mqtt_endpoint_t *e = endpoint_find(b, topic);
  if (e)
    return e;
  size_t tenant;
  mqtt_cbor_iface_t iface;
  const char *ep;
  size_t ep_len;
  int rc = mqtt_topic_parse(topic, b->prefixes, b->tenant_count, &tenant, &iface, &ep, &ep_len);
  if (rc != 0 || (iface == MQTT_CBOR_IFACE_BS && !b->tenants[tenant].bootstrap)) {
    *out_bad_topic = true;
    *out_why = rc == -2 ? "invalid endpoint name in the topic (Transport 8.2)"
                        : "topic of no configured prefix";
    return NULL;
  }
  e = endpoint_add(b, topic, tenant, iface, ep, ep_len);
  if (!e)
    *out_why = "too many MQTT endpoints";
  return e;
}

static mqtt_endpoint_t *endpoint_for_topic(mqtt_binding_t *b, const char *topic) {
  const char *why = NULL;
  bool bad_topic = false;
  mqtt_endpoint_t *e = endpoint_of_topic(b, topic, &bad_topic, &why);
  if (e)
    return e;
  gw_baddr_t shown;
  snprintf(shown.text, sizeof(shown.text), "%s", topic);
  if (bad_topic)
    b->metrics.bad_topics++;
  b->env.on_rejected(b->env.core, &b->base, &shown, why);
  return NULL;
}

static void on_mqtt_message(void *arg, const char *topic, const uint8_t *payload, size_t len,
                            bool dup) {
  mqtt_binding_t *b = arg;
  b->metrics.messages_in++;
  mqtt_endpoint_t *e = endpoint_for_topic(b, topic);
  if (!e)
    return;
  mqtt_cbor_msg_t m;
  int err = mqtt_cbor_decode(payload, len, &m);
  if (err == MQTT_CBOR_OK)
    err = mqtt_cbor_validate(&m, e->iface, NULL);
  bool is_result = m.present & MQTT_CBOR_BIT(MQTT_CBOR_KEY_RESULT);
  if (err == MQTT_CBOR_OK && is_result) {
    device_result(b, e, &m);
  } else if (err == MQTT_CBOR_OK && is_server_operation(e->iface, m.operation)) {
    b->metrics.echoes++;
  } else if (err == MQTT_CBOR_OK && must_wait(e, &m)) {
    hold_request(b, e, &m, payload, len, dup);
  } else if (err == MQTT_CBOR_OK) {
    device_request(b, e, &m, dup);
  } else {
    device_bad_message(b, e, &m, err);
  }
}

static void on_mqtt_state(void *arg, bool connected) {
  mqtt_binding_t *b = arg;
  if (connected)
    GW_NOTICE(MOD, "connected to %s; %zu device topics known", b->config->bindings.mqtt.broker,
              b->endpoint_count);
  else
    GW_WARN(MOD, "connection to %s lost; reconnecting (publishes are kept)",
            b->config->bindings.mqtt.broker);
}

/* ------------------------------------------------------------------------------------------ */
/* downlink: what the core sends to a device                                                   */

static mqtt_downlink_t *downlink_slot(mqtt_endpoint_t *e) {
  for (size_t i = 0; i < MQTT_DOWNLINK_SLOTS; i++)
    if (!e->downlink[i].used)
      return &e->downlink[i];
  /* All taken: the oldest was long answered 5.04 by the core (device_timeout_ms). */
  mqtt_downlink_t *d = &e->downlink[e->downlink_next];
  e->downlink_next = (e->downlink_next + 1) % MQTT_DOWNLINK_SLOTS;
  return d;
}

static mqtt_observation_t *observation_slot(mqtt_endpoint_t *e) {
  for (size_t i = 0; i < MQTT_OBSERVATION_SLOTS; i++)
    if (!e->obs[i].used)
      return &e->obs[i];
  return NULL;
}

/* The MQTT token for a server request: fresh, or the observation's for Cancel-Observe. */
static int token_for_request(mqtt_binding_t *b, mqtt_endpoint_t *e, const gw_coap_msg_t *req,
                             uint64_t *op, uint64_t *out_token) {
  if (*op == MQTT_CBOR_OP_CANCEL_OBSERVE) {
    mqtt_observation_t *o = observation_by_coap_token(e, req->token, req->token_len);
    if (!o) {
      /* RFC 7641 3.6: Observe=1 for an unknown observation is a plain GET. */
      *op = req->code == GW_COAP_FETCH ? MQTT_CBOR_OP_READ_COMPOSITE : MQTT_CBOR_OP_READ;
      *out_token = fresh_token(b);
      return GW_OK;
    }
    *out_token = o->token;
    observation_end(b, e, o);
    return GW_OK;
  }
  *out_token = fresh_token(b);
  if (*op != MQTT_CBOR_OP_OBSERVE && *op != MQTT_CBOR_OP_OBSERVE_COMPOSITE)
    return GW_OK;
  mqtt_observation_t *o = observation_by_coap_token(e, req->token, req->token_len);
  if (o) /* the server observes anew with the same token */
    observation_end(b, e, o);
  else
    o = observation_slot(e);
  if (!o)
    return GW_ERR_FULL;
  *o = (mqtt_observation_t){.used = true, .token = *out_token,
                            .seq = (observe_clock() - 1) & OBSERVE_MASK,
                            .coap_token_len = req->token_len};
  memcpy(o->coap_token, req->token, req->token_len);
  return GW_OK;
}

static int send_server_request(mqtt_binding_t *b, mqtt_endpoint_t *e,
                               const gw_coap_msg_t *req) {
  uint64_t op;
  int code = mqtt_coap_downlink_op(req, e->iface, &op);
  if (code != 0)
    return answer_server_later(b, &e->topic, req, (uint8_t)code);
  uint64_t token;
  if (token_for_request(b, e, req, &op, &token) != GW_OK)
    return answer_server_later(b, &e->topic, req, GW_COAP_SERVICE_UNAVAILABLE);
  mqtt_cbor_msg_t m;
  mqtt_coap_scratch_t scratch = {.used = 0};
  code = mqtt_coap_downlink_request(req, op, token, &m, &scratch);
  if (code != 0)
    return answer_server_later(b, &e->topic, req, (uint8_t)code);
  mqtt_downlink_t *d = downlink_slot(e);
  *d = (mqtt_downlink_t){.used = true, .token = token, .op = op, .mid = req->mid,
                         .coap_token_len = req->token_len};
  memcpy(d->coap_token, req->token, req->token_len);
  int rc = publish_tagged(b, e, &m, PUBLISH_KEPT, &d->publish_tag);
  if (rc != GW_OK)
    d->used = false;
  else
    downlink_keep(b, e, d);
  return rc;
}

/* The core's answer to a device request: the 8.4 generic response with the device's token. */
static int send_device_answer(mqtt_binding_t *b, mqtt_endpoint_t *e, const gw_coap_msg_t *resp) {
  uint64_t token = gw_coap_token_to_u64(resp->token, resp->token_len);
  mqtt_uplink_t *u = uplink_find_mid(e, resp->mid);
  if (u && u->op == MQTT_CBOR_OP_REGISTER && e->iface == MQTT_CBOR_IFACE_RD &&
      resp->code == GW_COAP_CREATED) {
    gw_coap_path_str(resp, GW_COAP_OPT_LOCATION_PATH, e->location, sizeof(e->location));
    endpoint_keep(b, e, true); /* before the device hears 201: its Update will need it */
  } else if (u && u->op == MQTT_CBOR_OP_DEREGISTER && GW_COAP_CODE_CLASS(resp->code) == 2) {
    e->location[0] = 0;
    endpoint_keep(b, e, false);
  }
  if (u)
    u->answered = true;
  if (e->held_head) {
    holding_add(b, e);
    release_within(b, 0); /* not now: the core is inside its call to us */
  }
  mqtt_cbor_msg_t m;
  if (mqtt_coap_response_to_mqtt(resp, token, &m) != 0) {
    char c[8];
    GW_INFO(MOD, "%s: server answered %s, which Transport 8.5 does not list; sent as 500",
            e->topic.text, gw_coap_code_str(resp->code, c));
  }
  return publish_msg(b, e, &m, PUBLISH_KEPT);
}

/* An empty ACK or RST for one of our CON notifications. */
static int send_notification_verdict(mqtt_binding_t *b, mqtt_endpoint_t *e,
                                     const gw_coap_msg_t *m) {
  mqtt_uplink_t *u = uplink_find_mid(e, m->mid);
  if (!u || u->op != MQTT_CBOR_OP_NOTIFY)
    return GW_OK; /* an RST for a device request: the device gets its answer anyway */
  mqtt_observation_t *o = observation_by_token(e, u->token);
  if (!o)
    return GW_OK;
  if (m->type == GW_COAP_RST) {
    /* RFC 7641 3.6: the server forgot the observation. */
    publish_cancel_observe(b, e, o->token);
    observation_end(b, e, o);
    return GW_OK;
  }
  return publish_result(b, e, o->token, 205, PUBLISH_ONCE); /* Table 8.5-4: Notify completed */
}

static int mqtt_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len) {
  mqtt_binding_t *b = (mqtt_binding_t *)binding;
  mqtt_endpoint_t *e = endpoint_find(b, to->text);
  gw_coap_msg_t m;
  if (!e || gw_coap_parse(data, len, &m) != GW_COAP_PARSE_OK)
    return GW_ERR_INVAL;
  if (gw_coap_is_request(&m))
    return send_server_request(b, e, &m);
  if (gw_coap_is_response(&m))
    return send_device_answer(b, e, &m);
  return send_notification_verdict(b, e, &m);
}

/* ------------------------------------------------------------------------------------------ */
/* lifecycle                                                                                   */

static bool mqtt_enabled(const gw_config_t *config) { return config->bindings.mqtt.enabled; }

static int copy_tenants(mqtt_binding_t *b, const gw_mqtt_conf_t *conf) {
  b->tenants = calloc(conf->tenant_count, sizeof(*b->tenants));
  b->prefixes = calloc(conf->tenant_count, sizeof(*b->prefixes));
  if (!b->tenants || !b->prefixes)
    return GW_ERR_NOMEM;
  b->tenant_count = conf->tenant_count;
  for (size_t i = 0; i < conf->tenant_count; i++) {
    const gw_mqtt_tenant_conf_t *t = &conf->tenants[i];
    b->tenants[i].prefix = strdup(t->prefix);
    b->tenants[i].upstream = t->upstream ? strdup(t->upstream) : NULL;
    b->tenants[i].bootstrap = t->bootstrap ? strdup(t->bootstrap) : NULL;
    if (!b->tenants[i].prefix || (t->upstream && !b->tenants[i].upstream) ||
        (t->bootstrap && !b->tenants[i].bootstrap))
      return GW_ERR_NOMEM;
    b->prefixes[i] = b->tenants[i].prefix;
  }
  return GW_OK;
}

static int new_client(mqtt_binding_t *b, const gw_mqtt_conf_t *conf) {
  mqtt_client_conf_t cc;
  mqtt_client_conf_init(&cc);
  cc.uri = conf->broker;
  cc.client_id = conf->client_id;
  cc.username = conf->username;
  cc.password = conf->password;
  cc.ca_file = conf->ca_file;
  cc.cert_file = conf->cert_file;
  cc.key_file = conf->key_file;
  cc.mqtt_version = (int)conf->mqtt_version;
  cc.keepalive_s = (int)conf->keepalive_s;
  cc.qos = (int)conf->qos;
  cc.session_expiry_s = conf->session_expiry_s;
  mqtt_client_callbacks_t cb = {.arg = b, .on_message = on_mqtt_message,
                                .on_state = on_mqtt_state, .on_published = on_mqtt_published};
  b->keeps_publishes = cc.qos > 0;
  return mqtt_client_new(b->env.loop, &cc, &cb, &b->client);
}

static void mqtt_free(gw_binding_t **binding);

static int mqtt_create(const gw_config_t *config, const gw_binding_env_t *env,
                       gw_binding_t **out_binding) {
  mqtt_binding_t *b = calloc(1, sizeof(*b));
  if (!b)
    return GW_ERR_NOMEM;
  b->base.ops = ops_self();
  b->env = *env;
  b->config = config;
  gw_local_answers_init(&b->local, &b->base, env);
  gw_timer_init(&b->release_timer, release_timer_fired, b);
  gw_timer_init(&b->forget_timer, forget_timer_fired, b);
  b->next_publish_tag = 1;
  /* rd and bs topics of every device */
  b->max_endpoints = 2 * (size_t)config->gateway.max_devices;
  b->bucket_count = 64;
  while (b->bucket_count < b->max_endpoints && b->bucket_count < (1u << 20))
    b->bucket_count <<= 1;
  b->buckets = calloc(b->bucket_count, sizeof(*b->buckets));
  b->next_token = gw_random_u64();
  const gw_mqtt_conf_t *conf = &config->bindings.mqtt;
  b->policy = (gw_link_policy_t){.max_retransmit = 0, /* QoS 1 delivers; see above */
                                 .ack_timeout_ms = 2000,
                                 .mtu = MQTT_MTU,
                                 .sleepy = false,
                                 .accept_unknown = conf->accept_unknown,
                                 /* a QoS 1 publish is acknowledged once handed to the core
                                    (mqtt_client.h): nothing would send it again */
                                 .accepts_on_receipt = true,
                                 .binding_letter = 'M'};
  int rc = b->buckets ? copy_tenants(b, conf) : GW_ERR_NOMEM;
  if (rc == GW_OK)
    rc = new_client(b, conf);
  if (rc != GW_OK) {
    gw_binding_t *base = &b->base;
    mqtt_free(&base);
    return rc;
  }
  *out_binding = &b->base;
  return GW_OK;
}

static int mqtt_start(gw_binding_t *binding) {
  mqtt_binding_t *b = (mqtt_binding_t *)binding;
  for (size_t i = 0; i < b->tenant_count; i++) {
    char filter[GW_BADDR_MAX];
    if (mqtt_topic_filter(b->tenants[i].prefix, MQTT_CBOR_IFACE_RD, filter, sizeof(filter)) == 0 ||
        mqtt_client_subscribe(b->client, filter) != GW_OK)
      return GW_ERR_CONFIG;
    GW_INFO(MOD, "serving %s (upstream %s)", filter,
            b->tenants[i].upstream ? b->tenants[i].upstream : "default");
    if (!b->tenants[i].bootstrap)
      continue;
    if (mqtt_topic_filter(b->tenants[i].prefix, MQTT_CBOR_IFACE_BS, filter, sizeof(filter)) == 0 ||
        mqtt_client_subscribe(b->client, filter) != GW_OK)
      return GW_ERR_CONFIG;
    GW_INFO(MOD, "serving %s (bootstrap upstream %s)", filter, b->tenants[i].bootstrap);
  }
  return mqtt_client_start(b->client);
}

static void mqtt_stop(gw_binding_t *binding) {
  mqtt_binding_t *b = (mqtt_binding_t *)binding;
  gw_local_answers_stop(&b->local);
  gw_timer_stop(b->env.loop, &b->release_timer);
  gw_timer_stop(b->env.loop, &b->forget_timer);
  forget_acknowledged(b);
  mqtt_client_free(&b->client);
}

static void mqtt_free(gw_binding_t **binding) {
  mqtt_binding_t *b = (mqtt_binding_t *)*binding;
  if (!b)
    return;
  mqtt_stop(*binding);
  for (size_t i = 0; b->buckets && i < b->bucket_count; i++) {
    for (mqtt_endpoint_t *e = b->buckets[i], *next; e; e = next) {
      next = e->next;
      held_free(e);
      free(e);
    }
  }
  free(b->buckets);
  for (size_t i = 0; b->tenants && i < b->tenant_count; i++) {
    free(b->tenants[i].prefix);
    free(b->tenants[i].upstream);
    free(b->tenants[i].bootstrap);
  }
  free(b->tenants);
  free(b->prefixes);
  free(b->acknowledged);
  free(b);
  *binding = NULL;
}

static const gw_link_policy_t *mqtt_policy(const gw_binding_t *binding) {
  return &((const mqtt_binding_t *)binding)->policy;
}

/* A binding address (a topic) split into its prefix, interface and endpoint name. */
typedef struct {
  const mqtt_tenant_t *tenant;
  mqtt_cbor_iface_t iface;
  char ep[MQTT_EP_MAX + 1];
} mqtt_addr_t;

static bool parse_addr(const mqtt_binding_t *b, const gw_baddr_t *addr, mqtt_addr_t *out) {
  const char *p;
  size_t len, tenant;
  if (mqtt_topic_parse(addr->text, b->prefixes, b->tenant_count, &tenant, &out->iface, &p,
                       &len) != 0)
    return false;
  out->tenant = &b->tenants[tenant];
  memcpy(out->ep, p, len);
  out->ep[len] = 0;
  return true;
}

/* A devices entry is an MQTT device of a prefix when its mqtt_prefix names it; the topic's
 * endpoint is its endpoint name (8.2). */
static const gw_device_conf_t *mqtt_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr) {
  mqtt_addr_t a;
  if (!parse_addr((const mqtt_binding_t *)binding, addr, &a))
    return NULL;
  for (size_t i = 0; i < config->device_count; i++) {
    const gw_device_conf_t *d = &config->devices[i];
    if (d->mqtt_prefix && strcmp(d->mqtt_prefix, a.tenant->prefix) == 0 &&
        strcmp(d->endpoint, a.ep) == 0)
      return d;
  }
  return NULL;
}

/* bs topics go to the prefix's bootstrap server; rd topics to the device entry's upstream if
 * it names one, else to the prefix's. */
static const char *mqtt_upstream_name(const gw_binding_t *binding, const gw_baddr_t *addr,
                                      const gw_device_conf_t *conf) {
  mqtt_addr_t a;
  if (!parse_addr((const mqtt_binding_t *)binding, addr, &a))
    return NULL;
  if (a.iface == MQTT_CBOR_IFACE_BS)
    return a.tenant->bootstrap;
  return conf && conf->upstream ? NULL : a.tenant->upstream;
}

static void mqtt_forget(gw_binding_t *binding, const gw_baddr_t *addr) {
  mqtt_binding_t *b = (mqtt_binding_t *)binding;
  mqtt_endpoint_t *e = endpoint_find(b, addr->text);
  if (!e)
    return;
  e->location[0] = 0;
  endpoint_keep(b, e, false);
  for (size_t i = 0; i < MQTT_DOWNLINK_SLOTS; i++)
    if (e->downlink[i].used)
      downlink_unkeep(b, e, &e->downlink[i]);
  for (size_t i = 0; i < MQTT_OBSERVATION_SLOTS; i++)
    if (e->obs[i].used)
      observation_end(b, e, &e->obs[i]);
  memset(e->downlink, 0, sizeof(e->downlink));
  memset(e->obs, 0, sizeof(e->obs));
}

/* ---- what an earlier run kept (binding.h restore; the keys above "what survives a restart") */

static bool restore_endpoint(mqtt_endpoint_t *e, const uint8_t *v, size_t len) {
  if (len < 2 || len - 2 >= sizeof(e->location))
    return false;
  e->next_mid = e->mid_end = (uint16_t)get_be(v, 2); /* past every ID the last run may have used */
  memcpy(e->location, v + 2, len - 2);
  e->location[len - 2] = 0;
  return true;
}

/* A request of the last run, answered or not: only its ID matters now, for a copy the broker
 * delivers again. The ring goes on after the newest. */
static bool restore_uplink(mqtt_endpoint_t *e, uint64_t slot, const uint8_t *v, size_t len) {
  if (slot >= MQTT_UPLINK_SLOTS || len != 11)
    return false;
  mqtt_uplink_t *u = &e->uplink[slot];
  *u = (mqtt_uplink_t){.used = true, .answered = true, .token = get_be(v, 8),
                       .op = get_be(v + 8, 1), .mid = (uint16_t)get_be(v + 9, 2)};
  const mqtt_uplink_t *newest =
      &e->uplink[(e->uplink_next + MQTT_UPLINK_SLOTS - 1) % MQTT_UPLINK_SLOTS];
  if (!newest->used || newest == u || (int16_t)(u->mid - newest->mid) > 0)
    e->uplink_next = (size_t)(slot + 1) % MQTT_UPLINK_SLOTS;
  return true;
}

/* An observation by its MQTT token: the one restored already, else a new one. */
static mqtt_observation_t *restore_observation_slot(mqtt_endpoint_t *e, uint64_t token) {
  mqtt_observation_t *o = observation_by_token(e, token);
  if (o)
    return o;
  o = observation_slot(e);
  if (o)
    *o = (mqtt_observation_t){.used = true, .token = token,
                              .seq = (observe_clock() - 1) & OBSERVE_MASK};
  return o;
}

static bool restore_downlink(mqtt_endpoint_t *e, uint64_t slot, const uint8_t *v, size_t len) {
  if (slot >= MQTT_DOWNLINK_SLOTS || len < 12 || v[11] > GW_COAP_MAX_TOKEN ||
      len != 12u + v[11])
    return false;
  mqtt_downlink_t *d = &e->downlink[slot];
  *d = (mqtt_downlink_t){.used = true, .token = get_be(v, 8), .op = get_be(v + 8, 1),
                         .mid = (uint16_t)get_be(v + 9, 2), .coap_token_len = v[11]};
  memcpy(d->coap_token, v + 12, d->coap_token_len);
  if (d->op != MQTT_CBOR_OP_OBSERVE && d->op != MQTT_CBOR_OP_OBSERVE_COMPOSITE)
    return true;
  /* an Observe waiting for the device's result: its observation, not established yet */
  mqtt_observation_t *o = restore_observation_slot(e, d->token);
  if (o && !o->established) {
    o->coap_token_len = d->coap_token_len;
    memcpy(o->coap_token, d->coap_token, d->coap_token_len);
  }
  return true;
}

static bool restore_established(mqtt_endpoint_t *e, uint64_t token, const uint8_t *v,
                                size_t len) {
  if (len < 1 || v[0] > GW_COAP_MAX_TOKEN || len != 1u + v[0])
    return false;
  mqtt_observation_t *o = restore_observation_slot(e, token);
  if (!o)
    return false;
  o->established = true;
  o->coap_token_len = v[0];
  memcpy(o->coap_token, v + 1, v[0]);
  return true;
}

static bool restore_held(mqtt_binding_t *b, mqtt_endpoint_t *e, uint64_t seq, const uint8_t *v,
                         size_t len) {
  mqtt_held_t *h = len <= MQTT_PUBLISH_MAX ? malloc(sizeof(*h) + len) : NULL;
  if (!h)
    return false;
  *h = (mqtt_held_t){.seq = seq, .len = len};
  memcpy(h->cbor, v, len);
  held_append(e, h);
  if (seq >= b->next_held_seq)
    b->next_held_seq = seq + 1;
  holding_add(b, e);
  release_within(b, 0);
  return true;
}

/* Published by the last run and not acknowledged by the broker, as far as it knew: published
 * again, first of all (the client is not connected yet), under its tag. */
static bool restore_publish(mqtt_binding_t *b, const mqtt_endpoint_t *e, uint64_t tag,
                            const uint8_t *v, size_t len) {
  if (!b->keeps_publishes || tag == 0 ||
      mqtt_client_publish_tagged(b->client, e->topic.text, v, len, tag) != GW_OK)
    return false;
  if (tag >= b->next_publish_tag)
    b->next_publish_tag = tag + 1;
  b->metrics.publishes_restored++;
  GW_INFO(MOD, "%s: a publish of the last run the broker may not have had is published again",
          e->topic.text);
  return true;
}

/* Splits "KIND:SLOT:TOPIC"; SLOT is hex, possibly empty. */
static bool split_key(const char *key, char kind[8], uint64_t *out_slot, const char **out_topic) {
  size_t n = strcspn(key, ":");
  if (n == 0 || n >= 8 || key[n] != ':')
    return false;
  memcpy(kind, key, n);
  kind[n] = 0;
  const char *slot = key + n + 1;
  char *end;
  *out_slot = *slot == ':' ? 0 : strtoull(slot, &end, 16);
  if (*slot != ':' && (end == slot || *end != ':'))
    return false;
  *out_topic = slot + strcspn(slot, ":") + 1;
  return true;
}

static void mqtt_restore(gw_binding_t *binding, const char *key, const void *value, size_t len) {
  mqtt_binding_t *b = (mqtt_binding_t *)binding;
  char kind[8];
  uint64_t slot;
  const char *topic, *why = NULL;
  bool bad_topic = false, kept = false;
  mqtt_endpoint_t *e = split_key(key, kind, &slot, &topic)
                           ? endpoint_of_topic(b, topic, &bad_topic, &why)
                           : NULL;
  if (e && strcmp(kind, "ep") == 0)
    kept = restore_endpoint(e, value, len);
  else if (e && strcmp(kind, "up") == 0)
    kept = restore_uplink(e, slot, value, len);
  else if (e && strcmp(kind, "down") == 0)
    kept = restore_downlink(e, slot, value, len);
  else if (e && strcmp(kind, "obs") == 0)
    kept = restore_established(e, slot, value, len);
  else if (e && strcmp(kind, "held") == 0)
    kept = restore_held(b, e, slot, value, len);
  else if (e && strcmp(kind, "pub") == 0)
    kept = restore_publish(b, e, slot, value, len);
  if (kept)
    return;
  GW_NOTICE(MOD, "state %s of the last run dropped: %s", key, why ? why : "not understood");
  unkeep(b, key);
}

static size_t mqtt_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  const mqtt_binding_t *b = (const mqtt_binding_t *)binding;
  size_t used = 0;
#define APPEND(...) gw_appendf(out, out_size, &used, __VA_ARGS__)
#define MQTT_METRIC_TEXT(name, help) \
  gw_append_counter(out, out_size, &used, "mqtt", #name, help, b->metrics.name);
  MQTT_METRICS(MQTT_METRIC_TEXT)
  const mqtt_client_status_t *st = mqtt_client_status(b->client);
  APPEND("lwm2m_gw_mqtt_connected %d\n", st->connected);
  APPEND("lwm2m_gw_mqtt_reconnects_total %llu\n", (unsigned long long)st->reconnects);
  APPEND("lwm2m_gw_mqtt_publishes_acknowledged_total %llu\n", (unsigned long long)st->published);
  APPEND("lwm2m_gw_mqtt_publishes_dropped_total %llu\n", (unsigned long long)st->dropped);
  APPEND("lwm2m_gw_mqtt_redelivered_total %llu\n", (unsigned long long)st->redelivered);
  APPEND("lwm2m_gw_mqtt_session_present %d\n", st->session_present);
  APPEND("lwm2m_gw_mqtt_sessions_lost_total %llu\n", (unsigned long long)st->sessions_lost);
  APPEND("lwm2m_gw_mqtt_endpoints %zu\n", b->endpoint_count);
#undef MQTT_METRIC_TEXT
#undef APPEND
  return used;
}

const gw_binding_ops_t gw_mqtt_binding = {
    .name = "mqtt",
    .enabled = mqtt_enabled,
    .create = mqtt_create,
    .start = mqtt_start,
    .send = mqtt_send,
    .stop = mqtt_stop,
    .free = mqtt_free,
    .policy = mqtt_policy,
    .lookup_device = mqtt_lookup,
    .forget_device = mqtt_forget,
    .upstream_name = mqtt_upstream_name,
    .restore = mqtt_restore,
    .format_metrics = mqtt_format_metrics,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_mqtt_binding; }
