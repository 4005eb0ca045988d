/* lwm2m-gw: which addresses become devices, and for how long (issue 11, "nobody locked out").
 *
 * Only a request makes an address a device. A device that has not registered (or has
 * de-registered, or let its registration lapse) is on the gateway's unregistered list, least
 * recently active first: it holds its slot only while it is active, at most
 * gateway.max_unregistered of them at once, and when the list is full the least recently active
 * one with nothing in flight makes room. A flood from many source addresses thereby cannot keep
 * a real device from registering, and cannot fill the device table for good. Registered devices
 * are kept for their registration's lifetime (LwM2M Core 6.2.1 "lt"), then join the list.
 */
#ifndef GW_ADMISSION_H
#define GW_ADMISSION_H

#include "gateway.h"
#include "state.h"

void gw_admission_init(gw_gateway_t *gw);
void gw_admission_stop(gw_gateway_t *gw);

/* The device for a request from `from` on b, created when needed. NULL when refused; then
 * *out_refusal says why for the 5.03's diagnostic payload, or is NULL when the address is not
 * to be answered at all (not a configured device on a binding that takes only those). */
gw_device_t *gw_admit_device(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                             const char **out_refusal);

/* A device saved by an earlier run (state.h), made again with its registration: on the
 * registered side until the rest of its lifetime has passed, else on the unregistered list.
 * No limit applies: these devices were admitted before. */
gw_device_t *gw_admission_restore(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *addr,
                                  const gw_device_conf_t *conf, const gw_state_device_t *saved);

/* dev was heard from, or the server sent it something. */
void gw_admission_touch(gw_gateway_t *gw, gw_device_t *dev);
/* dev registered or updated with lifetime_s at dev->location of the upstream with
 * upstream_key: off the unregistered list until that has passed, and in the registration
 * index (device.h). */
void gw_admission_registered(gw_gateway_t *gw, gw_device_t *dev, uint32_t lifetime_s,
                             uint32_t upstream_key);
/* dev de-registered: out of the registration index, back on the unregistered list. */
void gw_admission_deregistered(gw_gateway_t *gw, gw_device_t *dev);
/* dev is going away: off every list, its timers stopped. */
void gw_admission_forget(gw_gateway_t *gw, gw_device_t *dev);

#endif
