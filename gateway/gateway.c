/* lwm2m-gw: composition of the gateway: configuration, bindings, devices, upstream, metrics. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"
#include "metrics.h"
#include "relay.h"
#include "state.h"
#include "upstream.h"

#define MOD "gateway"

/* ---- callbacks given to the bindings ---- */

static void on_binding_message(void *core, gw_binding_t *binding, const gw_baddr_t *from,
                               const uint8_t *data, size_t len) {
  gw_relay_device_datagram(core, binding, from, data, len);
}

static void on_binding_rejected(void *core, gw_binding_t *binding, const gw_baddr_t *from,
                                const char *reason) {
  gw_gateway_t *gw = core;
  gw->metrics.rejected++;
  GW_WARN_LIMITED(MOD, "%s: input from %s rejected: %s", binding->ops->name, from ? from->text : "?",
          reason);
}

static void on_binding_state_put(void *core, gw_binding_t *binding, const char *key,
                                 const void *value, size_t len, bool durable_now) {
  gw_gateway_t *gw = core;
  if (!gw->state)
    return;
  gw_state_put_binding(gw->state, binding->ops->name, key, value, len);
  if (durable_now)
    gw_state_commit(gw->state);
}

static void on_binding_state_del(void *core, gw_binding_t *binding, const char *key) {
  gw_gateway_t *gw = core;
  if (gw->state)
    gw_state_del_binding(gw->state, binding->ops->name, key);
}

static void on_binding_delivery(void *core, gw_binding_t *binding, const gw_baddr_t *to,
                                const gw_delivery_report_t *report) {
  gw_gateway_t *gw = core;
  gw_device_t *dev = gw_device_find(&gw->devices, binding, to);
  if (dev)
    gw_relay_delivery(gw, dev, report);
}

static int create_bindings(gw_gateway_t *gw, const gw_binding_ops_t *const *registry,
                           size_t count) {
  gw_binding_env_t env = {.loop = gw->loop, .core = gw, .on_message = on_binding_message,
                          .on_rejected = on_binding_rejected,
                          .state_put = on_binding_state_put, .state_del = on_binding_state_del,
                          .on_delivery = on_binding_delivery};
  for (size_t i = 0; i < count && gw->binding_count < GW_MAX_BINDINGS; i++) {
    if (!registry[i]->enabled(&gw->config))
      continue;
    gw_binding_t *b = NULL;
    int rc = registry[i]->create(&gw->config, &env, &b);
    if (rc != GW_OK) {
      GW_ERR(MOD, "binding %s: %s", registry[i]->name, gw_strerror(rc));
      return rc;
    }
    gw->bindings[gw->binding_count++] = b;
  }
  if (gw->binding_count == 0) {
    GW_ERR(MOD, "no binding is enabled in this build's configuration");
    return GW_ERR_CONFIG;
  }
  return GW_OK;
}

/* Bucket count: a power of two near max_devices, so lookups stay O(1) at the configured scale. */
static size_t bucket_count_for(uint32_t max_devices) {
  size_t n = 64;
  while (n < max_devices && n < (1u << 20))
    n <<= 1;
  return n;
}

/* Once per turn of the event loop, before it waits: what the turn changed is committed in one
 * transaction (state.h). */
static int flush_state(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_gateway_t *gw = arg;
  gw_state_flush(gw->state);
  return -1;
}

/* ---- devices saved by an earlier run ---- */

static gw_binding_t *binding_named(gw_gateway_t *gw, const char *name) {
  for (size_t i = 0; i < gw->binding_count; i++)
    if (strcmp(gw->bindings[i]->ops->name, name) == 0)
      return gw->bindings[i];
  return NULL;
}

