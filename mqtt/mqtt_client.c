/* lwm2m-gw: MQTT client joined to the event loop (see mqtt_client.h).
 *
 * Threads: Paho's callbacks (its send/receive threads) only copy what they were told into
 * `events` under `lock` and write `efd`. Everything else, including every field but `events`,
 * belongs to the loop thread. Paho's own automatic reconnect is not used: the backoff is a loop
 * timer, so the client's state, its subscriptions and its outgoing queue change in one thread.
 *
 * A received message is the exception: Paho acknowledges a QoS 1 PUBLISH (PUBACK) when the
 * message-arrived callback returns (Paho 1.3.12 MQTTProtocol_handlePublishes), so the callback
 * waits until the message was handed to on_message, which keeps it (the gateway commits it to
 * its state): a process killed in between has not acknowledged it, and the broker delivers it
 * again (MQTT 3.1.1 4.4). See "the loop lends itself" below for why that cannot deadlock.
 *
 * Session (MQTT 3.1.1 3.1.2.4, 4.4; MQTT 5 3.1.2.4, 3.1.2.11.2): the client connects with clean
 * session / clean start off, so the broker keeps its subscriptions and queues QoS 1/2 messages
 * for it while it is away. A publish handed to Paho stays Paho's until Paho reports it: on a
 * resumed session Paho sends it again with DUP and reports the PUBACK; when the session is gone
 * (the broker kept none, or clean session) Paho fails it with "incomplete" and it goes back into
 * our queue, in its place. Paho keeps that state in memory only (MQTTCLIENT_PERSISTENCE_NONE):
 * see mqtt/README.md for why not in files. */
#include "mqtt_client.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"

#define MOD "mqtt"
#define DEFAULT_KEEPALIVE_S 30
#define DEFAULT_RECONNECT_MIN_MS 1000u
#define DEFAULT_RECONNECT_MAX_MS 60000u
#define DEFAULT_CONNECT_TIMEOUT_S 10u
#define DEFAULT_MAX_QUEUED 1000u
#define DEFAULT_SESSION_EXPIRY_S 86400u
/* Publishes handed to Paho and not yet acknowledged; more wait in our own queue, so a broker
 * that stops acknowledging cannot make Paho's command queue grow without bound. */
#define MAX_IN_FLIGHT 100u
#define FREE_DISCONNECT_MS 1000

typedef enum {
  EV_CONNECTED,
  EV_CONNECT_FAILED,
  EV_LOST,
  EV_MESSAGE,
  EV_SUBSCRIBED,
  EV_SUBSCRIBE_FAILED,
  EV_PUBLISHED,
  EV_PUBLISH_FAILED
} mqtt_event_kind_t;

typedef struct mqtt_event {
  struct mqtt_event *next;
  mqtt_event_kind_t kind;
  int token;
  int code; /* Paho return code or MQTT reason code; EV_CONNECTED: session present */
  bool dup; /* EV_MESSAGE: DUP flag */
  char *topic;
  uint8_t *payload;
  size_t len;
} mqtt_event_t;

/* One publish owned by the client: waiting in `outgoing` or handed to Paho in `in_flight`. */
typedef struct outgoing_msg {
  struct outgoing_msg *next;
  uint64_t seq; /* publish order, kept when Paho gives a message back */
  uint64_t tag; /* the caller's, for on_published; 0: none */
  int token;    /* Paho's token while in flight */
  char *topic;
  uint8_t *payload;
  size_t len;
} outgoing_msg_t;

typedef struct {
  outgoing_msg_t *head, *tail;
  size_t count;
} msg_list_t;

/* A topic filter the client keeps subscribed. */
typedef struct {
  char *filter;
  bool in_session; /* acknowledged (SUBACK) in the session the broker holds for us */
  int token;       /* of the SUBSCRIBE carrying it while not in_session; 0: none */
  bool added_connected; /* added while connected: subscribed on its own at the next turn */
} subscription_t;

typedef enum {
  STATE_IDLE,        /* not started */
  STATE_CONNECTING,  /* MQTTAsync_connect issued */
  STATE_SUBSCRIBING, /* connected, re-making subscriptions */
  STATE_CONNECTED,
  STATE_BACKOFF /* waiting for reconnect_timer */
} mqtt_state_t;

struct mqtt_client {
  gw_loop_t *loop;
  MQTTAsync paho;
  mqtt_client_callbacks_t cb;

  char *uri, *client_id, *username, *password, *ca_file, *cert_file, *key_file;
  uint16_t broker_port; /* from uri, for disable_nagle() */
  bool tls;
  int version; /* 4 or 5 */
  int keepalive_s, qos;
  uint32_t reconnect_min_ms, reconnect_max_ms, connect_timeout_s, max_queued;
  uint32_t session_expiry_s; /* 0: clean session */

  int efd;
  bool fd_added;
  pthread_mutex_t lock; /* guards events only */
  mqtt_event_t *events_head, *events_tail;
  bool flush_wanted; /* publishes or subscriptions wait for the loop's next turn */

  /* A message Paho's receive thread waits with until it was handed to on_message (guarded by
   * gate->lock, see hand_over()). */
  struct loop_gate *gate;
  mqtt_event_t *arrival;
  enum { ARRIVAL_POSTED, ARRIVAL_TAKEN, ARRIVAL_DONE } arrival_state;
  bool closing; /* mqtt_client_free() began: a message arriving now is not handed on */

  mqtt_state_t state;
  bool ever_connected;
  bool paho_lost_publish; /* Paho freed a publish it keeps for resending: renew it */
  uint32_t backoff_ms;
  gw_timer_t reconnect_timer;
  int subscribe_token; /* token of the subscribeMany of the current connection */
  atomic_size_t nsubs_sent; /* filters in that subscribeMany (read on Paho's thread) */

  subscription_t *subs;
  size_t nsubs, subs_cap;

  msg_list_t outgoing, in_flight;
  uint64_t next_seq;
  mqtt_client_status_t status;
};

static void disable_nagle(const mqtt_client_t *c);
static void wake_loop(mqtt_client_t *c);

/* ---- helpers --------------------------------------------------------------------------------- */


static void list_push_tail(msg_list_t *l, outgoing_msg_t *m) {
  m->next = NULL;
  if (l->tail)
    l->tail->next = m;
  else
    l->head = m;
  l->tail = m;
  l->count++;
}

static void list_push_head(msg_list_t *l, outgoing_msg_t *m) {
  m->next = l->head;
  l->head = m;
  if (!l->tail)
    l->tail = m;
  l->count++;
}

/* Inserts m before the first message published after it. */
static void list_insert_in_order(msg_list_t *l, outgoing_msg_t *m) {
  outgoing_msg_t *prev = NULL, *next = l->head;
  for (; next && next->seq < m->seq; prev = next, next = next->next)
    ;
  m->next = next;
  if (prev)
    prev->next = m;
  else
    l->head = m;
  if (!next)
    l->tail = m;
  l->count++;
}

