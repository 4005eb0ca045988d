#include "admission.h"

#include <stdio.h>

#include "gw_log.h"
#include "journal.h"
#include "relay.h"

#define MOD "relay"

/* A registration lapses when its lifetime passed without an Update; the device's Update may be
 * on its way for up to MAX_TRANSMIT_WAIT (RFC 7252 4.8.2) after it was due. */
#define REGISTRATION_GRACE_MS 93000u
#define SWEEP_INTERVAL_MS 1000u

static void list_unlink(gw_device_list_t *list, gw_device_t *dev) {
  if (!dev->unreg_linked)
    return;
  if (dev->unreg_prev)
    dev->unreg_prev->unreg_next = dev->unreg_next;
  else
    list->head = dev->unreg_next;
  if (dev->unreg_next)
    dev->unreg_next->unreg_prev = dev->unreg_prev;
  else
    list->tail = dev->unreg_prev;
  dev->unreg_prev = dev->unreg_next = NULL;
  dev->unreg_linked = false;
  list->count--;
}

static void list_push_tail(gw_device_list_t *list, gw_device_t *dev) {
  list_unlink(list, dev);
  dev->unreg_prev = list->tail;
  dev->unreg_next = NULL;
  if (list->tail)
    list->tail->unreg_next = dev;
  else
    list->head = dev;
  list->tail = dev;
  dev->unreg_linked = true;
  list->count++;
}

static bool has_exchanges(const gw_device_t *dev, bool confirmable_only) {
  for (size_t i = 0; i < GW_MAX_UPLINK; i++)
    if (dev->uplink[i].used && (!confirmable_only || dev->uplink[i].device_type == GW_COAP_CON))
      return true;
  for (size_t i = 0; i < dev->downlink_capacity; i++)
    if (dev->downlink[i].used)
      return true;
  return false;
}

/* The least recently active unregistered device that can go without breaking a promise: with
 * nothing in flight, else with only NON requests in flight (nobody was promised an answer to
 * those: RFC 7252 4.3). A device waiting for the answer to a CON, or the server waiting for
 * the device's, keeps its slot. */
static gw_device_t *eviction_candidate(const gw_gateway_t *gw) {
  for (int pass = 0; pass < 2; pass++)
    for (gw_device_t *dev = gw->unregistered.head; dev; dev = dev->unreg_next)
      if (!has_exchanges(dev, pass == 1))
        return dev;
  return NULL;
}

static void drop(gw_gateway_t *gw, gw_device_t *dev, const char *why) {
  GW_INFO_LIMITED(MOD, "%s: dropped: %s", dev->endpoint, why);
  gw->metrics.devices_dropped++;
  gw_gateway_drop_device(gw, dev);
}

/* Unregistered devices idle for unregistered_timeout_s go; the list is oldest first. Devices
 * with an exchange in flight are moved to the tail (they are active). */
static void sweep(gw_loop_t *loop, void *arg) {
  gw_gateway_t *gw = arg;
  uint64_t now = gw_now_ms();
  uint64_t timeout_ms = (uint64_t)gw->config.gateway.unregistered_timeout_s * 1000u;
  size_t budget = gw->unregistered.count;
  while (budget-- > 0 && gw->unregistered.head) {
    gw_device_t *dev = gw->unregistered.head;
    if (now - dev->last_active_ms < timeout_ms)
      break;
    if (has_exchanges(dev, false)) {
      dev->last_active_ms = now;
      list_push_tail(&gw->unregistered, dev);
      continue;
    }
    drop(gw, dev, "not registered and idle");
  }
  gw_timer_start(loop, &gw->unregistered_sweep, SWEEP_INTERVAL_MS);
}

void gw_admission_init(gw_gateway_t *gw) {
  gw->unregistered = (gw_device_list_t){0};
  gw_timer_init(&gw->unregistered_sweep, sweep, gw);
  gw_timer_start(gw->loop, &gw->unregistered_sweep, SWEEP_INTERVAL_MS);
}

void gw_admission_stop(gw_gateway_t *gw) { gw_timer_stop(gw->loop, &gw->unregistered_sweep); }

/* Room for one more unregistered device: the least recently active one without exchanges goes
 * (issue 11: 12,000 pings from distinct ports must not keep a real device out). */
static bool make_room(gw_gateway_t *gw) {
  if (gw->unregistered.count < gw->config.gateway.max_unregistered &&
      gw->devices.count < gw->config.gateway.max_devices)
    return true;
  gw_device_t *dev = eviction_candidate(gw);
  if (dev)
    drop(gw, dev, "least recently active of the unregistered devices, for a newcomer");
  return dev != NULL;
}

