/* lwm2m-gw: an MQTT client that lives in the one event loop. Paho MQTT C (MQTTAsync) runs its
 * own threads and gives no socket to poll, so its callbacks only copy what happened into a
 * mutex-protected queue and write an eventfd; the loop drains the queue and calls the callbacks
 * below in the loop thread. A received message is acknowledged to the broker (QoS 1 PUBACK) only
 * after on_message returned for it, so what on_message keeps before returning is not lost when
 * the process is killed: the broker delivers what it has no PUBACK for again. Reconnection is a backoff timer in the loop. The session is
 * persistent (MQTT 3.1.1 clean session off, MQTT 5 clean start off with a Session Expiry
 * Interval): what the broker queued for the client while it was away is delivered after the
 * reconnect, and subscriptions are re-made only when the broker kept no session. Only this
 * folder includes Paho. */
#ifndef MQTT_CLIENT_H
#define MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct mqtt_client mqtt_client_t;

typedef struct {
  /* tcp://host:port, mqtt://host:port, ssl://host:port, mqtts://host:port, ws://host:port/path,
   * wss://host:port/path. Required. */
  const char *uri;
  /* NULL: "lwm2m-gw-<hostname>", with "-<n>" appended for the n-th further client of the
   * process. Stable across restarts, so the broker finds the session it kept; unique per gateway,
   * since a broker disconnects a client when another connects with its id (MQTT 3.1.1 3.1.4). */
  const char *client_id;
  const char *username, *password;             /* optional */
  const char *ca_file, *cert_file, *key_file;  /* TLS (ssl://, mqtts://, wss://), optional */
  int mqtt_version;                            /* 0 or 4: 3.1.1 (default), 5: MQTT 5 */
  int keepalive_s;                             /* 0: 30 */
  int qos;                                     /* 0, 1 or 2; mqtt_client_conf_init(): 1 */
  uint32_t reconnect_min_ms, reconnect_max_ms; /* backoff; 0: 1000 .. 60000 */
  uint32_t connect_timeout_s;                  /* 0: 10 */
  uint32_t max_queued;                         /* publishes kept while disconnected; 0: 1000 */
  /* How long the broker keeps the session after a disconnect: MQTT 5 Session Expiry Interval
   * (0xFFFFFFFF: never expires); MQTT 3.1.1 has no such field, the broker's own limit applies.
   * mqtt_client_conf_init(): one day. 0: clean session / clean start, the broker keeps nothing
   * (what devices publish while the client is away is lost). */
  uint32_t session_expiry_s;
} mqtt_client_conf_t;

typedef struct {
  void *arg;
  /* A message arrived. topic and payload are borrowed for the call. dup: the broker sent it
   * before without getting our acknowledgement (MQTT 3.1.1 3.3.1.1, QoS 1): it may have been
   * handed to on_message already. The broker gets the acknowledgement when this returns.
   * Called as if in the loop thread: in it, or in Paho's receive thread while the loop thread
   * waits inside a call into Paho (mqtt_client.c, "the loop lends itself"); never while the
   * loop runs anything else. So it may do whatever a loop callback does, but must not rely on
   * which thread it is. */
  void (*on_message)(void *arg, const char *topic, const uint8_t *payload, size_t len,
                     bool dup);
  /* In the loop thread: connected (called after all remembered subscriptions were re-made)
   * or connection lost / connect attempt failed after having been connected. May be NULL. */
  void (*on_state)(void *arg, bool connected);
  /* In the loop thread: a publish made with a tag (mqtt_client_publish_tagged) is over:
   * delivered (the broker acknowledged it; QoS 0: written) or not (the broker refused it).
   * topic is borrowed for the call. May be NULL. */
  void (*on_published)(void *arg, const char *topic, uint64_t tag, bool delivered);
} mqtt_client_callbacks_t;

typedef struct {
  uint64_t received;   /* messages handed to on_message */
  uint64_t published;  /* publishes the broker acknowledged (QoS 0: handed to the socket) */
  uint64_t reconnects; /* successful connects after the first one */
  uint64_t dropped;    /* publishes given up: queue full, QoS 0 while disconnected, refused by
                          the broker, freed unsent */
  uint64_t redelivered;   /* messages received with DUP set */
  uint64_t sessions_lost; /* reconnects that found no session at the broker (it restarted
                             without persistence, or the session expired): what it had queued
                             for us is gone */
  bool connected;
  bool session_present; /* the broker resumed a session it kept for us at the last connect */
} mqtt_client_status_t;

/* Fills conf with the defaults (QoS 1, MQTT 3.1.1, keep-alive 30 s, backoff 1 s .. 60 s, session
 * kept one day). Start from this: in a merely zeroed conf, qos 0 means QoS 0 and
 * session_expiry_s 0 a clean session; other zero fields mean their default. */
void mqtt_client_conf_init(mqtt_client_conf_t *conf);

/* Checks conf (URI scheme, version, QoS) and creates the Paho client; does not connect.
 * conf's strings are copied. Returns GW_OK, GW_ERR_INVAL (bad conf), GW_ERR_NOMEM, GW_ERR_IO. */
int mqtt_client_new(gw_loop_t *loop, const mqtt_client_conf_t *conf,
                    const mqtt_client_callbacks_t *cb, mqtt_client_t **out_client);

/* Remembers topic_filter (copied) and subscribes at once when connected. A connect subscribes
 * again, before on_state(true), to every filter the broker's session does not hold: all of them
 * when the broker kept no session, and those not yet acknowledged in it. With MQTT 5 the
 * no-local option is set, so the client never receives what it published itself. Subscribing
 * twice to one filter is a no-op. */
int mqtt_client_subscribe(mqtt_client_t *c, const char *topic_filter);

/* Starts connecting asynchronously; never blocks. Failed attempts are retried with backoff. */
int mqtt_client_start(mqtt_client_t *c);

/* Queues a publish with the configured QoS, handed to Paho from the loop's next turn; topic and
 * payload are copied (borrowed for the call). With QoS > 0 a message published while disconnected is kept (at most max_queued) and
 * sent after the next connect; one in flight when the connection dropped is sent again after
 * the reconnect (Paho's DUP resend in a resumed session, else ours, in the original order):
 * at-least-once. QoS 0 while disconnected is dropped (counted, logged). Returns GW_OK,
 * GW_ERR_FULL, GW_ERR_INVAL, GW_ERR_NOMEM. */
int mqtt_client_publish(mqtt_client_t *c, const char *topic, const uint8_t *payload, size_t len);
/* The same, reported to on_published with tag (not 0) when it is over; one that never is (the
 * client freed first) is not reported. */
int mqtt_client_publish_tagged(mqtt_client_t *c, const char *topic, const uint8_t *payload,
                               size_t len, uint64_t tag);

/* Disconnects (waits at most about 1 s for the broker), destroys the Paho client, frees all
 * queues and sets *c to NULL. Unsent messages are counted as dropped and discarded. */
void mqtt_client_free(mqtt_client_t **c);

/* Counters, valid until mqtt_client_free(). */
const mqtt_client_status_t *mqtt_client_status(const mqtt_client_t *c);

#endif
