/* lwm2m-gw: devices and their relay mapping tables.
 *
 * A device is one LwM2M client behind one binding, known by its binding address. It owns one
 * upstream CoAP session (upstream.c) and the tables that map the two sides of the relay:
 *  - uplink exchanges: the device's requests in flight upstream, by token;
 *  - downlink exchanges: the server's requests in flight (or queued) toward the device, by the
 *    message ID the gateway used downstream and by token;
 *  - observations: tokens of the server's Observe relationships with the device (RFC 7641);
 *  - deduplication of both directions (dedup.h).
 */
#ifndef GW_DEVICE_H
#define GW_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "binding.h"
#include "coap_msg.h"
#include "dedup.h"
#include "late_delivery.h"
#include "loop.h"
#include "profile.h"

#define GW_MAX_UPLINK 8        /* device requests in flight at once (NSTART is 1 per RFC 7252) */
#define GW_MAX_INFLIGHT_DOWN 4 /* server requests in flight toward one device */
#define GW_MAX_OBSERVATIONS 16
#define GW_DEDUP_ENTRIES 16

typedef struct gw_device gw_device_t;
struct gw_upstream_session; /* upstream.c */
struct gw_gateway;          /* gateway.h */

typedef struct {
  bool used;
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint8_t token_len;
  uint16_t device_mid;
  gw_coap_type_t device_type; /* CON or NON */
  uint8_t method;
  bool is_register;
  bool is_update;
  bool is_deregister;
  bool own;               /* the gateway's own request (an Update moving the registration to a
                             new session): its answer is not for the device */
  uint64_t started_ms;
  /* A request the link acknowledged on receipt (policy accepts_on_receipt: the SMS was deleted
   * from the modem, the MQTT publish acknowledged): its row in the state database and the
   * datagram itself, owned, until the server has answered it. */
  int64_t state_id;
  uint64_t received_ms;
  uint8_t *datagram;
  size_t datagram_len;
} gw_uplink_xchg_t;

/* A device request waiting for its turn upstream: the device has GW_MAX_UPLINK in flight (a
 * burst of SMS stored while the modem was away), or the server could not be reached. */
typedef struct gw_uplink_waiting {
  struct gw_uplink_waiting *next;
  int64_t state_id; /* its row while it must survive a restart; 0: none */
  uint64_t received_ms;
  size_t len;
  uint8_t data[]; /* the device's datagram as it came */
} gw_uplink_waiting_t;

typedef enum {
  GW_DOWN_QUEUED,   /* waiting for a sleepy device to be heard from */
  GW_DOWN_INFLIGHT, /* sent to the device, waiting for its answer */
  GW_DOWN_SEPARATE  /* the device ACKed empty: its response comes separately */
} gw_down_state_t;

typedef struct gw_downlink_xchg {
  bool used;
  gw_device_t *device;
  gw_down_state_t state;
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint8_t token_len;
  uint16_t server_mid;
  gw_coap_type_t server_type; /* CON or NON */
  uint16_t device_mid;        /* the MID the gateway used toward the device */
  bool acked_upstream;        /* empty ACK sent: the answer goes as a separate response */
  bool observe_register;      /* GET/FETCH with Observe=0 */
  bool observe_cancel;        /* GET/FETCH with Observe=1 */
  bool persisted;             /* saved in the state database (state.h) until answered */
  uint8_t retransmits_left;
  uint32_t retransmit_ms;
  gw_late_t late;             /* links that report delivery: Appendix C (late_delivery.h) */
  uint32_t queue_seq;         /* arrival order while queued */
  uint8_t *request;           /* serialised downstream request, owned (queue, retransmission) */
  size_t request_len;
  char path[64];              /* for logs and observations */
  gw_timer_t piggyback_timer; /* window for a piggybacked answer upstream */
  gw_timer_t deadline_timer;  /* device silence (5.04) or queue expiry (5.03) */
  gw_timer_t retransmit_timer;
} gw_downlink_xchg_t;

typedef struct {
  bool used;
  bool cancelled_upstream; /* the server RST a notification: reject the device's next one */
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint8_t token_len;
  char path[64];
  uint32_t notifications;
} gw_observation_t;

