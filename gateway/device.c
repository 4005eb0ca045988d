#include "device.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "gw_error.h"
#include "gw_text.h"

/* FNV-1a over the binding pointer and the address text. */
static size_t addr_hash(const gw_binding_t *binding, const gw_baddr_t *addr) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)binding;
  for (const char *p = addr->text; *p; p++) {
    h ^= (uint8_t)*p;
    h *= 1099511628211ull;
  }
  return (size_t)h;
}

int gw_device_table_init(gw_device_table_t *table, size_t bucket_count) {
  *table = (gw_device_table_t){0};
  table->buckets = calloc(bucket_count, sizeof(*table->buckets));
  table->by_registration = calloc(bucket_count, sizeof(*table->by_registration));
  if (!table->buckets || !table->by_registration) {
    free(table->buckets);
    free(table->by_registration);
    *table = (gw_device_table_t){0};
    return GW_ERR_NOMEM;
  }
  table->bucket_count = bucket_count;
  return GW_OK;
}

void gw_device_table_clear(gw_device_table_t *table, void (*free_fn)(gw_device_t *, void *),
                           void *arg) {
  for (size_t i = 0; i < table->bucket_count; i++) {
    gw_device_t *dev = table->buckets[i];
    while (dev) {
      gw_device_t *next = dev->hash_next;
      if (free_fn)
        free_fn(dev, arg);
      gw_device_free(dev);
      dev = next;
    }
  }
  free(table->buckets);
  free(table->by_registration);
  *table = (gw_device_table_t){0};
}

gw_device_t *gw_device_find(const gw_device_table_t *table, const gw_binding_t *binding,
                            const gw_baddr_t *addr) {
  size_t b = addr_hash(binding, addr) % table->bucket_count;
  for (gw_device_t *dev = table->buckets[b]; dev; dev = dev->hash_next)
    if (dev->binding == binding && strcmp(dev->addr.text, addr->text) == 0)
      return dev;
  return NULL;
}

gw_device_t *gw_device_add(gw_device_table_t *table, gw_binding_t *binding, const gw_baddr_t *addr,
                           size_t downlink_queue_length) {
  gw_device_t *dev = calloc(1, sizeof(*dev));
  if (!dev)
    return NULL;
  dev->binding = binding;
  dev->addr = *addr;
  dev->downlink_capacity = GW_MAX_INFLIGHT_DOWN + downlink_queue_length;
  dev->downlink = calloc(dev->downlink_capacity, sizeof(*dev->downlink));
  dev->journal_slot = UINT32_MAX; /* GW_JOURNAL_NO_SLOT until the gateway gives it one */
  if (!dev->downlink || gw_dedup_init(&dev->uplink_dedup, GW_DEDUP_ENTRIES) != GW_OK ||
      gw_dedup_init(&dev->downlink_dedup, GW_DEDUP_ENTRIES) != GW_OK) {
    gw_device_free(dev);
    return NULL;
  }
  for (size_t i = 0; i < dev->downlink_capacity; i++)
    dev->downlink[i].device = dev;
  gw_timer_init(&dev->lifetime_timer, NULL, NULL);
  gw_timer_init(&dev->uplink_retry_timer, NULL, NULL);
  gw_timer_init(&dev->session_renew_timer, NULL, NULL);
  size_t b = addr_hash(binding, addr) % table->bucket_count;
  dev->hash_next = table->buckets[b];
  table->buckets[b] = dev;
  table->count++;
  return dev;
}

void gw_device_remove(gw_device_table_t *table, gw_device_t *dev) {
  gw_device_unindex_registration(table, dev);
  size_t b = addr_hash(dev->binding, &dev->addr) % table->bucket_count;
  for (gw_device_t **p = &table->buckets[b]; *p; p = &(*p)->hash_next) {
    if (*p == dev) {
      *p = dev->hash_next;
      table->count--;
      return;
    }
  }
}

void gw_device_free(gw_device_t *dev) {
  if (!dev)
    return;
  for (size_t i = 0; dev->downlink && i < dev->downlink_capacity; i++)
    free(dev->downlink[i].request);
  free(dev->downlink);
  for (size_t i = 0; i < GW_MAX_UPLINK; i++)
    free(dev->uplink[i].datagram);
  while (dev->waiting) {
    gw_uplink_waiting_t *w = dev->waiting;
    dev->waiting = w->next;
    free(w);
  }
  gw_dedup_clear(&dev->uplink_dedup);
  gw_dedup_clear(&dev->downlink_dedup);
  free(dev);
}

