/* lwm2m-gw: the binding interface every transport implements.
 *
 * One table of function pointers per transport, one `extern const` table each (Anjay
 * anjay_connection_type_definition_t, Zephyr struct lwm2m_transport_procedure). A binding never
 * blocks: it registers its fds and timers with the one event loop, and hands what it receives to
 * the core through the callbacks in gw_binding_env_t. Optional slots may be NULL; the dispatch
 * wrappers below answer GW_ERR_UNSUPPORTED.
 */
#ifndef GW_BINDING_H
#define GW_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap_msg.h"
#include "gw_config.h"
#include "loop.h"

/* A device's address on its binding, as text: "127.0.0.1:40001" (NIDD SGi), an MSISDN (SMS),
 * the device's topic "prefix/lwm2m/rd/endpoint" (MQTT), "DevEUI/FPort" (LoRaWAN). Text keeps the core binding-agnostic. */
#define GW_BADDR_MAX 200 /* an MQTT topic: 64-byte prefix, "/lwm2m/rd/", 128-byte endpoint */
typedef struct {
  char text[GW_BADDR_MAX];
} gw_baddr_t;

/* How the core must treat CoAP on the device side of a link (DESIGN.md "link policy"). */
typedef struct {
  uint8_t max_retransmit;  /* device-side CoAP retransmissions by the gateway; 0 = none */
  uint32_t ack_timeout_ms; /* first retransmission timeout when max_retransmit > 0 */
  size_t mtu;              /* largest datagram the link carries */
  bool sleepy;             /* devices on this link are reachable only after they spoke */
  bool accept_unknown;     /* addresses not listed in `devices` become devices too */
  bool costly;             /* each message the gateway sends costs money (SMS): malformed input
                              and pings from unknown senders get no answer */
  bool accepts_on_receipt; /* the link acknowledges a message on receipt (an SMS is deleted from
                              the modem, an MQTT publish acknowledged): nothing would send it
                              again, so the core keeps each request in the state until the server
                              answered it */
  bool no_message_ids;     /* the link has no message IDs (HTTP): the binding makes one up per
                              message, so a device's message is never a retransmission of an
                              earlier one, and after a restart the binding's IDs may repeat
                              those of the last run; the core gives each message a fresh
                              upstream message ID instead of the one recorded for its ID */
  bool answers_die_with_process; /* a device answers a request on the connection it went on
                              (HTTP), which closes with the gateway: a server request in flight
                              at a stop or kill cannot be answered after the restart. The core
                              then sends it again when repeating it is safe (an idempotent
                              method, RFC 7252 5.1), else answers the server 5.04 */
  char binding_letter;     /* LwM2M binding letter of the link: 'N', 'S', 'M', 'H', ... */
  bool letter_implied;     /* a device heard on this link speaks it whatever its b= says: the
                              letter is added to the b= the server sees, and every request of
                              the server goes to the device over this link */
  /* Links that answer late (DESIGN.md "Links that answer late": LoRaWAN, NIDD via SCEF). The
   * network keeps a message until the device can receive it (a LoRaWAN class A device's next
   * RX window, SCEF buffering) and the binding reports its fate through env.on_delivery. The
   * core hands the binding at most `nstart` server requests at a time (to a device in queue
   * mode only once it was heard from, unless network_buffers); the server gets an empty ACK
   * at once and a separate response; device-side retransmission (max_retransmit, every ack_timeout_ms, not
   * doubled: Transport Appendix C.3.2.2) counts from the report that the message was sent, and
   * a message the network holds gets held_max_s before the server hears 5.04. */
  bool reports_delivery;
  bool network_buffers;    /* the network keeps a sleeping device's messages until it can take
                              them (a LoRaWAN network server's queue): the core hands them over
                              at once even to a device in queue mode, instead of holding them
                              until it is heard from (a SCEF: Appendix D.6 asks the gateway to
                              hold them, not both) */
  uint8_t nstart;          /* server requests in flight toward one device; 0: the default (4) */
  uint32_t held_max_s;     /* reports_delivery: the longest a message waits in the network */
} gw_link_policy_t;

