/* Unit tests of message deduplication (RFC 7252 4.5): verdicts, cached answers, lifetimes
 * (EXCHANGE_LIFETIME for CON, NON_LIFETIME for NON, RFC 7252 4.8.2) and the bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dedup.h"
#include "gw_error.h"

#define T0 1000000u /* an arbitrary "now" well away from 0 */

static int setup(void **state) {
  static gw_dedup_t dedup;
  if (gw_dedup_init(&dedup, 4) != GW_OK)
    return -1;
  *state = &dedup;
  return 0;
}

static int teardown(void **state) {
  gw_dedup_clear(*state);
  return 0;
}

static gw_dedup_verdict_t check_mid(gw_dedup_t *d, uint16_t mid, bool con, uint64_t now) {
  const uint8_t *answer = NULL;
  size_t len = 0;
  return gw_dedup_check(d, mid, con, now, &answer, &len);
}

static void test_new_then_in_progress(void **state) {
  gw_dedup_t *d = *state;
  assert_int_equal(check_mid(d, 0x1234, true, T0), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_count(d, T0), 1);
  assert_int_equal(check_mid(d, 0x1234, true, T0 + 1), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 0x1234, false, T0 + 2), GW_DEDUP_IN_PROGRESS);
  /* A duplicate is not a second entry; another MID is. */
  assert_int_equal(gw_dedup_count(d, T0 + 2), 1);
  assert_int_equal(check_mid(d, 0x1235, true, T0 + 3), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_count(d, T0 + 3), 2);
}

static void test_answer_returned_exactly(void **state) {
  gw_dedup_t *d = *state;
  uint8_t answer[] = {0x60, 0x45, 0x12, 0x34, 0xff, 'h', 'i'};
  assert_int_equal(check_mid(d, 0x1234, true, T0), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_answer(d, 0x1234, answer, sizeof(answer)), GW_OK);
  /* The table keeps its own copy: changing the caller's buffer must not change the resend. */
  uint8_t expected[sizeof(answer)];
  memcpy(expected, answer, sizeof(answer));
  memset(answer, 0xAA, sizeof(answer));

  const uint8_t *out = NULL;
  size_t out_len = 0;
  assert_int_equal(gw_dedup_check(d, 0x1234, true, T0 + 10, &out, &out_len), GW_DEDUP_ANSWERED);
  assert_non_null(out);
  assert_int_equal(out_len, sizeof(expected));
  assert_memory_equal(out, expected, sizeof(expected));
  assert_ptr_not_equal(out, answer);

  /* Another MID has no answer. */
  out = NULL;
  assert_int_equal(gw_dedup_check(d, 0x1235, true, T0 + 10, &out, &out_len), GW_DEDUP_NEW);
  assert_null(out);
}

static void test_answer_replaced(void **state) {
  gw_dedup_t *d = *state;
  const uint8_t first[] = {1, 2, 3};
  const uint8_t second[] = {9, 8, 7, 6, 5};
  check_mid(d, 7, true, T0);
  assert_int_equal(gw_dedup_answer(d, 7, first, sizeof(first)), GW_OK);
  assert_int_equal(gw_dedup_answer(d, 7, second, sizeof(second)), GW_OK);
  const uint8_t *out = NULL;
  size_t out_len = 0;
  assert_int_equal(gw_dedup_check(d, 7, true, T0 + 1, &out, &out_len), GW_DEDUP_ANSWERED);
  assert_int_equal(out_len, sizeof(second));
  assert_memory_equal(out, second, sizeof(second));
}

static void test_null_answer(void **state) {
  gw_dedup_t *d = *state;
  assert_int_equal(check_mid(d, 42, false, T0), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_answer(d, 42, NULL, 0), GW_OK);
  const uint8_t *out = (const uint8_t *)"x";
  size_t out_len = 99;
  assert_int_equal(gw_dedup_check(d, 42, false, T0 + 1, &out, &out_len), GW_DEDUP_ANSWERED);
  assert_null(out);
  assert_int_equal(out_len, 0);
}

static void test_answer_unknown_mid(void **state) {
  gw_dedup_t *d = *state;
  const uint8_t a[] = {1};
  assert_int_equal(gw_dedup_answer(d, 5, a, sizeof(a)), GW_ERR_NOTFOUND);
  check_mid(d, 5, true, T0);
  gw_dedup_forget(d, 5);
  assert_int_equal(gw_dedup_answer(d, 5, a, sizeof(a)), GW_ERR_NOTFOUND);
}

