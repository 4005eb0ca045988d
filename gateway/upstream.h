/* lwm2m-gw: the upstream side, one libcoap session per device (DESIGN.md).
 *
 * Each device gets its own client session, so its own UDP source port or DTLS session, with its
 * own PSK or certificate. The LwM2M server sees one ordinary CoAP client per device and sends its
 * requests back on that session; the session's app data leads back to the device.
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include "gateway.h"

int gw_upstream_new(gw_gateway_t *gw, gw_upstream_t **out_upstream);
void gw_upstream_free(gw_upstream_t **upstream);

/* Opens dev's session to its configured upstream (no-op when open). */
int gw_upstream_open(gw_upstream_t *upstream, gw_device_t *dev);
void gw_upstream_close(gw_upstream_t *upstream, gw_device_t *dev);

/* Sends msg on dev's session with msg's message ID, which the relay chose (the server's for an
 * ACK or RST; from the exchange journal for CON and NON, journal.h); borrows msg. Returns GW_OK,
 * GW_ERR_UPSTREAM or GW_ERR_NOMEM. */
int gw_upstream_send(gw_device_t *dev, const gw_coap_msg_t *msg);

/* The local UDP port of dev's session, 0 if none (tests, logs). */
unsigned gw_upstream_local_port(const gw_device_t *dev);

#endif