/* The fate of a message a binding was asked to send, on a link that reports it
 * (gw_link_policy_t.reports_delivery). The core knows the message by its CoAP message ID. */
typedef enum {
  GW_DELIVERY_QUEUED,   /* the network holds it until the device can receive it */
  GW_DELIVERY_SENT,     /* transmitted toward the device (LoRaWAN: txack, down/sent) */
  GW_DELIVERY_ACKED,    /* the device acknowledged it on the link (a confirmed downlink) */
  GW_DELIVERY_NACKED,   /* the device did not acknowledge it on the link */
  GW_DELIVERY_FAILED,   /* the network refused or dropped it; reason says why */
  GW_DELIVERY_TOO_LARGE /* more than the link carries to this device now; max_size does fit */
} gw_delivery_status_t;

typedef struct {
  gw_delivery_status_t status;
  uint16_t mid;       /* the CoAP message ID of the datagram it is about */
  const char *reason; /* NACKED, FAILED: why, for the log and the server's diagnostic payload */
  size_t max_size;    /* TOO_LARGE: the largest datagram that would have gone; 0: unknown */
} gw_delivery_report_t;

typedef struct gw_binding gw_binding_t; /* a binding instance; each transport defines it */
typedef struct gw_binding_ops gw_binding_ops_t;

typedef enum { GW_DEVICE_REACHABLE, GW_DEVICE_UNREACHABLE } gw_device_state_t;

/* What the core gives a binding at creation. */
typedef struct {
  gw_loop_t *loop;
  void *core;
  /* A CoAP datagram from a device. Borrowed: valid only during the call. */
  void (*on_message)(void *core, gw_binding_t *binding, const gw_baddr_t *from,
                     const uint8_t *data, size_t len);
  /* Optional: reachability news (NIDD power saving, modem registration). */
  void (*on_device_state)(void *core, gw_binding_t *binding, const gw_baddr_t *addr,
                          gw_device_state_t state);
  /* Input that never became a CoAP message (wrong size, bad framing): counted by the core. */
  void (*on_rejected)(void *core, gw_binding_t *binding, const gw_baddr_t *from,
                      const char *reason);
  /* What the binding must keep across a restart (the parts of a concatenated SMS, an MQTT
   * token map), by a key of its own, in the gateway's state (gateway/state.h). put replaces,
   * del removes; both become durable at the core's next commit (within this turn of the loop),
   * or before put returns when durable_now is set: the binding is about to acknowledge what it
   * keeps. Borrows key and value. No-ops without a state directory. */
  void (*state_put)(void *core, gw_binding_t *binding, const char *key, const void *value,
                    size_t len, bool durable_now);
  void (*state_del)(void *core, gw_binding_t *binding, const char *key);
  /* The fate of a datagram sent to device `to` (links with reports_delivery). Never called
   * from within the binding's send: a binding that knows at once defers it to the loop. */
  void (*on_delivery)(void *core, gw_binding_t *binding, const gw_baddr_t *to,
                      const gw_delivery_report_t *report);
} gw_binding_env_t;