static void test_con_expires_after_exchange_lifetime(void **state) {
  gw_dedup_t *d = *state;
  const uint8_t a[] = {0x60, 0x44, 0, 1};
  check_mid(d, 1, true, T0);
  gw_dedup_answer(d, 1, a, sizeof(a));
  /* Still a duplicate one ms before EXCHANGE_LIFETIME, even past NON_LIFETIME. */
  assert_int_equal(check_mid(d, 1, true, T0 + GW_NON_LIFETIME_MS), GW_DEDUP_ANSWERED);
  assert_int_equal(check_mid(d, 1, true, T0 + GW_EXCHANGE_LIFETIME_MS - 1), GW_DEDUP_ANSWERED);
  assert_int_equal(gw_dedup_count(d, T0 + GW_EXCHANGE_LIFETIME_MS - 1), 1);
  assert_int_equal(gw_dedup_count(d, T0 + GW_EXCHANGE_LIFETIME_MS), 0);
  /* At EXCHANGE_LIFETIME the MID may be reused: it is new again. */
  assert_int_equal(check_mid(d, 1, true, T0 + GW_EXCHANGE_LIFETIME_MS), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 1, true, T0 + GW_EXCHANGE_LIFETIME_MS + 1),
                   GW_DEDUP_IN_PROGRESS);
}

static void test_non_expires_after_non_lifetime(void **state) {
  gw_dedup_t *d = *state;
  check_mid(d, 2, false, T0);
  assert_int_equal(check_mid(d, 2, false, T0 + GW_NON_LIFETIME_MS - 1), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(gw_dedup_count(d, T0 + GW_NON_LIFETIME_MS - 1), 1);
  assert_int_equal(gw_dedup_count(d, T0 + GW_NON_LIFETIME_MS), 0);
  assert_int_equal(check_mid(d, 2, false, T0 + GW_NON_LIFETIME_MS), GW_DEDUP_NEW);
}

static void test_lifetime_counts_from_first_sight(void **state) {
  gw_dedup_t *d = *state;
  check_mid(d, 3, true, T0);
  /* Duplicates do not extend the lifetime. */
  check_mid(d, 3, true, T0 + 100000);
  check_mid(d, 3, true, T0 + 200000);
  assert_int_equal(check_mid(d, 3, true, T0 + GW_EXCHANGE_LIFETIME_MS), GW_DEDUP_NEW);
}

static void test_capacity_evicts_oldest(void **state) {
  gw_dedup_t *d = *state; /* capacity 4 */
  for (uint16_t mid = 10; mid < 14; mid++)
    assert_int_equal(check_mid(d, mid, true, T0 + mid), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_count(d, T0 + 20), 4);
  assert_int_equal(check_mid(d, 14, true, T0 + 20), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_count(d, T0 + 20), 4);
  /* 10 was the oldest: forgotten, so it is new again (and evicts 11). */
  assert_int_equal(check_mid(d, 12, true, T0 + 21), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 13, true, T0 + 21), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 14, true, T0 + 21), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 10, true, T0 + 22), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 12, true, T0 + 23), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 11, true, T0 + 23), GW_DEDUP_NEW); /* evicts 12 */
  assert_int_equal(check_mid(d, 13, true, T0 + 24), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 12, true, T0 + 24), GW_DEDUP_NEW); /* evicts 13 */
  assert_int_equal(gw_dedup_count(d, T0 + 24), 4);
}

/* An evicted entry's answer is released with it (ASan/LSan would report a leak otherwise) and a
 * late answer for it is refused. */
static void test_eviction_drops_answer(void **state) {
  gw_dedup_t *d = *state;
  const uint8_t a[] = {1, 2, 3, 4};
  for (uint16_t mid = 0; mid < 4; mid++) {
    check_mid(d, mid, true, T0);
    assert_int_equal(gw_dedup_answer(d, mid, a, sizeof(a)), GW_OK);
  }
  assert_int_equal(check_mid(d, 100, true, T0), GW_DEDUP_NEW);
  assert_int_equal(gw_dedup_answer(d, 0, a, sizeof(a)), GW_ERR_NOTFOUND);
  assert_int_equal(check_mid(d, 1, true, T0), GW_DEDUP_ANSWERED);
}

/* After a forget, the freed slot is reused and eviction still takes the oldest entry (a
 * ring position alone once got this wrong). */