/* A device in the table with its slot in the exchange journal (its message IDs, journal.h). */
static gw_device_t *device_create(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *addr,
                                  const gw_device_conf_t *conf) {
  gw_device_t *dev = gw_device_add(&gw->devices, b, addr, gw->config.gateway.downlink_queue_length);
  if (!dev)
    return NULL;
  dev->conf = conf;
  dev->gateway = gw;
  snprintf(dev->endpoint, sizeof(dev->endpoint), "%s", conf ? conf->endpoint : addr->text);
  dev->queue_mode = (conf && conf->queue_mode) || gw_binding_policy(b)->sleepy;
  dev->journal_slot =
      gw_journal_claim(gw_state_journal(gw->state), gw_journal_key(b->ops->name, addr->text));
  return dev;
}

gw_device_t *gw_admit_device(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                             const char **out_refusal) {
  *out_refusal = NULL;
  const gw_device_conf_t *conf = gw_binding_lookup_device(b, &gw->config, from);
  const gw_link_policy_t *policy = gw_binding_policy(b);
  if (!conf && !policy->accept_unknown) {
    GW_WARN_LIMITED(MOD, "%s: %s is not a configured device; dropped", b->ops->name, from->text);
    return NULL;
  }
  if (!make_room(gw)) {
    bool table_full = gw->devices.count >= gw->config.gateway.max_devices;
    *out_refusal = table_full ? "device limit of the gateway reached"
                              : "too many unregistered devices are active; try again later";
    GW_WARN_LIMITED(MOD, "%s: %s (%u); %s refused", b->ops->name, *out_refusal,
                    table_full ? gw->config.gateway.max_devices
                               : gw->config.gateway.max_unregistered,
                    from->text);
    gw->metrics.devices_refused++;
    return NULL;
  }
  gw_device_t *dev = device_create(gw, b, from, conf);
  if (!dev) {
    *out_refusal = "out of memory";
    return NULL;
  }
  list_push_tail(&gw->unregistered, dev);
  gw->metrics.devices_created++;
  GW_INFO_LIMITED(MOD, "%s: new device %s at %s", b->ops->name, dev->endpoint, from->text);
  return dev;
}

gw_device_t *gw_admission_restore(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *addr,
                                  const gw_device_conf_t *conf, const gw_state_device_t *saved) {
  gw_device_t *dev = device_create(gw, b, addr, conf);
  if (!dev)
    return NULL;
  if (!conf && saved->endpoint[0])
    snprintf(dev->endpoint, sizeof(dev->endpoint), "%s", saved->endpoint);
  dev->device_params = saved->params;
  dev->server_instance = saved->server_instance;
  dev->queue_mode = dev->queue_mode || saved->queue_mode;
  dev->local_port = saved->local_port;
  dev->registered_port = saved->registered_port;
  dev->registered_at = dev->saved_registered_at = saved->registered_at;
  dev->last_active_ms = gw_now_ms();
  if (!saved->registered) {
    list_push_tail(&gw->unregistered, dev);
    return dev;
  }
  snprintf(dev->location, sizeof(dev->location), "%s", saved->location);
  dev->registered = true;
  uint32_t lifetime = saved->params.has_lifetime ? saved->params.lifetime : 86400u;
  int64_t left = saved->registered_at + (int64_t)lifetime + gw_state_renewal_slack_s(lifetime) -
                 gw_wall_s();
  gw_admission_registered(gw, dev, left > 0 ? (uint32_t)left : 0, saved->upstream_key);
  return dev;
}

void gw_admission_touch(gw_gateway_t *gw, gw_device_t *dev) {
  dev->last_active_ms = gw_now_ms();
  if (dev->unreg_linked)
    list_push_tail(&gw->unregistered, dev);
}

static void registration_lapsed(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_device_t *dev = arg;
  GW_NOTICE(MOD, "%s: registration lapsed (its lifetime passed without an Update)",
            dev->endpoint);
  dev->registered = false;
  gw_admission_deregistered(dev->gateway, dev);
}

void gw_admission_registered(gw_gateway_t *gw, gw_device_t *dev, uint32_t lifetime_s,
                             uint32_t upstream_key) {
  list_unlink(&gw->unregistered, dev);
  gw_device_index_registration(&gw->devices, dev, upstream_key);
  gw_timer_stop(gw->loop, &dev->lifetime_timer);
  gw_timer_init(&dev->lifetime_timer, registration_lapsed, dev);
  gw_timer_start(gw->loop, &dev->lifetime_timer,
                 (uint64_t)lifetime_s * 1000u + REGISTRATION_GRACE_MS);
}

void gw_admission_deregistered(gw_gateway_t *gw, gw_device_t *dev) {
  gw_timer_stop(gw->loop, &dev->lifetime_timer);
  gw_device_unindex_registration(&gw->devices, dev);
  dev->last_active_ms = gw_now_ms();
  list_push_tail(&gw->unregistered, dev);
}

void gw_admission_forget(gw_gateway_t *gw, gw_device_t *dev) {
  gw_timer_stop(gw->loop, &dev->lifetime_timer);
  gw_timer_stop(gw->loop, &dev->uplink_retry_timer);
  gw_timer_stop(gw->loop, &dev->session_renew_timer);
  gw_device_unindex_registration(&gw->devices, dev);
  list_unlink(&gw->unregistered, dev);
}
