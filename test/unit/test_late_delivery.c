/* Unit tests of the Appendix C state machine (bindings/late_delivery.h): LwM2M Transport 1.2.1
 * Appendix C.3.1.2 (confirmed frames) and C.3.2.2 (unconfirmed frames), with the C.2 values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coap_msg.h"
#include "late_delivery.h"

#define ACK_TIMEOUT_MS 300000u /* C.2 */
#define HELD_MS 86400000u

static const gw_late_params_t unconfirmed = {.max_retransmit = 4 /* C.2 */,
                                             .ack_timeout_ms = ACK_TIMEOUT_MS,
                                             .held_max_ms = HELD_MS};
static const gw_late_params_t confirmed = {.max_retransmit = 0,
                                           .ack_timeout_ms = ACK_TIMEOUT_MS,
                                           .held_max_ms = HELD_MS};

static gw_late_step_t report(gw_late_t *s, const gw_late_params_t *p, gw_delivery_status_t st) {
  gw_delivery_report_t r = {.status = st, .mid = 1};
  return gw_late_report(s, p, &r);
}

/* C.3.2.2: sent, ACK_TIMEOUT, sent again ... MAX_RETRANSMIT times, then 5.04. */
static void test_unconfirmed_resends_four_times_then_504(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_step_t step = gw_late_start(&s, &unconfirmed, true);
  assert_int_equal(step.action, GW_LATE_WAIT);
  assert_int_equal(step.deadline_ms, HELD_MS); /* no clock before the network sent it */
  assert_int_equal(step.resend_ms, 0);
  for (int copy = 0; copy < 4; copy++) {
    step = report(&s, &unconfirmed, GW_DELIVERY_SENT);
    assert_int_equal(step.action, GW_LATE_WAIT);
    assert_int_equal(step.resend_ms, ACK_TIMEOUT_MS);
    assert_int_equal(step.deadline_ms, ACK_TIMEOUT_MS * (uint32_t)(5 - copy));
    step = gw_late_resend_due(&s, &unconfirmed);
    assert_int_equal(step.action, GW_LATE_RESEND);
    assert_int_equal(step.deadline_ms, HELD_MS); /* the next copy waits for its own report */
    assert_int_equal(step.resend_ms, 0);
  }
  step = report(&s, &unconfirmed, GW_DELIVERY_SENT);
  assert_int_equal(step.action, GW_LATE_WAIT);
  assert_int_equal(step.resend_ms, 0); /* the fifth copy is the last */
  assert_int_equal(step.deadline_ms, ACK_TIMEOUT_MS);
  assert_int_equal(gw_late_resend_due(&s, &unconfirmed).action, GW_LATE_IGNORE);
  step = gw_late_deadline(&s);
  assert_int_equal(step.action, GW_LATE_ANSWER);
  assert_int_equal(step.code, GW_COAP_GATEWAY_TIMEOUT);
}

/* The resend timer only runs once the network said the copy went out. */
static void test_no_resend_before_sent(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &unconfirmed, true);
  assert_int_equal(gw_late_resend_due(&s, &unconfirmed).action, GW_LATE_IGNORE);
  assert_int_equal(report(&s, &unconfirmed, GW_DELIVERY_QUEUED).action, GW_LATE_IGNORE);
  gw_late_step_t step = gw_late_deadline(&s);
  assert_int_equal(step.code, GW_COAP_GATEWAY_TIMEOUT);
  assert_string_equal(step.reason, "the network never sent the downlink");
}

/* A repeated "sent" report does not restart the clock. */
static void test_duplicate_sent_report_ignored(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &unconfirmed, true);
  assert_int_equal(report(&s, &unconfirmed, GW_DELIVERY_SENT).action, GW_LATE_WAIT);
  assert_int_equal(report(&s, &unconfirmed, GW_DELIVERY_SENT).action, GW_LATE_IGNORE);
}

/* A NON is never sent twice. */
static void test_non_has_no_copies(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &unconfirmed, false);
  gw_late_step_t step = report(&s, &unconfirmed, GW_DELIVERY_SENT);
  assert_int_equal(step.resend_ms, 0);
  assert_int_equal(step.deadline_ms, ACK_TIMEOUT_MS);
}

/* C.3.1.2: the network retransmits confirmed frames; its ack ends that part, the CoAP answer
 * is due within ACK_TIMEOUT; a nack is 5.04. */
static void test_confirmed_ack_then_answer_due(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &confirmed, true);
  gw_late_step_t step = report(&s, &confirmed, GW_DELIVERY_SENT);
  assert_int_equal(step.resend_ms, 0);
  step = report(&s, &confirmed, GW_DELIVERY_ACKED);
  assert_int_equal(step.action, GW_LATE_WAIT);
  assert_int_equal(step.deadline_ms, ACK_TIMEOUT_MS);
  assert_int_equal(report(&s, &confirmed, GW_DELIVERY_SENT).action, GW_LATE_IGNORE);
  assert_string_equal(gw_late_deadline(&s).reason, "no answer from the device within ACK_TIMEOUT");
}

static void test_confirmed_nack_is_504(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &confirmed, true);
  report(&s, &confirmed, GW_DELIVERY_SENT);
  gw_late_step_t step = report(&s, &confirmed, GW_DELIVERY_NACKED);
  assert_int_equal(step.action, GW_LATE_ANSWER);
  assert_int_equal(step.code, GW_COAP_GATEWAY_TIMEOUT);
}

/* An ack that comes after a resend was already decided still ends the retransmissions. */
static void test_ack_stops_resends(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &unconfirmed, true);
  report(&s, &unconfirmed, GW_DELIVERY_SENT);
  gw_late_step_t step = report(&s, &unconfirmed, GW_DELIVERY_ACKED);
  assert_int_equal(step.resend_ms, 0);
  assert_int_equal(gw_late_resend_due(&s, &unconfirmed).action, GW_LATE_IGNORE);
}

/* Refusals end the exchange with the network's reason. */
static void test_refusals(void **state) {
  (void)state;
  gw_late_t s;
  gw_late_start(&s, &unconfirmed, true);
  gw_delivery_report_t failed = {.status = GW_DELIVERY_FAILED, .reason = "EXPIRED"};
  gw_late_step_t step = gw_late_report(&s, &unconfirmed, &failed);
  assert_int_equal(step.action, GW_LATE_ANSWER);
  assert_int_equal(step.code, GW_COAP_SERVICE_UNAVAILABLE);
  assert_string_equal(step.reason, "EXPIRED");
  gw_late_start(&s, &unconfirmed, true);
  gw_delivery_report_t big = {.status = GW_DELIVERY_TOO_LARGE, .max_size = 51};
  step = gw_late_report(&s, &unconfirmed, &big);
  assert_int_equal(step.code, GW_COAP_REQUEST_TOO_LARGE);
  assert_non_null(step.reason);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unconfirmed_resends_four_times_then_504),
      cmocka_unit_test(test_no_resend_before_sent),
      cmocka_unit_test(test_duplicate_sent_report_ignored),
      cmocka_unit_test(test_non_has_no_copies),
      cmocka_unit_test(test_confirmed_ack_then_answer_due),
      cmocka_unit_test(test_confirmed_nack_is_504),
      cmocka_unit_test(test_ack_stops_resends),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