static outgoing_msg_t *list_pop_head(msg_list_t *l) {
  outgoing_msg_t *m = l->head;
  if (m) {
    l->head = m->next;
    if (!l->head)
      l->tail = NULL;
    l->count--;
    m->next = NULL;
  }
  return m;
}

static outgoing_msg_t *list_take_token(msg_list_t *l, int token) {
  outgoing_msg_t *prev = NULL;
  for (outgoing_msg_t *m = l->head; m; prev = m, m = m->next) {
    if (m->token != token)
      continue;
    if (prev)
      prev->next = m->next;
    else
      l->head = m->next;
    if (l->tail == m)
      l->tail = prev;
    l->count--;
    m->next = NULL;
    return m;
  }
  return NULL;
}

static void msg_free(outgoing_msg_t *m) {
  if (m) {
    free(m->topic);
    free(m->payload);
    free(m);
  }
}

static size_t list_free(msg_list_t *l) {
  size_t n = 0;
  for (outgoing_msg_t *m; (m = list_pop_head(l)) != NULL; n++)
    msg_free(m);
  return n;
}

static void event_free(mqtt_event_t *e) {
  if (e) {
    free(e->topic);
    free(e->payload);
    free(e);
  }
}

/* ---- Paho's threads: copy, queue, wake the loop ------------------------------------------------ */

static void post_event(mqtt_client_t *c, mqtt_event_t *e) {
  pthread_mutex_lock(&c->lock);
  if (c->events_tail)
    c->events_tail->next = e;
  else
    c->events_head = e;
  c->events_tail = e;
  pthread_mutex_unlock(&c->lock);
  wake_loop(c);
}

static void post_simple(void *context, mqtt_event_kind_t kind, int token, int code) {
  mqtt_event_t *e = calloc(1, sizeof *e);
  if (!e) {
    /* Nothing safe to do on Paho's thread; a lost connect/ack event is recovered by keep-alive. */
    GW_ERR(MOD, "out of memory, MQTT event %d lost", (int)kind);
    return;
  }
  e->kind = kind;
  e->token = token;
  e->code = code;
  post_event(context, e);
}

static void paho_connection_lost(void *context, char *cause) {
  GW_WARN(MOD, "connection lost%s%s", cause ? ": " : "", cause ? cause : "");
  post_simple(context, EV_LOST, 0, 0);
}

/* ---- the loop lends itself to Paho's receive thread ---------------------------------------------
 * Paho 1.3.12 calls the message-arrived callback on its receive thread holding its global mutex
 * (MQTTAsync_cycle), and sends the PUBACK of a QoS 1 message when the callback returns. So the
 * callback waits until the message was handed to on_message. Meanwhile the loop thread may call
 * Paho itself (a publish, a subscribe: MQTTAsync_assignMsgId takes that same mutex), and would
 * wait for the receive thread, which waits for it. To break that cycle, the loop thread marks
 * each of its Paho calls (paho_enter / paho_leave): while it is inside one, nothing it runs is
 * half done (it calls Paho only from its own top-level handlers, never from on_message), and the
 * receive thread runs on_message itself, in the loop thread's place; paho_leave waits until it
 * is done. So on_message runs either on the loop thread or on the receive thread while the loop
 * thread is parked in Paho: never both at once, and never while anything of the loop is half
 * done. A gate is per loop, shared by its clients (one receive thread serves every Paho client
 * of the process). */
typedef struct loop_gate {
  struct loop_gate *next;
  gw_loop_t *loop;
  unsigned users;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  unsigned in_paho; /* the loop thread is inside a Paho call */
  bool lent;        /* the receive thread runs on_message in the loop thread's place */
} loop_gate_t;

static pthread_mutex_t gates_lock = PTHREAD_MUTEX_INITIALIZER;
static loop_gate_t *gates;

static loop_gate_t *gate_get(gw_loop_t *loop) {
  pthread_mutex_lock(&gates_lock);
  loop_gate_t *g = gates;
  while (g && g->loop != loop)
    g = g->next;
  if (!g && (g = calloc(1, sizeof *g)) != NULL) {
    g->loop = loop;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->changed, NULL);
    g->next = gates;
    gates = g;
  }
  if (g)
    g->users++;
  pthread_mutex_unlock(&gates_lock);
  return g;
}

static void gate_put(loop_gate_t *g) {
  if (!g)
    return;
  pthread_mutex_lock(&gates_lock);
  if (--g->users == 0) {
    loop_gate_t **at = &gates;
    while (*at != g)
      at = &(*at)->next;
    *at = g->next;
    pthread_cond_destroy(&g->changed);
    pthread_mutex_destroy(&g->lock);
    free(g);
  }
  pthread_mutex_unlock(&gates_lock);
}

/* Around every Paho call of the loop thread. */
static void paho_enter(mqtt_client_t *c) {
  pthread_mutex_lock(&c->gate->lock);
  c->gate->in_paho++;
  pthread_cond_broadcast(&c->gate->changed);
  pthread_mutex_unlock(&c->gate->lock);
}

static void paho_leave(mqtt_client_t *c) {
  pthread_mutex_lock(&c->gate->lock);
  while (c->gate->lent)
    pthread_cond_wait(&c->gate->changed, &c->gate->lock);
  c->gate->in_paho--;
  pthread_mutex_unlock(&c->gate->lock);
}

static void wake_loop(mqtt_client_t *c) {
  uint64_t one = 1;
  /* EAGAIN only when the counter is near overflow: the loop is awake anyway. */
  if (write(c->efd, &one, sizeof one) < 0 && errno != EAGAIN)
    GW_ERR(MOD, "eventfd write: %s", strerror(errno));
}

static void deliver(mqtt_client_t *c, const mqtt_event_t *e) {
  c->status.received++;
  if (e->dup)
    c->status.redelivered++;
  if (c->cb.on_message)
    c->cb.on_message(c->cb.arg, e->topic, e->payload, e->len, e->dup);
}

/* On the receive thread: returns once e was handed to on_message, by the loop thread or, while
 * that one is inside Paho, by this one. */