/* Why a saved device is not restored, or NULL when it is. */
static const char *restore_refusal(gw_gateway_t *gw, gw_binding_t *b,
                                   const gw_state_device_t *saved, const gw_baddr_t *addr,
                                   const gw_device_conf_t *conf) {
  if (!b)
    return "its binding is not enabled any more";
  if (!conf && !gw_binding_policy(b)->accept_unknown)
    return "it is not in the configuration any more";
  const gw_upstream_conf_t *u = gw_binding_upstream(b, &gw->config, addr, conf);
  if (!u || (saved->upstream_key && (uint32_t)gw_hash_str(u->uri) != saved->upstream_key))
    return "its upstream server changed";
  uint32_t lifetime = saved->params.has_lifetime ? saved->params.lifetime : 86400u;
  if (saved->registered && saved->registered_at + (int64_t)lifetime +
                                   gw_state_renewal_slack_s(lifetime) < gw_wall_s())
    return "its registration's lifetime passed";
  return NULL;
}

static gw_device_t *restore_device(void *arg, const gw_state_device_t *saved) {
  gw_gateway_t *gw = arg;
  gw_baddr_t addr;
  snprintf(addr.text, sizeof(addr.text), "%s", saved->address);
  gw_binding_t *b = binding_named(gw, saved->binding);
  const gw_device_conf_t *conf = b ? gw_binding_lookup_device(b, &gw->config, &addr) : NULL;
  const char *why = restore_refusal(gw, b, saved, &addr, conf);
  if (why) {
    GW_NOTICE(MOD, "%s (%s %s) not restored: %s", saved->endpoint, saved->binding,
              saved->address, why);
    return NULL;
  }
  gw_device_t *dev = gw_admission_restore(gw, b, &addr, conf, saved);
  if (!dev)
    return NULL;
  if (gw_upstream_open(gw->upstream, dev) != GW_OK)
    GW_WARN(MOD, "%s: no upstream session yet; opened on its next message", dev->endpoint);
  dev->saved_port = saved->local_port;
  return dev;
}

static void restore_observation(void *arg, gw_device_t *dev, const uint8_t *token,
                                size_t token_len, const char *path) {
  (void)arg;
  gw_observation_add(dev, token, token_len, path);
}

static void restore_downlink(void *arg, gw_device_t *dev, const gw_state_downlink_t *saved) {
  gw_relay_restore_downlink(arg, dev, saved);
}

static void restore_uplink(void *arg, gw_device_t *dev, int64_t id, const uint8_t *data,
                           size_t len, int64_t received_at) {
  gw_relay_restore_uplink(arg, dev, id, data, len, received_at);
}

static void resume_device(gw_device_t *dev, void *arg) { gw_relay_resume(arg, dev); }

static void restore_devices(gw_gateway_t *gw) {
  gw_state_restore_t cb = {.arg = gw, .device = restore_device,
                           .observation = restore_observation, .downlink = restore_downlink,
                           .uplink = restore_uplink};
  size_t n = gw_state_restore(gw->state, &cb);
  gw_journal_release_unclaimed(gw_state_journal(gw->state));
  if (n)
    GW_NOTICE(MOD, "%zu devices restored from the state of the last run", n);
}

int gw_gateway_new(gw_loop_t *loop, gw_config_t *config, const gw_binding_ops_t *const *registry,
                   size_t registry_count, gw_gateway_t **out_gw) {
  gw_gateway_t *gw = calloc(1, sizeof(*gw));
  if (!gw)
    return GW_ERR_NOMEM;
  gw->loop = loop;
  gw_admission_init(gw);
  gw->config = *config;
  memset(config, 0, sizeof(*config));
  int rc = gw_device_table_init(&gw->devices, bucket_count_for(gw->config.gateway.max_devices));
  if (rc == GW_OK)
    rc = gw_upstream_new(gw, &gw->upstream);
  /* The state directory first: bindings keep files of their own in it (SMS secured packets). */
  if (rc == GW_OK)
    rc = gw_state_open(gw->config.gateway.state_dir, gw->config.gateway.max_devices,
                       &gw->state);
  if (rc == GW_OK)
    rc = create_bindings(gw, registry, registry_count);
  if (rc == GW_OK)
    rc = gw_loop_add_prepare(loop, flush_state, gw);
  if (rc != GW_OK) {
    gw_gateway_free(&gw);
    return rc;
  }
  *out_gw = gw;
  return GW_OK;
}

static void restore_binding_value(void *arg, const char *key, const void *value, size_t len) {
  gw_binding_t *b = arg;
  b->ops->restore(b, key, value, len);
}