struct gw_device {
  struct gw_gateway *gateway; /* timers of its exchanges reach the gateway through here */
  char endpoint[128];  /* configured, else from the Register's ep= */
  gw_baddr_t addr;
  gw_binding_t *binding;
  const gw_device_conf_t *conf; /* NULL for devices not listed in the configuration */
  struct gw_upstream_session *upstream;
  gw_reg_params_t device_params; /* what the device itself registered with */
  char location[64];             /* Location-Path the server gave at Register */
  bool registered;
  bool queue_mode;
  bool wake_sent;           /* an SMS trigger went out since the device was last heard from */
  bool letter_mismatch_logged; /* its b= lacks the letter of the link it registered over */
  bool aborting;            /* gw_relay_device_abort runs: no queued request may start */
  unsigned server_instance; /* its Server object instance (/1/x), from the registration */
  uint64_t last_heard_ms;
  /* state.h: its row in the state database (0: not saved yet), its slot in the exchange
   * journal (message IDs of both directions, journal.h), the local port of its upstream
   * session (kept when the session is renewed, so the server keeps reaching the device) */
  int64_t state_id;
  uint32_t journal_slot;
  uint16_t local_port;
  uint16_t saved_port;    /* local_port as the state database has it */
  uint16_t registered_port; /* the port the server knows the registration by: that of the
                               session its last Register or Update came from */
  gw_timer_t session_renew_timer; /* its upstream session failed: renewed from a fresh port */
  int64_t registered_at;  /* wall clock of its last Register or Update */
  int64_t saved_registered_at; /* registered_at as the state database has it */
  bool registration_changed;   /* an Update changed more than the time (lifetime, port) */
  gw_dedup_t uplink_dedup;   /* by the device's MIDs */
  gw_dedup_t downlink_dedup; /* by the server's MIDs */
  gw_uplink_xchg_t uplink[GW_MAX_UPLINK];
  gw_downlink_xchg_t *downlink; /* GW_MAX_INFLIGHT_DOWN + queue length entries */
  size_t downlink_capacity;
  gw_observation_t observations[GW_MAX_OBSERVATIONS];
  gw_device_t *hash_next;
  gw_device_t *registration_next; /* chain of the table's by_registration index */
  uint32_t upstream_key;          /* which server holds the registration: hash of its URI */
  bool indexed;
  /* admission.c: the gateway's list of unregistered devices, least recently active first, and
   * the end of the registration's lifetime */
  gw_uplink_waiting_t *waiting, *waiting_last; /* FIFO of requests waiting (relay.c) */
  uint32_t waiting_count;
  gw_timer_t uplink_retry_timer; /* the server was unreachable: when to try again */
  uint32_t uplink_retry_ms;
  gw_device_t *unreg_prev, *unreg_next;
  bool unreg_linked;
  uint64_t last_active_ms;
  gw_timer_t lifetime_timer;
};

typedef struct {
  gw_device_t *head, *tail;
  size_t count;
} gw_device_list_t;

/* ---- the device registry: by binding address ---- */
typedef struct {
  gw_device_t **buckets;
  gw_device_t **by_registration; /* registered devices, by (upstream, Location) */
  size_t bucket_count;
  size_t count;
} gw_device_table_t;

int gw_device_table_init(gw_device_table_t *table, size_t bucket_count);
/* Frees every device with free_fn (the caller releases upstream sessions there). */
void gw_device_table_clear(gw_device_table_t *table, void (*free_fn)(gw_device_t *dev, void *arg),
                           void *arg);
gw_device_t *gw_device_find(const gw_device_table_t *table, const gw_binding_t *binding,
                            const gw_baddr_t *addr);
/* Creates and inserts a device; downlink_capacity = inflight + queue length. */
gw_device_t *gw_device_add(gw_device_table_t *table, gw_binding_t *binding, const gw_baddr_t *addr,
                           size_t downlink_queue_length);
void gw_device_remove(gw_device_table_t *table, gw_device_t *dev);
void gw_device_free(gw_device_t *dev);
/* The registration index: which device holds the registration at `location` ("/rd/5") of the
 * upstream server with upstream_key. A device is in it from its Register's 2.01 until it
 * de-registers, its registration lapses or it goes (admission.c keeps it). */
void gw_device_index_registration(gw_device_table_t *table, gw_device_t *dev,
                                  uint32_t upstream_key);
void gw_device_unindex_registration(gw_device_table_t *table, gw_device_t *dev);
gw_device_t *gw_device_find_registration(const gw_device_table_t *table, uint32_t upstream_key,
                                         const char *location);
/* Calls fn for every device; fn may not add or remove devices. */
void gw_device_foreach(const gw_device_table_t *table, void (*fn)(gw_device_t *dev, void *arg),
                       void *arg);

/* ---- relay mapping tables ---- */
gw_uplink_xchg_t *gw_uplink_add(gw_device_t *dev, const gw_coap_msg_t *request, uint64_t now_ms);
/* true when gw_uplink_add would find a slot. */
bool gw_uplink_has_room(const gw_device_t *dev, uint64_t now_ms);
gw_uplink_xchg_t *gw_uplink_find(gw_device_t *dev, const uint8_t *token, size_t token_len);
void gw_uplink_remove(gw_uplink_xchg_t *x);

/* A free downlink slot; NULL when the device has GW_MAX_INFLIGHT_DOWN in flight and its queue
 * is full. in_queue tells whether the slot is meant for the queue. */
gw_downlink_xchg_t *gw_downlink_alloc(gw_device_t *dev, bool in_queue);
gw_downlink_xchg_t *gw_downlink_find_by_mid(gw_device_t *dev, uint16_t device_mid);
gw_downlink_xchg_t *gw_downlink_find_by_token(gw_device_t *dev, const uint8_t *token,
                                              size_t token_len);
gw_downlink_xchg_t *gw_downlink_find_by_server_mid(gw_device_t *dev, uint16_t server_mid);
size_t gw_downlink_count(const gw_device_t *dev, gw_down_state_t state);
/* Releases the slot: stops its timers and frees its request copy. */
void gw_downlink_release(gw_loop_t *loop, gw_downlink_xchg_t *x);

gw_observation_t *gw_observation_find(gw_device_t *dev, const uint8_t *token, size_t token_len);
gw_observation_t *gw_observation_add(gw_device_t *dev, const uint8_t *token, size_t token_len,
                                     const char *path);
void gw_observation_remove(gw_observation_t *obs);
size_t gw_observation_count(const gw_device_t *dev);

#endif
