/* lwm2m-gw: the gateway instance: configuration, event loop, bindings, devices, upstream. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stdint.h>

#include "binding.h"
#include "device.h"
#include "gw_config.h"
#include "loop.h"

#define GW_MAX_BINDINGS 8
#define GW_MAX_DATAGRAM 65536

/* Counters, exported on the metrics endpoint (metrics.c) as lwm2m_gw_<name>_total. */
#define GW_METRICS(X)                                                                          \
  X(datagrams_in, "datagrams received from devices")                                           \
  X(datagrams_out, "datagrams sent to devices")                                                \
  X(malformed, "device datagrams rejected as malformed CoAP")                                  \
  X(rejected, "device datagrams rejected for policy or capacity")                              \
  X(duplicates, "duplicate messages answered from the cache or dropped")                       \
  X(uplink_requests, "device requests relayed upstream")                                       \
  X(uplink_responses, "server responses relayed to devices")                                   \
  X(downlink_requests, "server requests relayed to devices")                                   \
  X(downlink_responses, "device responses relayed to the server")                              \
  X(piggybacked, "responses piggybacked on the server's ACK")                                  \
  X(separate, "responses sent separately after an empty ACK")                                  \
  X(gateway_timeouts, "requests answered 5.04 by the gateway (silent device or server)")                         \
  X(unavailable, "requests answered 5.03 by the gateway (undeliverable)")                                     \
  X(too_large, "server requests answered 4.13: larger than the link carries to the device now") \
  X(late_retransmits, "server requests sent again after ACK_TIMEOUT (Transport Appendix C)")  \
  X(notifications, "notifications relayed upstream")                                           \
  X(queued, "server requests held for sleepy devices")                                         \
  X(sms_triggers, "Executes sent by SMS to wake devices (Transport 6.6)")                      \
  X(upstream_failures, "upstream sessions that could not be created or failed")               \
  X(devices_created, "devices created")                                                        \
  X(devices_dropped, "unregistered devices dropped: idle, or making room for a newcomer")     \
  X(devices_refused, "requests from new addresses refused: device limits reached (5.03)")     \
  X(impersonations, "Register, Update, De-register refused: another device's identity (4.03)") \
  X(uplink_queued, "device requests that waited for their turn behind requests in flight")   \
  X(uplink_refused, "device requests refused: the device's queue was full (5.03)")           \
  X(uplink_retries, "accepted device requests put back to wait for an unreachable server")   \
  X(uplink_expired, "accepted device requests dropped after gateway.uplink_hold_s")

typedef struct {
#define GW_METRIC_FIELD(name, help) uint64_t name;
  GW_METRICS(GW_METRIC_FIELD)
#undef GW_METRIC_FIELD
} gw_metrics_t;

typedef struct gw_upstream gw_upstream_t;
typedef struct gw_state gw_state_t;
typedef struct gw_metrics_server gw_metrics_server_t;

typedef struct gw_gateway {
  gw_loop_t *loop;
  gw_config_t config;
  gw_device_table_t devices;
  gw_device_list_t unregistered; /* admission.h */
  gw_timer_t unregistered_sweep;
  gw_binding_t *bindings[GW_MAX_BINDINGS];
  size_t binding_count;
  gw_upstream_t *upstream;
  gw_state_t *state; /* state.h */
  gw_metrics_t metrics;
  gw_metrics_server_t *metrics_server;
  uint32_t queue_seq;
  uint8_t tx_buf[GW_MAX_DATAGRAM]; /* one datagram being built at a time (single thread) */
} gw_gateway_t;

/* Creates the gateway from a loaded configuration (taken over: the gateway frees it) with the
 * transports of registry (bindings/registry.c in the daemon). */
int gw_gateway_new(gw_loop_t *loop, gw_config_t *config, const gw_binding_ops_t *const *registry,
                   size_t registry_count, gw_gateway_t **out_gw);
/* Restores the devices saved by an earlier run (state.h), then starts the bindings. */
int gw_gateway_start(gw_gateway_t *gw);
/* SIGHUP: applies a new configuration's devices and credentials. Sessions of devices whose
 * settings did not change are kept. Gateway-level and binding settings need a restart; a change
 * there is logged and ignored. Takes over new_config. */
int gw_gateway_reload(gw_gateway_t *gw, gw_config_t *new_config);
void gw_gateway_free(gw_gateway_t **gw);
/* Removes dev: its requests in flight answered 5.03, its upstream session closed, the binding
 * told to forget it; frees it. */
void gw_gateway_drop_device(gw_gateway_t *gw, gw_device_t *dev);

#endif