int gw_gateway_start(gw_gateway_t *gw) {
  /* Devices first: what a binding's own state completes (a concatenated SMS whose last part
   * the modem still had) is relayed on the device's restored session. What waited goes out
   * last, when each binding knows its devices again (an HTTP device's URL and location). */
  restore_devices(gw);
  for (size_t i = 0; i < gw->binding_count; i++)
    if (gw->bindings[i]->ops->restore)
      gw_state_restore_binding(gw->state, gw->bindings[i]->ops->name, restore_binding_value,
                               gw->bindings[i]);
  gw_device_foreach(&gw->devices, resume_device, gw);
  for (size_t i = 0; i < gw->binding_count; i++) {
    int rc = gw->bindings[i]->ops->start(gw->bindings[i]);
    if (rc != GW_OK)
      return rc;
  }
  if (gw->config.gateway.metrics)
    return gw_metrics_server_start(gw, gw->config.gateway.metrics);
  return GW_OK;
}

/* The gateway stops. With persistent state every device, its registration and the server's
 * requests it has not answered stay in the state for the next start (a restart or upgrade loses
 * nothing); without, what is in flight is answered 5.03 now. */
static void device_teardown(gw_device_t *dev, void *arg) {
  gw_gateway_t *gw = arg;
  if (!gw->state || !gw_state_persistent(gw->state))
    gw_relay_device_abort(gw, dev);
  for (size_t i = 0; i < dev->downlink_capacity; i++) /* kept in the state: timers only */
    if (dev->downlink[i].used)
      gw_downlink_release(gw->loop, &dev->downlink[i]);
  gw_upstream_close(gw->upstream, dev);
  gw_admission_forget(gw, dev);
}

void gw_gateway_free(gw_gateway_t **pgw) {
  gw_gateway_t *gw = *pgw;
  if (!gw)
    return;
  gw_metrics_server_stop(gw);
  gw_admission_stop(gw);
  if (gw->devices.buckets)
    gw_device_table_clear(&gw->devices, device_teardown, gw);
  for (size_t i = 0; i < gw->binding_count; i++)
    gw->bindings[i]->ops->free(&gw->bindings[i]);
  gw_state_close(&gw->state);
  gw_upstream_free(&gw->upstream);
  gw_config_free(&gw->config);
  free(gw);
  *pgw = NULL;
}

/* ---- SIGHUP reload ---- */