static size_t registration_bucket(const gw_device_table_t *table, uint32_t upstream_key,
                                  const char *location) {
  return (gw_hash_str(location) ^ upstream_key) % table->bucket_count;
}

void gw_device_index_registration(gw_device_table_t *table, gw_device_t *dev,
                                  uint32_t upstream_key) {
  gw_device_unindex_registration(table, dev);
  dev->upstream_key = upstream_key;
  size_t b = registration_bucket(table, upstream_key, dev->location);
  dev->registration_next = table->by_registration[b];
  table->by_registration[b] = dev;
  dev->indexed = true;
}

void gw_device_unindex_registration(gw_device_table_t *table, gw_device_t *dev) {
  if (!dev->indexed)
    return;
  size_t b = registration_bucket(table, dev->upstream_key, dev->location);
  for (gw_device_t **p = &table->by_registration[b]; *p; p = &(*p)->registration_next) {
    if (*p == dev) {
      *p = dev->registration_next;
      break;
    }
  }
  dev->registration_next = NULL;
  dev->indexed = false;
}

gw_device_t *gw_device_find_registration(const gw_device_table_t *table, uint32_t upstream_key,
                                         const char *location) {
  size_t b = registration_bucket(table, upstream_key, location);
  for (gw_device_t *dev = table->by_registration[b]; dev; dev = dev->registration_next)
    if (dev->upstream_key == upstream_key && strcmp(dev->location, location) == 0)
      return dev;
  return NULL;
}

void gw_device_foreach(const gw_device_table_t *table, void (*fn)(gw_device_t *, void *),
                       void *arg) {
  for (size_t i = 0; i < table->bucket_count; i++) {
    gw_device_t *dev = table->buckets[i];
    while (dev) {
      gw_device_t *next = dev->hash_next;
      fn(dev, arg);
      dev = next;
    }
  }
}

/* ---- relay mapping tables ---- */

static bool token_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

gw_uplink_xchg_t *gw_uplink_add(gw_device_t *dev, const gw_coap_msg_t *request, uint64_t now_ms) {
  for (size_t i = 0; i < GW_MAX_UPLINK; i++) {
    gw_uplink_xchg_t *x = &dev->uplink[i];
    /* A NON request may never be answered: past EXCHANGE_LIFETIME its slot is free again. */
    if (x->used && now_ms - x->started_ms < GW_EXCHANGE_LIFETIME_MS)
      continue;
    free(x->datagram);
    *x = (gw_uplink_xchg_t){.used = true,
                            .token_len = request->token_len,
                            .device_mid = request->mid,
                            .device_type = request->type,
                            .method = request->code,
                            .started_ms = now_ms};
    memcpy(x->token, request->token, request->token_len);
    return x;
  }
  return NULL;
}

gw_uplink_xchg_t *gw_uplink_find(gw_device_t *dev, const uint8_t *token, size_t token_len) {
  for (size_t i = 0; i < GW_MAX_UPLINK; i++) {
    gw_uplink_xchg_t *x = &dev->uplink[i];
    if (x->used && token_equal(x->token, x->token_len, token, token_len))
      return x;
  }
  return NULL;
}

bool gw_uplink_has_room(const gw_device_t *dev, uint64_t now_ms) {
  for (size_t i = 0; i < GW_MAX_UPLINK; i++)
    if (!dev->uplink[i].used || now_ms - dev->uplink[i].started_ms >= GW_EXCHANGE_LIFETIME_MS)
      return true;
  return false;
}

void gw_uplink_remove(gw_uplink_xchg_t *x) {
  free(x->datagram);
  *x = (gw_uplink_xchg_t){0};
}

