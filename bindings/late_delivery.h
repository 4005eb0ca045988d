/* lwm2m-gw: the retransmission logic of links that report delivery late (binding.h
 * reports_delivery): LwM2M Transport 1.2.1 Appendix C (CoAP over LoRaWAN), also what NIDD via a
 * SCEF needs. A pure state machine, one per server request in flight toward a device: the relay
 * feeds it the binding's delivery reports and its timers, and does what each step says.
 *
 *  - C.3.2.2 (unconfirmed frames): once the network reports the CON sent, the device has
 *    ACK_TIMEOUT to answer; then it is sent again, up to MAX_RETRANSMIT times, each copy's
 *    timeout counted from its own "sent" report; then the server hears 5.04.
 *  - C.3.1.2 (confirmed frames, max_retransmit 0): the network retransmits; its report that
 *    the device acknowledged the frame, or did not, ends that part: the CoAP answer is due
 *    within ACK_TIMEOUT, a frame the device never acknowledged is 5.04.
 *  - A copy the network holds (a class A device's next RX window) waits at most held_max_ms
 *    for its "sent" report; a network that refuses it ends the exchange with 5.03, one that
 *    finds it too large with 4.13.
 */
#ifndef GW_LATE_DELIVERY_H
#define GW_LATE_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "binding.h"

typedef struct {
  uint8_t max_retransmit;  /* Appendix C.2 MAX_RETRANSMIT (4); 0 with confirmed frames */
  uint32_t ack_timeout_ms; /* Appendix C.2 ACK_TIMEOUT (300 s) */
  uint32_t held_max_ms;    /* the longest a copy waits in the network before it is sent */
} gw_late_params_t;

typedef struct {
  uint8_t resends_left; /* copies still allowed after the current one */
  bool sent;            /* the network reported the current copy sent */
  bool acked;           /* the device acknowledged the frame (a confirmed downlink) */
} gw_late_t;

typedef enum {
  GW_LATE_WAIT,   /* (re)arm the deadline to deadline_ms and the resend timer to resend_ms
                     (0: stop it); nothing else */
  GW_LATE_RESEND, /* send the same message again, then as WAIT */
  GW_LATE_ANSWER, /* the exchange is over: answer the server `code`, `reason` as diagnostic */
  GW_LATE_IGNORE  /* a report that changes nothing (a duplicate, a late one) */
} gw_late_action_t;

typedef struct {
  gw_late_action_t action;
  uint32_t deadline_ms;
  uint32_t resend_ms;
  uint8_t code;       /* ANSWER: a CoAP code (5.04, 5.03, 4.13) */
  const char *reason; /* ANSWER: static text, or the report's own reason */
} gw_late_step_t;

/* A CON (or NON: no copies) was handed to the binding. */
gw_late_step_t gw_late_start(gw_late_t *s, const gw_late_params_t *p, bool con);
/* The binding's report about the current copy. TOO_LARGE answers 4.13: the caller adds Size1. */
gw_late_step_t gw_late_report(gw_late_t *s, const gw_late_params_t *p,
                              const gw_delivery_report_t *r);
/* The resend timer fired. */
gw_late_step_t gw_late_resend_due(gw_late_t *s, const gw_late_params_t *p);
/* The deadline fired: always the end, 5.04. */
gw_late_step_t gw_late_deadline(const gw_late_t *s);

#endif