static void test_capacity_evicts_oldest_after_forget(void **state) {
  gw_dedup_t *d = *state; /* capacity 4 */
  check_mid(d, 1, true, T0 + 1);
  check_mid(d, 2, true, T0 + 2);
  check_mid(d, 3, true, T0 + 3);
  check_mid(d, 4, true, T0 + 4);
  gw_dedup_forget(d, 2);
  check_mid(d, 5, true, T0 + 5); /* fills the freed slot; table: 1 3 4 5 */
  check_mid(d, 6, true, T0 + 6); /* full: 1 is the oldest and must go */
  assert_int_equal(check_mid(d, 3, true, T0 + 7), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 4, true, T0 + 7), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 5, true, T0 + 7), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 6, true, T0 + 7), GW_DEDUP_IN_PROGRESS);
}

static void test_expired_slots_reused_before_eviction(void **state) {
  gw_dedup_t *d = *state;
  check_mid(d, 1, false, T0);                          /* expires at T0 + NON_LIFETIME */
  check_mid(d, 2, true, T0);
  check_mid(d, 3, true, T0);
  check_mid(d, 4, true, T0);
  uint64_t later = T0 + GW_NON_LIFETIME_MS;
  assert_int_equal(gw_dedup_count(d, later), 3);
  /* The expired NON makes room: no live entry has to go. */
  assert_int_equal(check_mid(d, 5, true, later), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 2, true, later), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 3, true, later), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 4, true, later), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 5, true, later), GW_DEDUP_IN_PROGRESS);
}

static void test_forget(void **state) {
  gw_dedup_t *d = *state;
  const uint8_t a[] = {0x60, 0x44, 0, 9};
  check_mid(d, 9, true, T0);
  check_mid(d, 10, true, T0);
  gw_dedup_answer(d, 9, a, sizeof(a));
  gw_dedup_forget(d, 9);
  assert_int_equal(gw_dedup_count(d, T0), 1);
  /* A retransmission after forget is processed again. */
  assert_int_equal(check_mid(d, 9, true, T0 + 1), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 10, true, T0 + 1), GW_DEDUP_IN_PROGRESS);
  gw_dedup_forget(d, 999); /* unknown: no effect */
  assert_int_equal(gw_dedup_count(d, T0 + 1), 2);
}

static void test_count(void **state) {
  gw_dedup_t *d = *state;
  assert_int_equal(gw_dedup_count(d, T0), 0);
  check_mid(d, 1, false, T0);
  check_mid(d, 2, true, T0);
  check_mid(d, 3, true, T0 + 1000);
  assert_int_equal(gw_dedup_count(d, T0), 3);
  assert_int_equal(gw_dedup_count(d, T0 + GW_NON_LIFETIME_MS), 2);
  assert_int_equal(gw_dedup_count(d, T0 + GW_EXCHANGE_LIFETIME_MS), 1);
  assert_int_equal(gw_dedup_count(d, T0 + 1000 + GW_EXCHANGE_LIFETIME_MS), 0);
}

static void test_mid_zero_and_max(void **state) {
  gw_dedup_t *d = *state;
  /* A zeroed slot has mid 0: an empty table must not take MID 0 for a duplicate. */
  assert_int_equal(check_mid(d, 0, true, T0), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 0xffff, true, T0), GW_DEDUP_NEW);
  assert_int_equal(check_mid(d, 0, true, T0), GW_DEDUP_IN_PROGRESS);
  assert_int_equal(check_mid(d, 0xffff, true, T0), GW_DEDUP_IN_PROGRESS);
}

static void test_clear_and_reinit(void **state) {
  (void)state;
  gw_dedup_t d;
  assert_int_equal(gw_dedup_init(&d, 1), GW_OK);
  const uint8_t a[] = {1, 2};
  check_mid(&d, 1, true, T0);
  gw_dedup_answer(&d, 1, a, sizeof(a));
  assert_int_equal(check_mid(&d, 2, true, T0), GW_DEDUP_NEW); /* capacity 1: evicts 1 */
  assert_int_equal(check_mid(&d, 1, true, T0), GW_DEDUP_NEW);
  gw_dedup_clear(&d);
  assert_null(d.entries);
  assert_int_equal(d.capacity, 0);
  gw_dedup_clear(&d); /* twice is harmless */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_new_then_in_progress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answer_returned_exactly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answer_replaced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answer_unknown_mid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_con_expires_after_exchange_lifetime, setup, teardown),
      cmocka_unit_test_setup_teardown(test_non_expires_after_non_lifetime, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifetime_counts_from_first_sight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_capacity_evicts_oldest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eviction_drops_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_capacity_evicts_oldest_after_forget, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_slots_reused_before_eviction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
      cmocka_unit_test_setup_teardown(test_count, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mid_zero_and_max, setup, teardown),
      cmocka_unit_test(test_clear_and_reinit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