struct gw_binding_ops {
  const char *name; /* the bindings.<name> configuration group */
  /* true when the configuration enables this binding */
  bool (*enabled)(const gw_config_t *config);
  int (*create)(const gw_config_t *config, const gw_binding_env_t *env,
                gw_binding_t **out_binding);
  int (*start)(gw_binding_t *binding);
  /* Sends one CoAP datagram to a device. Borrows data. Never blocks. */
  int (*send)(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data, size_t len);
  void (*stop)(gw_binding_t *binding);
  void (*free)(gw_binding_t **binding);
  /* Optional: the link policy for this instance (defaults: no retransmit, 1152 bytes). */
  const gw_link_policy_t *(*policy)(const gw_binding_t *binding);
  /* Optional: the configured device entry for an address, if the binding can map it. */
  const gw_device_conf_t *(*lookup_device)(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr);
  /* Optional: the device's settings changed or it was removed (SIGHUP): drop what the binding
   * keeps for it (e.g. a DTLS session under an old key). */
  void (*forget_device)(gw_binding_t *binding, const gw_baddr_t *addr);
  /* Optional: the name of the upstream for the device at addr when the binding decides it (MQTT:
   * the topic prefix's upstream, or its bootstrap server for the bs interface); NULL leaves it to
   * the device entry's upstream, else the default one. */
  const char *(*upstream_name)(const gw_binding_t *binding, const gw_baddr_t *addr,
                               const gw_device_conf_t *conf);
  /* Optional: a value it put with state_put in an earlier run, handed back before start(), in
   * key order. Borrows key and value. */
  void (*restore)(gw_binding_t *binding, const char *key, const void *value, size_t len);
  /* Optional: the largest datagram the link carries to the device at `to` now (LoRaWAN: by
   * the data rate of its last uplink); 0: the policy's mtu. */
  size_t (*max_datagram)(const gw_binding_t *binding, const gw_baddr_t *to);
  /* Optional: the binding's own counters as Prometheus text; returns the length written. */
  size_t (*format_metrics)(const gw_binding_t *binding, char *out, size_t out_size);
};

/* Every instance starts with this header so the core can dispatch without knowing the type. */
struct gw_binding {
  const gw_binding_ops_t *ops;
};

/* The registry (bindings/registry.c): all transports built into this gateway. */
const gw_binding_ops_t *const *gw_binding_registry(size_t *out_count);

int gw_binding_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                    size_t len);
const gw_link_policy_t *gw_binding_policy(const gw_binding_t *binding);
const gw_device_conf_t *gw_binding_lookup_device(const gw_binding_t *binding,
                                                 const gw_config_t *config,
                                                 const gw_baddr_t *addr);
size_t gw_binding_format_metrics(const gw_binding_t *binding, char *out, size_t out_size);
/* The largest datagram for the device at `to` now (max_datagram, else the policy's mtu). */
size_t gw_binding_max_datagram(const gw_binding_t *binding, const gw_baddr_t *to);
void gw_binding_forget_device(gw_binding_t *binding, const gw_baddr_t *addr);
/* The upstream a device at addr (with entry conf, or NULL) is relayed to under config. */
const gw_upstream_conf_t *gw_binding_upstream(const gw_binding_t *binding,
                                              const gw_config_t *config, const gw_baddr_t *addr,
                                              const gw_device_conf_t *conf);


/* A binding's own answers to server requests it cannot forward (untranslatable, no address),
 * handed to the core from the loop's next turn: the core is inside its send call when the
 * binding decides, and must not be re-entered. Lives inside the binding instance. */
#define GW_LOCAL_ANSWERS_MAX 64
typedef struct {
  gw_baddr_t to;
  uint8_t data[GW_COAP_MAX_TOKEN + 8 + GW_COAP_DIAGNOSTIC_MAX]; /* header, token, marker,
                                                                 diagnostic */
  size_t len;
} gw_local_answer_t;

typedef struct {
  gw_binding_t *binding;
  gw_binding_env_t env;
  gw_timer_t timer;
  size_t count;
  gw_local_answer_t items[GW_LOCAL_ANSWERS_MAX];
} gw_local_answers_t;

void gw_local_answers_init(gw_local_answers_t *a, gw_binding_t *binding,
                           const gw_binding_env_t *env);
/* Queues the answer `code` (ACK for a CON request, else NON; the request's message ID and
 * token) to req from device `to`, with `diagnostic` (NULL: none; cut at 96 bytes) as its
 * diagnostic payload (RFC 7252 5.5.2) so the server's operator reads why. GW_OK, or
 * GW_ERR_FULL (the core then answers 5.03 itself). */
int gw_local_answer(gw_local_answers_t *a, const gw_baddr_t *to, const gw_coap_msg_t *req,
                    uint8_t code, const char *diagnostic);
void gw_local_answers_stop(gw_local_answers_t *a);
#endif