static void hand_over(mqtt_client_t *c, mqtt_event_t *e) {
  loop_gate_t *g = c->gate;
  pthread_mutex_lock(&g->lock);
  bool closing = c->closing;
  if (!closing) {
    c->arrival = e;
    c->arrival_state = ARRIVAL_POSTED;
    wake_loop(c);
  }
  while (!closing && c->arrival_state != ARRIVAL_DONE) {
    if (c->arrival_state == ARRIVAL_POSTED && g->in_paho && !g->lent) {
      c->arrival_state = ARRIVAL_TAKEN;
      g->lent = true;
      pthread_mutex_unlock(&g->lock);
      deliver(c, e);
      pthread_mutex_lock(&g->lock);
      g->lent = false;
      c->arrival_state = ARRIVAL_DONE;
      pthread_cond_broadcast(&g->changed);
      break;
    }
    pthread_cond_wait(&g->changed, &g->lock);
    closing = c->closing && c->arrival_state == ARRIVAL_POSTED;
  }
  c->arrival = NULL;
  pthread_mutex_unlock(&g->lock);
  if (closing)
    GW_WARN(MOD, "%s: a message on %s arrived while the client stops: acknowledged to the "
                 "broker, not handled", c->uri, e->topic);
}

/* On the loop thread: hands over the message the receive thread waits with, if any. */
static void take_arrival(mqtt_client_t *c) {
  loop_gate_t *g = c->gate;
  pthread_mutex_lock(&g->lock);
  mqtt_event_t *e = c->arrival && c->arrival_state == ARRIVAL_POSTED ? c->arrival : NULL;
  if (e)
    c->arrival_state = ARRIVAL_TAKEN;
  pthread_mutex_unlock(&g->lock);
  if (!e)
    return;
  deliver(c, e);
  pthread_mutex_lock(&g->lock);
  c->arrival_state = ARRIVAL_DONE;
  pthread_cond_broadcast(&g->changed);
  pthread_mutex_unlock(&g->lock);
}

static mqtt_event_t *copy_message(const char *topic, int topic_len, const MQTTAsync_message *m) {
  size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
  size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
  mqtt_event_t *e = calloc(1, sizeof *e);
  char *t = malloc(tlen + 1);
  uint8_t *p = malloc(plen ? plen : 1);
  if (!e || !t || !p) {
    free(e);
    free(t);
    free(p);
    return NULL;
  }
  memcpy(t, topic, tlen);
  t[tlen] = '\0';
  if (plen)
    memcpy(p, m->payload, plen);
  e->kind = EV_MESSAGE;
  e->topic = t;
  e->payload = p;
  e->len = plen;
  e->dup = m->dup != 0;
  return e;
}

static int paho_message_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m) {
  mqtt_client_t *c = context;
  mqtt_event_t *e = copy_message(topic, topic_len, m);
  if (!e) /* Paho keeps it and offers it again later (acknowledged already, in its memory) */
    return 0;
  MQTTAsync_freeMessage(&m);
  MQTTAsync_free(topic);
  hand_over(c, e);
  event_free(e);
  return 1; /* now Paho sends the PUBACK */
}