static bool same_string(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool upstream_conf_changed(const gw_upstream_conf_t *a, const gw_upstream_conf_t *b) {
  if (!a || !b)
    return a != b;
  return !same_string(a->uri, b->uri) || a->profile != b->profile ||
         !same_string(a->ca_file, b->ca_file) || !same_string(a->cert_file, b->cert_file) ||
         !same_string(a->key_file, b->key_file);
}

typedef struct {
  gw_gateway_t *gw;
  gw_config_t *next;
  size_t kept, reset, removed;
} reload_ctx_t;

static void drop_session(gw_gateway_t *gw, gw_device_t *dev) {
  gw_relay_device_abort(gw, dev);
  gw_upstream_close(gw->upstream, dev);
  gw_binding_forget_device(dev->binding, &dev->addr);
  if (dev->registered)
    gw_admission_deregistered(gw, dev);
  dev->registered = false;
  gw_state_save_device(gw->state, dev);
}

void gw_gateway_drop_device(gw_gateway_t *gw, gw_device_t *dev) {
  drop_session(gw, dev);
  gw_admission_forget(gw, dev);
  gw_state_forget_device(gw->state, dev);
  gw_journal_release(gw_state_journal(gw->state), dev->journal_slot);
  gw_device_remove(&gw->devices, dev);
  gw_device_free(dev);
}

/* Decides per device: keep its session, reset it (new credentials or server), or remove it. */
static void reload_device(gw_device_t *dev, void *arg) {
  reload_ctx_t *r = arg;
  const gw_device_conf_t *next = gw_binding_lookup_device(dev->binding, r->next, &dev->addr);
  const gw_link_policy_t *policy = gw_binding_policy(dev->binding);
  if (!next && dev->conf && !policy->accept_unknown) {
    GW_NOTICE(MOD, "%s: removed from the configuration; session closed", dev->endpoint);
    gw_gateway_drop_device(r->gw, dev);
    r->removed++;
    return;
  }
  bool changed;
  if (!next || !dev->conf)
    changed = next != dev->conf && dev->upstream != NULL;
  else
    changed = gw_device_conf_session_changed(dev->conf, next);
  changed = changed ||
            upstream_conf_changed(
                gw_binding_upstream(dev->binding, &r->gw->config, &dev->addr, dev->conf),
                gw_binding_upstream(dev->binding, r->next, &dev->addr, next));
  if (changed && dev->upstream) {
    GW_NOTICE(MOD, "%s: settings changed; the upstream session is renewed", dev->endpoint);
    drop_session(r->gw, dev);
    r->reset++;
  } else {
    if (changed)
      gw_binding_forget_device(dev->binding, &dev->addr);
    r->kept++;
  }
  dev->conf = next;
  if (next)
    snprintf(dev->endpoint, sizeof(dev->endpoint), "%s", next->endpoint);
  dev->queue_mode = (next && next->queue_mode) || policy->sleepy || dev->device_params.queue_mode;
}

static void warn_restart_needed(const gw_config_t *old, const gw_config_t *next) {
  if (!same_string(old->bindings.nidd.sgi_listen, next->bindings.nidd.sgi_listen) ||
      old->bindings.nidd.enabled != next->bindings.nidd.enabled ||
      old->bindings.sms.enabled != next->bindings.sms.enabled ||
      old->bindings.mqtt.enabled != next->bindings.mqtt.enabled ||
      !same_string(old->bindings.mqtt.broker, next->bindings.mqtt.broker) ||
      old->bindings.http.enabled != next->bindings.http.enabled ||
      !same_string(old->bindings.http.listen, next->bindings.http.listen) ||
      !same_string(old->bindings.sms.modem, next->bindings.sms.modem) ||
      !same_string(old->bindings.sms.pin, next->bindings.sms.pin) ||
      !same_string(old->gateway.metrics, next->gateway.metrics) ||
      old->gateway.max_devices != next->gateway.max_devices ||
      old->gateway.downlink_queue_length != next->gateway.downlink_queue_length)
    GW_WARN(MOD, "binding, metrics and table-size settings take effect only after a restart");
}

#define SWAP(a, b)                                                                             \
  do {                                                                                         \
    __typeof__(a) t_ = (a);                                                                    \
    (a) = (b);                                                                                 \
    (b) = t_;                                                                                  \
  } while (0)

int gw_gateway_reload(gw_gateway_t *gw, gw_config_t *next) {
  warn_restart_needed(&gw->config, next);
  reload_ctx_t r = {.gw = gw, .next = next};
  gw_device_foreach(&gw->devices, reload_device, &r);
  /* What was set up at start (sockets, tables) keeps running as it is until a restart: move
   * those settings from the running configuration into the new one before the old is freed. */
  gw_config_t old = gw->config;
  SWAP(old.gateway.metrics, next->gateway.metrics);
  SWAP(old.gateway.state_dir, next->gateway.state_dir);
  SWAP(old.bindings.nidd, next->bindings.nidd);
  SWAP(old.bindings.sms, next->bindings.sms);
  SWAP(old.bindings.mqtt, next->bindings.mqtt);
  SWAP(old.bindings.http, next->bindings.http);
  SWAP(old.bindings.lorawan, next->bindings.lorawan);
  /* The SMS allow-list is like the devices list: it takes effect at once. */
  SWAP(old.bindings.sms.allow, next->bindings.sms.allow);
  SWAP(old.bindings.sms.allow_count, next->bindings.sms.allow_count);
  next->gateway.max_devices = old.gateway.max_devices;
  next->gateway.downlink_queue_length = old.gateway.downlink_queue_length;
  gw->config = *next;
  memset(next, 0, sizeof(*next));
  gw_config_free(&old);
  gw_log_set_level((gw_log_level_t)gw->config.gateway.log_level);
  GW_NOTICE(MOD, "configuration reloaded: %zu sessions kept, %zu renewed, %zu devices removed",
            r.kept, r.reset, r.removed);
  return GW_OK;
}
