/* lwm2m-gw: Appendix C retransmission logic as a state machine. See late_delivery.h. */
#include "late_delivery.h"

#include "coap_msg.h"

static gw_late_step_t wait(uint32_t deadline_ms, uint32_t resend_ms) {
  return (gw_late_step_t){.action = GW_LATE_WAIT, .deadline_ms = deadline_ms,
                          .resend_ms = resend_ms};
}

static gw_late_step_t answer(uint8_t code, const char *reason) {
  return (gw_late_step_t){.action = GW_LATE_ANSWER, .code = code, .reason = reason};
}

static gw_late_step_t ignore(void) { return (gw_late_step_t){.action = GW_LATE_IGNORE}; }

gw_late_step_t gw_late_start(gw_late_t *s, const gw_late_params_t *p, bool con) {
  *s = (gw_late_t){.resends_left = con ? p->max_retransmit : 0};
  return wait(p->held_max_ms, 0);
}

/* C.3.2.2 step 2: the copy went out; the device answers within ACK_TIMEOUT or (step 3) it is
 * sent again. The deadline covers every copy still allowed, so that what is saved of it across
 * a restart bounds the whole exchange. */
static gw_late_step_t copy_sent(gw_late_t *s, const gw_late_params_t *p) {
  if (s->sent || s->acked)
    return ignore();
  s->sent = true;
  uint32_t copies = (uint32_t)s->resends_left + 1u;
  return wait(p->ack_timeout_ms * copies, s->resends_left ? p->ack_timeout_ms : 0);
}

gw_late_step_t gw_late_report(gw_late_t *s, const gw_late_params_t *p,
                              const gw_delivery_report_t *r) {
  switch (r->status) {
  case GW_DELIVERY_QUEUED:
    return ignore();
  case GW_DELIVERY_SENT:
    return copy_sent(s, p);
  case GW_DELIVERY_ACKED: /* C.3.1.2 step 3: the device has it; its answer is due */
    if (s->acked)
      return ignore();
    s->acked = true;
    s->resends_left = 0;
    return wait(p->ack_timeout_ms, 0);
  case GW_DELIVERY_NACKED:
    return answer(GW_COAP_GATEWAY_TIMEOUT,
                  r->reason ? r->reason : "the device did not acknowledge the downlink");
  case GW_DELIVERY_FAILED:
    return answer(GW_COAP_SERVICE_UNAVAILABLE,
                  r->reason ? r->reason : "the network did not deliver the downlink");
  case GW_DELIVERY_TOO_LARGE:
    return answer(GW_COAP_REQUEST_TOO_LARGE,
                  r->reason ? r->reason : "too large for the device's data rate");
  }
  return ignore();
}

gw_late_step_t gw_late_resend_due(gw_late_t *s, const gw_late_params_t *p) {
  if (!s->sent || s->acked || s->resends_left == 0)
    return ignore();
  s->resends_left--;
  s->sent = false; /* the new copy's ACK_TIMEOUT starts at its own "sent" report */
  gw_late_step_t step = wait(p->held_max_ms, 0);
  step.action = GW_LATE_RESEND;
  return step;
}

gw_late_step_t gw_late_deadline(const gw_late_t *s) {
  if (!s->sent && !s->acked)
    return answer(GW_COAP_GATEWAY_TIMEOUT, "the network never sent the downlink");
  return answer(GW_COAP_GATEWAY_TIMEOUT, "no answer from the device within ACK_TIMEOUT");
}