static void paho_connect_ok(void *context, MQTTAsync_successData *r) {
  post_simple(context, EV_CONNECTED, r ? r->token : 0, r ? r->alt.connect.sessionPresent : 0);
}
static void paho_connect_fail(void *context, MQTTAsync_failureData *r) {
  post_simple(context, EV_CONNECT_FAILED, r ? r->token : 0, r ? r->code : -1);
}
static void paho_connect_ok5(void *context, MQTTAsync_successData5 *r) {
  post_simple(context, EV_CONNECTED, r ? r->token : 0, r ? r->alt.connect.sessionPresent : 0);
}
static void paho_connect_fail5(void *context, MQTTAsync_failureData5 *r) {
  post_simple(context, EV_CONNECT_FAILED, r ? r->token : 0,
              r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

/* MQTT 3.1.1 SUBACK return code 0x80 and MQTT 5 reason codes >= 0x80 mean refused. */
static void paho_subscribe_ok(void *context, MQTTAsync_successData *r) {
  int code = 0;
  if (r && r->alt.qos == 0x80)
    code = 0x80;
  post_simple(context, code ? EV_SUBSCRIBE_FAILED : EV_SUBSCRIBED, r ? r->token : 0, code);
}
static void paho_subscribe_many_ok(void *context, MQTTAsync_successData *r) {
  /* Paho fills alt.qos when the SUBACK has one return code, alt.qosList when more. */
  size_t n = atomic_load(&((mqtt_client_t *)context)->nsubs_sent);
  int code = 0;
  if (r && n == 1 && r->alt.qos == 0x80)
    code = 0x80;
  if (r && n > 1 && r->alt.qosList)
    for (size_t i = 0; i < n; i++)
      if (r->alt.qosList[i] == 0x80)
        code = 0x80;
  post_simple(context, code ? EV_SUBSCRIBE_FAILED : EV_SUBSCRIBED, r ? r->token : 0, code);
}
static void paho_subscribe_fail(void *context, MQTTAsync_failureData *r) {
  post_simple(context, EV_SUBSCRIBE_FAILED, r ? r->token : 0, r ? r->code : -1);
}
static void paho_subscribe_ok5(void *context, MQTTAsync_successData5 *r) {
  int code = r ? (int)r->reasonCode : 0;
  post_simple(context, code >= 0x80 ? EV_SUBSCRIBE_FAILED : EV_SUBSCRIBED, r ? r->token : 0,
              code);
}
/* alt.sub is filled for a SUBACK with more than one reason code; one is in reasonCode. */
static void paho_subscribe_many_ok5(void *context, MQTTAsync_successData5 *r) {
  size_t n = atomic_load(&((mqtt_client_t *)context)->nsubs_sent);
  int code = r ? (int)r->reasonCode : 0;
  if (r && n > 1 && r->alt.sub.reasonCodes)
    for (int i = 0; i < r->alt.sub.reasonCodeCount; i++)
      if ((int)r->alt.sub.reasonCodes[i] >= 0x80)
        code = (int)r->alt.sub.reasonCodes[i];
  post_simple(context, code >= 0x80 ? EV_SUBSCRIBE_FAILED : EV_SUBSCRIBED, r ? r->token : 0,
              code);
}
static void paho_subscribe_fail5(void *context, MQTTAsync_failureData5 *r) {
  post_simple(context, EV_SUBSCRIBE_FAILED, r ? r->token : 0,
              r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

static void paho_publish_ok(void *context, MQTTAsync_successData *r) {
  post_simple(context, EV_PUBLISHED, r ? r->token : 0, 0);
}
static void paho_publish_fail(void *context, MQTTAsync_failureData *r) {
  post_simple(context, EV_PUBLISH_FAILED, r ? r->token : 0, r ? r->code : -1);
}
static void paho_publish_ok5(void *context, MQTTAsync_successData5 *r) {
  int code = r ? (int)r->reasonCode : 0;
  post_simple(context, code >= 0x80 ? EV_PUBLISH_FAILED : EV_PUBLISHED, r ? r->token : 0, code);
}
static void paho_publish_fail5(void *context, MQTTAsync_failureData5 *r) {
  post_simple(context, EV_PUBLISH_FAILED, r ? r->token : 0,
              r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

/* What a failed connect means to an operator: the CONNACK return code (MQTT 3.1.1 3.2.2.3),
 * the MQTT 5 reason code (3.2.2.2), or Paho's own (negative) error. */
static const char *connect_failure_reason(int code) {
  switch (code) {
  case 1: case 0x84: return "refused: unacceptable protocol version";
  case 2: case 0x85: return "refused: client identifier rejected";
  case 3: case 0x88: return "refused: server unavailable";
  case 4: case 0x86: return "refused: bad user name or password";
  case 5: case 0x87: return "refused: not authorised";
  case 0x8A: return "refused: banned";
  default: break;
  }
  if (code < 0)
    return MQTTAsync_strerror(code);
  return "refused by the broker";
}

/* Paho's log, routed into ours (set once per process; Paho's trace is global). Paho opens its
 * trace with a banner (version, OpenSSL build) between "=====" lines: not an error, skipped. */
static void paho_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message) {
  static atomic_bool in_banner;
  if (strncmp(message, "=====", 5) == 0) {
    atomic_store(&in_banner, !atomic_load(&in_banner));
    return;
  }
  if (atomic_load(&in_banner))
    return;
  /* Paho's heap check refusing to free, a second time, the topic and payload of a publish it had
   * freed already (see renew_paho(); with a clean session Paho's own cleanup meets them): the
   * double free does not happen. */
  if (strstr(message, "Failed to remove heap item")) {
    gw_log(GW_LOG_DEBUG, "paho", "%s", message);
    return;
  }
  gw_log(level >= MQTTASYNC_TRACE_SEVERE ? GW_LOG_ERR : GW_LOG_WARNING, "paho", "%s", message);
}
static void paho_trace_setup(void) {
  MQTTAsync_setTraceCallback(paho_trace);
  MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
}

/* ---- loop thread ------------------------------------------------------------------------------- */

static void do_connect(mqtt_client_t *c);

static void schedule_reconnect(mqtt_client_t *c) {
  c->state = STATE_BACKOFF;
  GW_INFO(MOD, "%s: reconnecting in %u ms", c->uri, c->backoff_ms);
  gw_timer_start(c->loop, &c->reconnect_timer, c->backoff_ms);
  uint64_t next = (uint64_t)c->backoff_ms * 2;
  c->backoff_ms = next > c->reconnect_max_ms ? c->reconnect_max_ms : (uint32_t)next;
}

static void reconnect_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  mqtt_client_t *c = arg;
  if (c->state == STATE_BACKOFF)
    do_connect(c);
}

static void fill_response_options(const mqtt_client_t *c, MQTTAsync_responseOptions *o,
                                  MQTTAsync_onSuccess *ok, MQTTAsync_onFailure *fail,
                                  MQTTAsync_onSuccess5 *ok5, MQTTAsync_onFailure5 *fail5) {
  o->context = (void *)c;
  if (c->version == 5) {
    o->onSuccess5 = ok5;
    o->onFailure5 = fail5;
  } else {
    o->onSuccess = ok;
    o->onFailure = fail;
  }
}

/* A Paho client for c (not connected). Returns Paho's code. */
static int paho_create(mqtt_client_t *c, MQTTAsync *out_paho) {
  MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
  co.MQTTVersion = c->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
  paho_enter(c);
  int rc = MQTTAsync_createWithOptions(out_paho, c->uri, c->client_id,
                                       MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
  if (rc != MQTTASYNC_SUCCESS)
    *out_paho = NULL;
  else if ((rc = MQTTAsync_setCallbacks(*out_paho, c, paho_connection_lost, paho_message_arrived,
                                        NULL)) != MQTTASYNC_SUCCESS)
    MQTTAsync_destroy(out_paho);
  paho_leave(c);
  return rc;
}

static void handle_event(mqtt_client_t *c, mqtt_event_t *e);

/* Takes the queued events; the caller handles or frees them. */
static mqtt_event_t *take_events(mqtt_client_t *c) {
  pthread_mutex_lock(&c->lock);
  mqtt_event_t *e = c->events_head;
  c->events_head = c->events_tail = NULL;
  pthread_mutex_unlock(&c->lock);
  return e;
}

static void handle_events(mqtt_client_t *c) {
  for (mqtt_event_t *e = take_events(c), *next; e; e = next) {
    next = e->next;
    handle_event(c, e);
    event_free(e);
  }
}

/* A parked Paho client never connects again; this only satisfies MQTTAsync_setCallbacks. */
static int paho_parked_message(void *context, char *topic, int topic_len, MQTTAsync_message *m) {
  (void)context;
  (void)topic_len;
  MQTTAsync_freeMessage(&m);
  MQTTAsync_free(topic);
  return 1;
}

/* Paho 1.3.12 (MQTTAsync_processCommand): when writing a QoS 1/2 PUBLISH fails, Paho reports
 * the failure with token 0 and frees the message's topic and payload, but keeps the message for
 * resending (eclipse-paho/paho.mqtt.c issues 1310, 1592). A resumed session then sends freed
 * memory: the broker takes it for a malformed packet and disconnects, at every reconnect, or a
 * device gets garbage. Destroying that Paho client would free the two blocks a second time, and
 * by then they may belong to someone else. So the client is parked: it stays, idle and never
 * connected again (Paho touches a client's in-flight messages only while it is connected, or
 * when destroying it), a few kilobytes per such failure. A new one, under the same client id,
 * resumes the session the broker kept; Paho's in-flight copies are gone with the parked client
 * and ours go out again, in order (a duplicate is possible: at-least-once). */
static int renew_paho(mqtt_client_t *c) {
  static unsigned parked;
  MQTTAsync fresh;
  int rc = paho_create(c, &fresh);
  if (rc != MQTTASYNC_SUCCESS)
    return rc;
  paho_enter(c);
  rc = MQTTAsync_setCallbacks(c->paho, NULL, NULL, paho_parked_message, NULL);
  if (rc != MQTTASYNC_SUCCESS) /* not idle yet: try again at the next connect */
    MQTTAsync_destroy(&fresh);
  paho_leave(c);
  if (rc != MQTTASYNC_SUCCESS)
    return rc;
  /* What the old client reported still counts; it reports nothing any more. */
  handle_events(c);
  for (outgoing_msg_t *m; (m = list_pop_head(&c->in_flight)) != NULL;)
    list_insert_in_order(&c->outgoing, m);
  for (size_t i = 0; i < c->nsubs; i++)
    c->subs[i].token = 0;
  c->paho = fresh;
  c->paho_lost_publish = false;
  parked++;
  GW_NOTICE(MOD, "%s: new Paho client after a failed write (%u parked in this process); %zu "
                 "publishes to send again", c->uri, parked, c->outgoing.count);
  return MQTTASYNC_SUCCESS;
}

/* MQTT 3.1.1 3.1.2.4 / MQTT 5 3.1.2.4, 3.1.2.11.2: clean session (clean start) off keeps the
 * session at the broker, for session_expiry_s after a disconnect with MQTT 5. */
static void set_session(const mqtt_client_t *c, MQTTAsync_connectOptions *o,
                        MQTTProperties *props) {
  bool keep = c->session_expiry_s > 0;
  if (c->version != 5) {
    o->cleansession = !keep;
    return;
  }
  o->cleanstart = !keep;
  if (!keep)
    return;
  MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
                         .value.integer4 = c->session_expiry_s};
  if (MQTTProperties_add(props, &expiry) == 0)
    o->connectProperties = props;
  else
    GW_WARN(MOD, "%s: no memory for the Session Expiry Interval; the broker may drop the "
                 "session at disconnect", c->uri);
}

static void do_connect(mqtt_client_t *c) {
  if (c->paho_lost_publish && renew_paho(c) != MQTTASYNC_SUCCESS) {
    GW_ERR(MOD, "%s: no new Paho client; retrying", c->uri);
    schedule_reconnect(c);
    return;
  }
  MQTTAsync_connectOptions v3 = MQTTAsync_connectOptions_initializer;
  MQTTAsync_connectOptions v5 = MQTTAsync_connectOptions_initializer5;
  MQTTAsync_connectOptions *o = c->version == 5 ? &v5 : &v3;
  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  MQTTProperties props = MQTTProperties_initializer;
  if (c->version == 5) {
    o->MQTTVersion = MQTTVERSION_5;
    o->onSuccess5 = paho_connect_ok5;
    o->onFailure5 = paho_connect_fail5;
  } else {
    o->MQTTVersion = MQTTVERSION_3_1_1;
    o->onSuccess = paho_connect_ok;
    o->onFailure = paho_connect_fail;
  }
  set_session(c, o, &props);
  o->context = c;
  o->keepAliveInterval = c->keepalive_s;
  o->connectTimeout = (int)c->connect_timeout_s;
  o->automaticReconnect = 0;
  o->username = c->username;
  o->password = c->password;
  if (c->tls) {
    ssl.trustStore = c->ca_file;
    ssl.keyStore = c->cert_file;
    ssl.privateKey = c->key_file;
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1; /* host name check */
    o->ssl = &ssl;
  }
  c->state = STATE_CONNECTING;
  paho_enter(c);
  int rc = MQTTAsync_connect(c->paho, o); /* copies the properties */
  paho_leave(c);
  MQTTProperties_free(&props);
  if (rc != MQTTASYNC_SUCCESS) {
    GW_WARN(MOD, "%s: connect not started (paho %d)", c->uri, rc);
    schedule_reconnect(c);
  }
}

/* Returns the SUBSCRIBE's token, 0 when it was not sent. */
static int send_subscribe_one(mqtt_client_t *c, const char *filter) {
  MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
  fill_response_options(c, &o, paho_subscribe_ok, paho_subscribe_fail, paho_subscribe_ok5,
                        paho_subscribe_fail5);
  if (c->version == 5)
    o.subscribeOptions.noLocal = 1;
  paho_enter(c);
  int rc = MQTTAsync_subscribe(c->paho, filter, c->qos, &o);
  paho_leave(c);
  if (rc != MQTTASYNC_SUCCESS) {
    GW_WARN(MOD, "subscribe %s not sent (paho %d); made again on reconnect", filter, rc);
    return 0;
  }
  return o.token;
}

static void flush_outgoing(mqtt_client_t *c);

static void enter_connected(mqtt_client_t *c) {
  c->state = STATE_CONNECTED;
  c->status.connected = true;
  GW_INFO(MOD, "%s: connected as %s (%zu subscriptions, %s)", c->uri, c->client_id, c->nsubs,
          c->status.session_present ? "session resumed" : "new session");
  if (c->cb.on_state)
    c->cb.on_state(c->cb.arg, true);
  flush_outgoing(c);
}

/* CONNACK's session present flag (MQTT 3.1.1 3.2.2.2, MQTT 5 3.2.2.1.1). Without a session the
 * broker holds none of our subscriptions, and what it had queued for us is gone. */
static void note_session(mqtt_client_t *c, bool present) {
  bool had_session = c->ever_connected && c->session_expiry_s > 0;
  c->status.session_present = present;
  if (present)
    return;
  for (size_t i = 0; i < c->nsubs; i++)
    c->subs[i].in_session = false;
  if (had_session) {
    c->status.sessions_lost++;
    GW_WARN(MOD, "%s: the broker kept no session for %s (restarted without persistence, or the "
                 "session expired): what devices published while we were away is lost",
            c->uri, c->client_id);
  }
}

/* One SUBSCRIBE for filters[0..n); returns its token, 0 when it was not sent. */
static int send_subscribe_many(mqtt_client_t *c, char **filters, size_t n) {
  int *qos = calloc(n, sizeof *qos);
  MQTTSubscribe_options *opts = calloc(n, sizeof *opts);
  int rc = MQTTASYNC_FAILURE; /* out of memory */
  MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
  if (qos && opts) {
    MQTTSubscribe_options init = MQTTSubscribe_options_initializer;
    for (size_t i = 0; i < n; i++) {
      qos[i] = c->qos;
      opts[i] = init;
      opts[i].noLocal = 1; /* MQTT 5 3.8.3.1: never receive what we published ourselves */
    }
    fill_response_options(c, &o, paho_subscribe_many_ok, paho_subscribe_fail,
                          paho_subscribe_many_ok5, paho_subscribe_fail5);
    if (c->version == 5) {
      o.subscribeOptions.noLocal = 1; /* Paho takes this one when there is a single filter */
      o.subscribeOptionsCount = (int)n;
      o.subscribeOptionsList = opts;
    }
    atomic_store(&c->nsubs_sent, n);
    paho_enter(c);
    rc = MQTTAsync_subscribeMany(c->paho, (int)n, filters, qos, &o);
    paho_leave(c);
  }
  free(qos);
  free(opts);
  if (rc != MQTTASYNC_SUCCESS)
    GW_WARN(MOD, "%s: re-subscribe not sent (paho %d); reconnecting", c->uri, rc);
  return rc == MQTTASYNC_SUCCESS ? o.token : 0;
}

/* Subscribes to the filters the broker's session does not hold, in one SUBSCRIBE. A resumed
 * session keeps its subscriptions (MQTT 3.1.1 4.1), and the broker delivers what it queued for
 * us from CONNACK on, before any SUBACK: those messages reach on_message as they come. Making
 * such a subscription again is not harmless: the broker then re-sends the retained messages of
 * the filter (MQTT 3.1.1 3.8.4), and a retained LwM2M request would be relayed once more. */
static void subscribe_missing(mqtt_client_t *c) {
  char **filters = calloc(c->nsubs ? c->nsubs : 1, sizeof *filters);
  size_t n = 0;
  for (size_t i = 0; filters && i < c->nsubs; i++)
    if (!c->subs[i].in_session)
      filters[n++] = c->subs[i].filter;
  int token = n > 0 ? send_subscribe_many(c, filters, n) : 0;
  bool failed = !filters || (n > 0 && token == 0);
  free(filters);
  if (failed) {
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    paho_enter(c);
    MQTTAsync_disconnect(c->paho, &d);
    paho_leave(c);
    schedule_reconnect(c);
  } else if (n == 0) {
    enter_connected(c);
  } else {
    for (size_t i = 0; i < c->nsubs; i++) {
      if (c->subs[i].in_session)
        continue;
      c->subs[i].token = token;
      c->subs[i].added_connected = false;
    }
    c->state = STATE_SUBSCRIBING;
    c->subscribe_token = token;
  }
}

/* A SUBACK (or its failure) for the SUBSCRIBE with this token (0: Paho could not say which). */
static void subscription_answered(mqtt_client_t *c, int token, bool granted) {
  for (size_t i = 0; token != 0 && i < c->nsubs; i++) {
    if (c->subs[i].token != token)
      continue;
    c->subs[i].token = 0;
    c->subs[i].in_session = granted;
  }
}

static bool send_one(mqtt_client_t *c, outgoing_msg_t *m) {
  MQTTAsync_message pub = MQTTAsync_message_initializer;
  pub.payload = m->payload;
  pub.payloadlen = (int)m->len;
  pub.qos = c->qos;
  MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
  if (c->qos > 0)
    fill_response_options(c, &o, paho_publish_ok, paho_publish_fail, paho_publish_ok5,
                          paho_publish_fail5);
  paho_enter(c);
  int rc = MQTTAsync_sendMessage(c->paho, m->topic, &pub, &o);
  paho_leave(c);
  if (rc != MQTTASYNC_SUCCESS) {
    GW_DEBUG(MOD, "publish to %s not sent now (paho %d)", m->topic, rc);
    return false;
  }
  m->token = o.token;
  return true;
}

/* The publish is over: acknowledged (or written, QoS 0), or refused by the broker. */
static void publish_done(mqtt_client_t *c, outgoing_msg_t *m, bool delivered) {
  if (m->tag && c->cb.on_published)
    c->cb.on_published(c->cb.arg, m->topic, m->tag, delivered);
  msg_free(m);
}

static void flush_outgoing(mqtt_client_t *c) {
  while (c->state == STATE_CONNECTED && c->outgoing.head && c->in_flight.count < MAX_IN_FLIGHT) {
    outgoing_msg_t *m = list_pop_head(&c->outgoing);
    if (!send_one(c, m)) {
      list_push_head(&c->outgoing, m); /* retried after the next ack or connect */
      return;
    }
    if (c->qos > 0) {
      list_push_tail(&c->in_flight, m);
    } else {
      c->status.published++;
      publish_done(c, m, true);
    }
  }
}

/* Paho's report on a publish it had: acknowledged, refused by the broker (dropped), or given
 * back because its connection or session ended first (sent again, in its place in the queue). */
static void publish_reported(mqtt_client_t *c, const mqtt_event_t *e) {
  if (e->token == 0) { /* see renew_paho() */
    GW_WARN(MOD, "%s: a publish could not be written and Paho lost track of it; it is sent "
                 "again after the reconnect", c->uri);
    c->paho_lost_publish = true;
    return;
  }
  outgoing_msg_t *m = list_take_token(&c->in_flight, e->token);
  if (!m)
    return;
  if (e->kind == EV_PUBLISHED) {
    c->status.published++;
    publish_done(c, m, true);
  } else if (e->code >= 0x80) {
    GW_WARN(MOD, "broker refused publish to %s (reason %d); dropped", m->topic, e->code);
    c->status.dropped++;
    publish_done(c, m, false);
  } else {
    GW_DEBUG(MOD, "publish to %s given back (paho %d); sent again", m->topic, e->code);
    list_insert_in_order(&c->outgoing, m);
    return; /* connection trouble: flushed after the next connect */
  }
  flush_outgoing(c);
}

static void handle_event(mqtt_client_t *c, mqtt_event_t *e) {
  switch (e->kind) {
  case EV_CONNECTED:
    if (c->state != STATE_CONNECTING)
      break;
    if (c->ever_connected)
      c->status.reconnects++;
    note_session(c, e->code != 0);
    c->ever_connected = true;
    c->backoff_ms = c->reconnect_min_ms;
    disable_nagle(c);
    subscribe_missing(c);
    break;
  case EV_CONNECT_FAILED:
    if (c->state != STATE_CONNECTING)
      break;
    GW_WARN(MOD, "%s: connect failed: %s (%d)", c->uri, connect_failure_reason(e->code),
            e->code);
    schedule_reconnect(c);
    break;
  case EV_LOST: {
    if (c->state != STATE_SUBSCRIBING && c->state != STATE_CONNECTED)
      break;
    /* Publishes in flight stay Paho's: see the session note at the top. */
    bool was_connected = c->status.connected;
    c->status.connected = false;
    schedule_reconnect(c);
    if (was_connected && c->cb.on_state)
      c->cb.on_state(c->cb.arg, false);
    break;
  }
  case EV_MESSAGE: /* handed over directly: take_arrival() */
    break;
  case EV_SUBSCRIBED:
  case EV_SUBSCRIBE_FAILED:
    if (e->kind == EV_SUBSCRIBE_FAILED)
      GW_ERR(MOD, "%s: subscription refused (%d)", c->uri, e->code);
    subscription_answered(c, e->token, e->kind == EV_SUBSCRIBED);
    /* A refused filter does not keep the others from working: report connected anyway. */
    if (c->state == STATE_SUBSCRIBING && e->token == c->subscribe_token)
      enter_connected(c);
    break;
  case EV_PUBLISHED:
  case EV_PUBLISH_FAILED:
    publish_reported(c, e);
    break;
  }
}

/* Filters added while connected (mqtt_client_subscribe), each in a SUBSCRIBE of its own. */
static void subscribe_new(mqtt_client_t *c) {
  for (size_t i = 0; i < c->nsubs; i++) {
    subscription_t *sub = &c->subs[i];
    if (!sub->added_connected)
      continue;
    sub->added_connected = false;
    if (c->state == STATE_CONNECTED || c->state == STATE_SUBSCRIBING)
      sub->token = send_subscribe_one(c, sub->filter);
  }
}

static void eventfd_readable(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)events;
  mqtt_client_t *c = arg;
  uint64_t n;
  if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
    GW_ERR(MOD, "eventfd read: %s", strerror(errno));
  take_arrival(c);
  handle_events(c);
  if (c->flush_wanted) {
    c->flush_wanted = false;
    subscribe_new(c);
    flush_outgoing(c);
  }
}

/* Publishes and subscriptions made from on_message (which may run while the loop thread is
 * inside Paho, see hand_over()) go to Paho from the loop's next turn, never from there. */
static void flush_later(mqtt_client_t *c) {
  if (c->flush_wanted)
    return;
  c->flush_wanted = true;
  wake_loop(c);
}

/* ---- API --------------------------------------------------------------------------------------- */

void mqtt_client_conf_init(mqtt_client_conf_t *conf) {
  memset(conf, 0, sizeof *conf);
  conf->mqtt_version = 4;
  conf->keepalive_s = DEFAULT_KEEPALIVE_S;
  conf->qos = 1;
  conf->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
  conf->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
  conf->connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
  conf->max_queued = DEFAULT_MAX_QUEUED;
  conf->session_expiry_s = DEFAULT_SESSION_EXPIRY_S;
}

/* The TCP port of a broker URI: the one given, else the scheme's (MQTT 1883 / 8883,
 * WebSockets 80 / 443). */
static uint16_t uri_port(const char *uri, bool tls) {
  const char *host = strstr(uri, "://") + 3;
  size_t host_len = strcspn(host, "/");
  const char *colon = NULL;
  for (size_t i = 0; i < host_len; i++)
    if (host[i] == ':')
      colon = host + i;
    else if (host[i] == ']')
      colon = NULL; /* a colon inside [v6] is no port separator */
  if (colon)
    return (uint16_t)strtoul(colon + 1, NULL, 10);
  bool ws = strncasecmp(uri, "ws", 2) == 0;
  return ws ? (tls ? 443 : 80) : (tls ? 8883 : 1883);
}

/* Paho 1.3 never sets TCP_NODELAY and gives no access to its socket (eclipse-paho/paho.mqtt.c
 * issue 530): Nagle then holds a small publish until the broker acknowledges the previous write,
 * 40 ms with delayed ACKs, on every answer that follows a PUBACK. Set it on every TCP socket of
 * this process connected to the broker's port; a socket of another client to that port only
 * gets the same, harmless, option. Linux: the sockets are found in /proc/self/fd. */
static void disable_nagle(const mqtt_client_t *c) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return;
  int one = 1, set = 0;
  for (struct dirent *d; (d = readdir(dir)) != NULL;) {
    int fd = atoi(d->d_name);
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int type = 0;
    socklen_t type_len = sizeof(type);
    if (fd <= 2 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 ||
        type != SOCK_STREAM || getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
      continue;
    uint16_t port = peer.ss_family == AF_INET
                        ? ntohs(((struct sockaddr_in *)&peer)->sin_port)
                        : peer.ss_family == AF_INET6
                              ? ntohs(((struct sockaddr_in6 *)&peer)->sin6_port) : 0;
    if (port == c->broker_port &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
      set++;
  }
  closedir(dir);
  GW_DEBUG(MOD, "%s: TCP_NODELAY set on %d socket(s)", c->uri, set);
}

/* Returns whether uri has a scheme Paho speaks and a host; sets *tls. */
static bool uri_ok(const char *uri, bool *tls) {
  static const struct {
    const char *scheme;
    bool tls;
  } schemes[] = {{"tcp://", false}, {"mqtt://", false}, {"ws://", false},
                 {"ssl://", true},  {"mqtts://", true}, {"wss://", true}};
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t n = strlen(schemes[i].scheme);
    if (strncasecmp(uri, schemes[i].scheme, n) == 0) {
      *tls = schemes[i].tls;
      return uri[n] != '\0' && uri[n] != ':' && uri[n] != '/';
    }
  }
  return false;
}

int mqtt_client_new(gw_loop_t *loop, const mqtt_client_conf_t *conf,
                    const mqtt_client_callbacks_t *cb, mqtt_client_t **out_client) {
  static atomic_uint instances;
  static pthread_once_t trace_once = PTHREAD_ONCE_INIT;
  if (!out_client)
    return GW_ERR_INVAL;
  *out_client = NULL;
  bool tls = false;
  if (!loop || !conf || !conf->uri || !uri_ok(conf->uri, &tls)) {
    GW_ERR(MOD, "broker URI \"%s\": expected tcp://, mqtt://, ssl://, mqtts://, ws:// or wss:// "
                "and a host", conf && conf->uri ? conf->uri : "(none)");
    return GW_ERR_INVAL;
  }
  int version = conf->mqtt_version ? conf->mqtt_version : 4;
  if (version != 4 && version != 5) {
    GW_ERR(MOD, "mqtt_version %d: expected 4 (3.1.1) or 5", conf->mqtt_version);
    return GW_ERR_INVAL;
  }
  if (conf->qos < 0 || conf->qos > 2 || conf->keepalive_s < 0) {
    GW_ERR(MOD, "qos %d / keepalive %d out of range", conf->qos, conf->keepalive_s);
    return GW_ERR_INVAL;
  }
  pthread_once(&trace_once, paho_trace_setup);

  mqtt_client_t *c = calloc(1, sizeof *c);
  if (!c)
    return GW_ERR_NOMEM;
  c->loop = loop;
  c->efd = -1;
  if (cb)
    c->cb = *cb;
  pthread_mutex_init(&c->lock, NULL);
  gw_timer_init(&c->reconnect_timer, reconnect_timer_fired, c);
  c->tls = tls;
  c->version = version;
  c->keepalive_s = conf->keepalive_s ? conf->keepalive_s : DEFAULT_KEEPALIVE_S;
  c->qos = conf->qos;
  c->reconnect_min_ms = conf->reconnect_min_ms ? conf->reconnect_min_ms : DEFAULT_RECONNECT_MIN_MS;
  c->reconnect_max_ms = conf->reconnect_max_ms ? conf->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
  if (c->reconnect_max_ms < c->reconnect_min_ms)
    c->reconnect_max_ms = c->reconnect_min_ms;
  c->backoff_ms = c->reconnect_min_ms;
  c->connect_timeout_s = conf->connect_timeout_s ? conf->connect_timeout_s
                                                 : DEFAULT_CONNECT_TIMEOUT_S;
  c->max_queued = conf->max_queued ? conf->max_queued : DEFAULT_MAX_QUEUED;
  c->session_expiry_s = conf->session_expiry_s;

  bool failed = false;
  c->uri = gw_strdup_opt(conf->uri, &failed);
  c->broker_port = uri_port(conf->uri, tls);
  c->username = gw_strdup_opt(conf->username, &failed);
  c->password = gw_strdup_opt(conf->password, &failed);
  c->ca_file = gw_strdup_opt(conf->ca_file, &failed);
  c->cert_file = gw_strdup_opt(conf->cert_file, &failed);
  c->key_file = gw_strdup_opt(conf->key_file, &failed);
  if (conf->client_id && conf->client_id[0]) {
    c->client_id = gw_strdup_opt(conf->client_id, &failed);
  } else {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    unsigned n = atomic_fetch_add(&instances, 1);
    char id[128];
    if (n == 0)
      snprintf(id, sizeof id, "lwm2m-gw-%s", host);
    else
      snprintf(id, sizeof id, "lwm2m-gw-%s-%u", host, n);
    c->client_id = gw_strdup_opt(id, &failed);
  }
  if (failed) {
    mqtt_client_free(&c);
    return GW_ERR_NOMEM;
  }

  c->gate = gate_get(loop);
  if (!c->gate) {
    mqtt_client_free(&c);
    return GW_ERR_NOMEM;
  }
  c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (c->efd < 0) {
    GW_ERR(MOD, "eventfd: %s", strerror(errno));
    mqtt_client_free(&c);
    return GW_ERR_IO;
  }
  int rc = gw_loop_add_fd(loop, c->efd, EPOLLIN, eventfd_readable, c);
  if (rc != GW_OK) {
    mqtt_client_free(&c);
    return rc;
  }
  c->fd_added = true;

  rc = paho_create(c, &c->paho);
  if (rc != MQTTASYNC_SUCCESS) {
    GW_ERR(MOD, "broker URI \"%s\" rejected by Paho (%d)", c->uri, rc);
    mqtt_client_free(&c);
    return rc == MQTTASYNC_BAD_PROTOCOL || rc == MQTTASYNC_BAD_UTF8_STRING ? GW_ERR_INVAL
                                                                             : GW_ERR_IO;
  }
  *out_client = c;
  return GW_OK;
}

int mqtt_client_subscribe(mqtt_client_t *c, const char *topic_filter) {
  if (!c || !topic_filter || !topic_filter[0])
    return GW_ERR_INVAL;
  for (size_t i = 0; i < c->nsubs; i++)
    if (strcmp(c->subs[i].filter, topic_filter) == 0)
      return GW_OK;
  if (c->nsubs == c->subs_cap) {
    size_t cap = c->subs_cap ? c->subs_cap * 2 : 8;
    subscription_t *subs = realloc(c->subs, cap * sizeof *subs);
    if (!subs)
      return GW_ERR_NOMEM;
    c->subs = subs;
    c->subs_cap = cap;
  }
  subscription_t *sub = &c->subs[c->nsubs];
  *sub = (subscription_t){.filter = strdup(topic_filter)};
  if (!sub->filter)
    return GW_ERR_NOMEM;
  c->nsubs++;
  /* While SUBSCRIBING the running subscribeMany lacks this one: sent on its own too. */
  if (c->state == STATE_CONNECTED || c->state == STATE_SUBSCRIBING) {
    sub->added_connected = true;
    flush_later(c);
  }
  return GW_OK;
}

int mqtt_client_start(mqtt_client_t *c) {
  if (!c)
    return GW_ERR_INVAL;
  if (c->state != STATE_IDLE)
    return GW_OK;
  do_connect(c);
  return GW_OK;
}

int mqtt_client_publish(mqtt_client_t *c, const char *topic, const uint8_t *payload, size_t len) {
  return mqtt_client_publish_tagged(c, topic, payload, len, 0);
}

int mqtt_client_publish_tagged(mqtt_client_t *c, const char *topic, const uint8_t *payload,
                               size_t len, uint64_t tag) {
  if (!c || !topic || !topic[0] || (len && !payload) || len > 268435455u)
    return GW_ERR_INVAL;
  if (c->state != STATE_CONNECTED && c->qos == 0) {
    c->status.dropped++;
    GW_INFO(MOD, "QoS 0 publish to %s dropped: not connected (QoS 0 is never kept)", topic);
    return GW_OK;
  }
  if (c->outgoing.count >= c->max_queued) {
    c->status.dropped++;
    GW_WARN(MOD, "publish queue full (%u), dropped message to %s", c->max_queued, topic);
    return GW_ERR_FULL;
  }
  outgoing_msg_t *m = calloc(1, sizeof *m);
  if (!m)
    return GW_ERR_NOMEM;
  m->topic = strdup(topic);
  m->payload = malloc(len ? len : 1);
  if (!m->topic || !m->payload) {
    msg_free(m);
    return GW_ERR_NOMEM;
  }
  if (len)
    memcpy(m->payload, payload, len);
  m->len = len;
  m->seq = c->next_seq++;
  m->tag = tag;
  list_push_tail(&c->outgoing, m);
  flush_later(c);
  return GW_OK;
}

void mqtt_client_free(mqtt_client_t **cp) {
  if (!cp || !*cp)
    return;
  mqtt_client_t *c = *cp;
  *cp = NULL;
  gw_timer_stop(c->loop, &c->reconnect_timer);
  if (c->fd_added)
    gw_loop_del_fd(c->loop, c->efd);
  if (c->gate) { /* what is stopping is not handed messages any more (hand_over()) */
    pthread_mutex_lock(&c->gate->lock);
    c->closing = true;
    pthread_cond_broadcast(&c->gate->changed);
    pthread_mutex_unlock(&c->gate->lock);
  }
  if (c->paho) {
    paho_enter(c);
    if (MQTTAsync_isConnected(c->paho)) {
      MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
      d.timeout = FREE_DISCONNECT_MS;
      if (MQTTAsync_disconnect(c->paho, &d) == MQTTASYNC_SUCCESS)
        for (int i = 0; i < FREE_DISCONNECT_MS / 10 && MQTTAsync_isConnected(c->paho); i++)
          usleep(10 * 1000);
    }
    /* After destroy Paho calls nothing of ours for this client: the queue can go. */
    MQTTAsync_destroy(&c->paho);
    paho_leave(c);
  }
  gate_put(c->gate);
  for (mqtt_event_t *e = c->events_head, *next; e; e = next) {
    next = e->next;
    event_free(e);
  }
  size_t unsent = list_free(&c->outgoing) + list_free(&c->in_flight);
  if (unsent)
    GW_WARN(MOD, "%zu publishes the broker had not acknowledged discarded: client freed",
            unsent);
  for (size_t i = 0; i < c->nsubs; i++)
    free(c->subs[i].filter);
  free(c->subs);
  if (c->efd >= 0)
    close(c->efd);
  pthread_mutex_destroy(&c->lock);
  free(c->uri);
  free(c->client_id);
  free(c->username);
  free(c->password);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c);
}

const mqtt_client_status_t *mqtt_client_status(const mqtt_client_t *c) {
  return c ? &c->status : NULL;
}
