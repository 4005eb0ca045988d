/* lwm2m-gw: state that survives the process (DESIGN.md, issue 11).
 *
 * In gateway.state_dir:
 *  - state.db (SQLite, WAL): per device its binding address, endpoint, the local port of its
 *    upstream session, its registration (Location, parameters, when it was made), its
 *    observations, the server requests it has not answered yet, and what bindings keep for it;
 *  - exchanges.journal (journal.h): the message IDs of recent exchanges, written per message;
 *  - lock: held while a gateway runs, so two cannot share the directory.
 *
 * Durability: SQLite in WAL mode with synchronous=NORMAL: a committed transaction survives the
 * process being killed at any instant (it is in the operating system's cache); a power cut may
 * lose the last seconds of commits, never the database. Writes collect in one transaction that
 * the event loop commits once per turn (gw_state_flush), so a burst costs one commit; where the
 * gateway is about to acknowledge something that depends on a write (the 2.01 of a Register,
 * the empty ACK of a request it will answer later, the answer that establishes an observation)
 * it commits first (gw_state_commit). Steady traffic of registered devices on links where the
 * device repeats what went unanswered (UDP, NIDD) writes nothing here, only the journal; on
 * links that acknowledge a request on receipt (link policy accepts_on_receipt: SMS, MQTT,
 * LoRaWAN) each request is saved before that acknowledgement and forgotten once answered, two
 * commits per request (scripts/faults and scripts/bench-lorawan print the counts); a request the
 * device answers late (an empty ACK upstream) adds one more.
 *
 * Without a usable state_dir the gateway runs with the state in memory and says so (an error in
 * the log, lwm2m_gw_state_persistent 0), as the SMS secured-packet counters do.
 */
#ifndef GW_STATE_H
#define GW_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "journal.h"

typedef struct gw_state gw_state_t;

/* An Update that only renews a registration is saved when the saved time is this far behind,
 * a minute or half the lifetime, whichever is less (an Update-heavy device would otherwise cost
 * a commit each); the restore adds as much to the saved time, so a lost renewal keeps the
 * registration a little longer, never drops it. */
static inline int64_t gw_state_renewal_slack_s(uint32_t lifetime_s) {
  return lifetime_s / 2 < 60 ? lifetime_s / 2 : 60;
}

/* Opens (creating what is missing) the state in state_dir, NULL for memory only. Fails only
 * when another gateway holds state_dir (GW_ERR_IO, logged) or memory runs out; an unusable
 * directory gives memory-only state with an error in the log. */
int gw_state_open(const char *state_dir, uint32_t max_devices, gw_state_t **out_state);
/* Commits what is pending and closes. */
void gw_state_close(gw_state_t **state);
bool gw_state_persistent(const gw_state_t *state);
gw_journal_t *gw_state_journal(gw_state_t *state);
uint64_t gw_state_write_errors(const gw_state_t *state);
uint64_t gw_state_commits(const gw_state_t *state);

/* ---- writes: pending until the next commit ---- */

/* The device's row: address, endpoint, upstream port (dev->local_port) and key, registration
 * (with dev->registered_at). Assigns dev->state_id on first save. */
void gw_state_save_device(gw_state_t *state, gw_device_t *dev);
void gw_state_forget_device(gw_state_t *state, gw_device_t *dev);
void gw_state_save_observation(gw_state_t *state, const gw_device_t *dev,
                               const gw_observation_t *obs);
void gw_state_forget_observation(gw_state_t *state, const gw_device_t *dev,
                                 const uint8_t *token, size_t token_len);
/* A server request the device will answer later (queued, or acknowledged empty). deadline_at:
 * wall clock when it is answered 5.04 / 5.03 if the device stays silent. */
void gw_state_save_downlink(gw_state_t *state, const gw_device_t *dev,
                            const gw_downlink_xchg_t *x, int64_t deadline_at);
void gw_state_forget_downlink(gw_state_t *state, const gw_device_t *dev, uint16_t server_mid);

/* A device request the link acknowledged on receipt, kept until the server answered it.
 * Returns its row id (0 without a database or on error). */
int64_t gw_state_save_uplink(gw_state_t *state, const gw_device_t *dev, const uint8_t *data,
                             size_t len, int64_t received_at);
void gw_state_forget_uplink(gw_state_t *state, int64_t id);

/* A binding's own state (binding.h state_put / state_del), by its name and a key of its own. */
void gw_state_put_binding(gw_state_t *state, const char *binding, const char *key,
                          const void *value, size_t len);
void gw_state_del_binding(gw_state_t *state, const char *binding, const char *key);
/* Calls fn for each value saved for binding, in key order. */
void gw_state_restore_binding(gw_state_t *state, const char *binding,
                              void (*fn)(void *arg, const char *key, const void *value,
                                         size_t len),
                              void *arg);

/* Makes every pending write durable now; GW_OK or GW_ERR_IO (counted, logged). */
int gw_state_commit(gw_state_t *state);
/* The event loop's turn is over: commit what is pending. */
void gw_state_flush(gw_state_t *state);

/* ---- reading back at start ---- */

typedef struct {
  int64_t id;
  const char *binding;  /* the binding's configuration name */
  const char *address;  /* its binding address text */
  const char *endpoint;
  uint16_t local_port;
  uint16_t registered_port;
  uint32_t upstream_key;
  bool registered;
  const char *location;
  gw_reg_params_t params;
  uint32_t server_instance;
  bool queue_mode;
  int64_t registered_at;
} gw_state_device_t;

typedef struct {
  gw_down_state_t state;
  uint16_t server_mid, device_mid;
  gw_coap_type_t server_type;
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint8_t token_len;
  bool acked_upstream, observe_register, observe_cancel;
  gw_late_t late; /* links that report delivery: the Appendix C state (late_delivery.h) */
  uint32_t queue_seq;
  const char *path;
  const uint8_t *request; /* borrowed for the call */
  size_t request_len;
  int64_t deadline_at;
} gw_state_downlink_t;

typedef struct {
  void *arg;
  /* A device as saved; returns the device made from it, or NULL to drop its row. */
  gw_device_t *(*device)(void *arg, const gw_state_device_t *saved);
  void (*observation)(void *arg, gw_device_t *dev, const uint8_t *token, size_t token_len,
                      const char *path);
  void (*downlink)(void *arg, gw_device_t *dev, const gw_state_downlink_t *saved);
  /* A request of the device that was accepted and not answered yet, oldest first. */
  void (*uplink)(void *arg, gw_device_t *dev, int64_t id, const uint8_t *data, size_t len,
                 int64_t received_at);
} gw_state_restore_t;

/* Calls back for every saved device, then its observations and waiting requests. Returns the
 * number of devices restored. */
size_t gw_state_restore(gw_state_t *state, const gw_state_restore_t *cb);

/* Wall clock in seconds (registrations and deadlines outlive the monotonic clock). */
int64_t gw_wall_s(void);

#endif
