/* lwm2m-gw: the relay engine (DESIGN.md "Data flow"). Binding-side datagrams come in through
 * gw_relay_device_datagram(); upstream.c calls the gw_relay_server_* entry points. */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include "gateway.h"
#include "state.h"

typedef enum {
  GW_NACK_TIMEOUT,    /* retransmissions exhausted: the server is silent */
  GW_NACK_RESET,      /* the server answered RST */
  GW_NACK_FAILED,     /* session or DTLS failure, not deliverable */
  GW_NACK_UNREACHABLE /* an ICMP error: libcoap retransmits all the same, not final */
} gw_nack_t;

/* A datagram from a device on binding b. Borrows data. */
void gw_relay_device_datagram(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                              const uint8_t *data, size_t len);
/* A request from the server on dev's upstream session (borrowed msg). */
void gw_relay_server_request(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *request);
/* A response from the server to one of dev's requests (borrowed msg). */
void gw_relay_server_response(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *response);
/* Something the gateway sent upstream was not acknowledged. sent is what was sent (borrowed). */
void gw_relay_upstream_nack(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *sent,
                            gw_nack_t reason);
/* A server request saved by an earlier run (acknowledged empty or queued) that the device has
 * not answered: waiting again, with what is left of its deadline. */
void gw_relay_restore_downlink(gw_gateway_t *gw, gw_device_t *dev,
                               const gw_state_downlink_t *saved);
/* dev's upstream session failed (DTLS error or closed, session failure): a registered device's
 * session is renewed at once from a fresh port, and an Update of the gateway's own tells the
 * server where the device is now. Called from libcoap's event handler: the work is deferred. */
void gw_relay_upstream_lost(gw_gateway_t *gw, gw_device_t *dev);
/* A device request accepted by an earlier run and not answered (state.h): it waits again, with
 * its age, and goes upstream after gw_relay_resume(). */
void gw_relay_restore_uplink(gw_gateway_t *gw, gw_device_t *dev, int64_t id, const uint8_t *data,
                             size_t len, int64_t received_at);
/* After a restore, once the bindings have their own state back: the device's session saved
 * (and the registration moved with an Update of the gateway's own when its old port could not
 * be had again), its waiting requests sent, and on a link whose answers die with the process
 * (link policy) the server's requests that were in flight sent to the device again or answered
 * 5.04. */
void gw_relay_resume(gw_gateway_t *gw, gw_device_t *dev);
/* What became of a datagram sent to dev on a link that reports it (binding.h): the Appendix C
 * timers of the server request it carries start, end, or the server gets its answer. */
void gw_relay_delivery(gw_gateway_t *gw, gw_device_t *dev, const gw_delivery_report_t *report);
/* Fails everything in flight for dev (device removed, session dropped): each server request
 * gets 5.03, each device request 5.03. */
void gw_relay_device_abort(gw_gateway_t *gw, gw_device_t *dev);

#endif