gw_downlink_xchg_t *gw_downlink_alloc(gw_device_t *dev, bool in_queue) {
  size_t inflight = gw_downlink_count(dev, GW_DOWN_INFLIGHT) +
                    gw_downlink_count(dev, GW_DOWN_SEPARATE);
  size_t queued = gw_downlink_count(dev, GW_DOWN_QUEUED);
  if (in_queue ? queued >= dev->downlink_capacity - GW_MAX_INFLIGHT_DOWN
               : inflight >= GW_MAX_INFLIGHT_DOWN)
    return NULL;
  for (size_t i = 0; i < dev->downlink_capacity; i++) {
    gw_downlink_xchg_t *x = &dev->downlink[i];
    if (x->used)
      continue;
    memset(x, 0, sizeof(*x));
    x->used = true;
    x->device = dev;
    x->state = in_queue ? GW_DOWN_QUEUED : GW_DOWN_INFLIGHT;
    x->piggyback_timer.heap_index = -1;
    x->deadline_timer.heap_index = -1;
    x->retransmit_timer.heap_index = -1;
    return x;
  }
  return NULL;
}

gw_downlink_xchg_t *gw_downlink_find_by_mid(gw_device_t *dev, uint16_t device_mid) {
  for (size_t i = 0; i < dev->downlink_capacity; i++) {
    gw_downlink_xchg_t *x = &dev->downlink[i];
    if (x->used && x->state != GW_DOWN_QUEUED && x->device_mid == device_mid)
      return x;
  }
  return NULL;
}

gw_downlink_xchg_t *gw_downlink_find_by_token(gw_device_t *dev, const uint8_t *token,
                                              size_t token_len) {
  for (size_t i = 0; i < dev->downlink_capacity; i++) {
    gw_downlink_xchg_t *x = &dev->downlink[i];
    if (x->used && x->state != GW_DOWN_QUEUED &&
        token_equal(x->token, x->token_len, token, token_len))
      return x;
  }
  return NULL;
}

gw_downlink_xchg_t *gw_downlink_find_by_server_mid(gw_device_t *dev, uint16_t server_mid) {
  for (size_t i = 0; i < dev->downlink_capacity; i++) {
    gw_downlink_xchg_t *x = &dev->downlink[i];
    if (x->used && x->server_mid == server_mid)
      return x;
  }
  return NULL;
}

size_t gw_downlink_count(const gw_device_t *dev, gw_down_state_t state) {
  size_t n = 0;
  for (size_t i = 0; i < dev->downlink_capacity; i++)
    n += dev->downlink[i].used && dev->downlink[i].state == state;
  return n;
}

void gw_downlink_release(gw_loop_t *loop, gw_downlink_xchg_t *x) {
  if (loop) {
    gw_timer_stop(loop, &x->piggyback_timer);
    gw_timer_stop(loop, &x->deadline_timer);
    gw_timer_stop(loop, &x->retransmit_timer);
  }
  free(x->request);
  gw_device_t *dev = x->device;
  memset(x, 0, sizeof(*x));
  x->device = dev;
  x->piggyback_timer.heap_index = -1;
  x->deadline_timer.heap_index = -1;
  x->retransmit_timer.heap_index = -1;
}

gw_observation_t *gw_observation_find(gw_device_t *dev, const uint8_t *token, size_t token_len) {
  for (size_t i = 0; i < GW_MAX_OBSERVATIONS; i++) {
    gw_observation_t *o = &dev->observations[i];
    if (o->used && token_equal(o->token, o->token_len, token, token_len))
      return o;
  }
  return NULL;
}

gw_observation_t *gw_observation_add(gw_device_t *dev, const uint8_t *token, size_t token_len,
                                     const char *path) {
  gw_observation_t *o = gw_observation_find(dev, token, token_len);
  for (size_t i = 0; !o && i < GW_MAX_OBSERVATIONS; i++)
    if (!dev->observations[i].used)
      o = &dev->observations[i];
  if (!o)
    return NULL;
  *o = (gw_observation_t){.used = true, .token_len = (uint8_t)token_len};
  memcpy(o->token, token, token_len);
  snprintf(o->path, sizeof(o->path), "%s", path);
  return o;
}

void gw_observation_remove(gw_observation_t *obs) { *obs = (gw_observation_t){0}; }

size_t gw_observation_count(const gw_device_t *dev) {
  size_t n = 0;
  for (size_t i = 0; i < GW_MAX_OBSERVATIONS; i++)
    n += dev->observations[i].used;
  return n;
}

